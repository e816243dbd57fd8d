#!/usr/bin/env bash
# Installs the built tree into a temporary prefix, builds examples/consumer against it with
# find_package(edgefl), and runs it. Usage: install_consumer_test.sh SOURCE_DIR BINARY_DIR
set -euo pipefail
source_dir=$1
binary_dir=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake --install "$binary_dir" --prefix "$work/prefix" > "$work/install.log"
test -f "$work/prefix/lib/cmake/edgefl/edgeflConfig.cmake"
test -f "$work/prefix/lib/pkgconfig/edgefl-client.pc"
test -f "$work/prefix/include/edgefl/client/device.h"
cmake -S "$source_dir/examples/consumer" -B "$work/build" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$work/configure.log"
cmake --build "$work/build" > "$work/build.log"
"$work/build/consumer"
# The C API from a C program (examples/c_client), against the same installed package.
test -f "$work/prefix/include/edgefl/client.h"
cmake -S "$source_dir/examples/c_client" -B "$work/build-c" -DCMAKE_PREFIX_PATH="$work/prefix" \
  -DCMAKE_BUILD_TYPE=Release > "$work/configure-c.log"
cmake --build "$work/build-c" > "$work/build-c.log"
"$work/build-c/c_client"

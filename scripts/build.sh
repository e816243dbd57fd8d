#!/usr/bin/env bash
# Configures and builds edgefl in build/ (Release, Ninja). Extra arguments go to cmake's configure.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" > build.configure.log || { cat build.configure.log; exit 1; }
cmake --build build --parallel "$(nproc)"

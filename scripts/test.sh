#!/usr/bin/env bash
# Installs dependencies, builds edgefl with tests, and runs every test with ctest.
# Pass ctest arguments after the script name, e.g. `scripts/test.sh -L unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh -DEDGEFL_BUILD_TESTS=ON
cd build
ctest --output-on-failure --timeout 900 -j "$(nproc)" "$@"

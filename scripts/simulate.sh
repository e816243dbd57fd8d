#!/usr/bin/env bash
# Installs dependencies, builds edgefl, and runs the default simulation (MLP, FedAvg,
# 100 clients on Fashion-MNIST). Extra arguments go to `edgefl simulate`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh
exec ./build/app/edgefl simulate "$@"

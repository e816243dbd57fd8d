#!/usr/bin/env bash
# Installs every Debian package edgefl needs to build, test and run its default simulation.
# Idempotent: packages already present are skipped, so it costs ~1 s on a prepared machine.
# Used by the README's two commands and by .ci/run.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  libzmq3-dev cppzmq-dev libcereal-dev libeigen3-dev libssl-dev zlib1g-dev
  doctest-dev libcli11-dev libspdlog-dev libtomlplusplus-dev nlohmann-json3-dev
  libcpp-httplib-dev libbenchmark-dev
  clang libclang-rt-dev  # libFuzzer for fuzz/run.sh (the ctest entry fuzz.decode)
  dataset-fashion-mnist fortunes
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"

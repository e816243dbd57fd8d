#!/usr/bin/env bash
# Builds the wire codec's libFuzzer target (fuzz/decode_fuzzer.cc) with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer, seeds it with one valid frame of each message type, and runs
# it for a bounded time. Installs clang with apt-get when it is missing.
#
# Usage: fuzz/run.sh [SECONDS]     (default 60)
# Environment: EDGEFL_FUZZ_DIR (build and corpus directory, default build-fuzz),
#              EDGEFL_FUZZ_MAX_LEN (largest input in bytes, default 4096).
# Exit status is libFuzzer's: non-zero when it found a crash (the input is saved in the
# build directory as crash-*).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
out="${EDGEFL_FUZZ_DIR:-build-fuzz}"
max_len="${EDGEFL_FUZZ_MAX_LEN:-4096}"

fuzzer_runtime_present() {
  command -v clang++ >/dev/null 2>&1 &&
    [ -f "$(clang++ -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a" ]
}
if ! fuzzer_runtime_present; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "fuzz: installing clang and its libFuzzer runtime"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    clang libclang-rt-dev
fi

mkdir -p "$out/corpus"
sources=(transport/src/codec.cc transport/src/messages.cc common/src/*.cc)
flags=(-std=c++20 -g -O1 -Icommon/include -Itransport/include)

echo "fuzz: building $out/decode_fuzzer"
clang++ "${flags[@]}" -DEDGEFL_FUZZ_WRITE_SEEDS fuzz/decode_fuzzer.cc "${sources[@]}" \
  -o "$out/write_seeds"
"$out/write_seeds" "$out/corpus"
clang++ "${flags[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  fuzz/decode_fuzzer.cc "${sources[@]}" -o "$out/decode_fuzzer"

echo "fuzz: running for ${seconds}s"
exec "$out/decode_fuzzer" "$out/corpus" -max_total_time="$seconds" -max_len="$max_len" \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$out/"

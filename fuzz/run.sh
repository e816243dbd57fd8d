#!/usr/bin/env bash
# Builds the wire codec's libFuzzer target (fuzz/decode_fuzzer.cc) with clang, AddressSanitizer
# and UndefinedBehaviorSanitizer, seeds it with one valid frame of each message type, and runs
# it for a bounded time. Only the sources the codec needs are compiled (transport's codec and
# messages, common), two at a time, so a fresh build takes seconds, not a CMake configure.
#
# Usage: fuzz/run.sh [--no-install] [SECONDS]     (default 60)
#   --no-install  when clang or its libFuzzer runtime is missing, install nothing and exit 77
#                 (ctest's SKIP_RETURN_CODE: the ctest entry fuzz.decode reports "skipped").
#                 Without it, clang and libclang-rt-dev are installed with apt-get.
# Environment: EDGEFL_FUZZ_DIR (build and corpus directory, default build-fuzz),
#              EDGEFL_FUZZ_MAX_LEN (largest input in bytes, default 4096).
# Exit status: 0 when the fuzzer ran out its time with no crash, leak or hang; 1 when it found
# one (the input is saved in the build directory as crash-*, leak-*, oom-* or timeout-*) or the
# build failed; 77 as above.
set -euo pipefail
cd "$(dirname "$0")/.."

install=1
if [ "${1:-}" = "--no-install" ]; then
  install=0
  shift
fi
seconds="${1:-60}"
out="${EDGEFL_FUZZ_DIR:-build-fuzz}"
max_len="${EDGEFL_FUZZ_MAX_LEN:-4096}"

fuzzer_runtime_present() {
  command -v clang++ >/dev/null 2>&1 &&
    [ -f "$(clang++ -print-resource-dir)/lib/linux/libclang_rt.fuzzer-x86_64.a" ]
}
if ! fuzzer_runtime_present; then
  if [ "$install" -eq 0 ]; then
    echo "fuzz: skipped: clang++ with the libFuzzer runtime is not installed" \
      "(scripts/install-deps.sh installs clang and libclang-rt-dev)"
    exit 77
  fi
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  echo "fuzz: installing clang and its libFuzzer runtime"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    clang libclang-rt-dev
fi

mkdir -p "$out/obj" "$out/corpus"
sources=(transport/src/codec.cc transport/src/messages.cc common/src/*.cc)
flags=(-std=c++20 -g -O1 -Icommon/include -Itransport/include)
sanitize=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)

# One object per source, instrumented for coverage (fuzzer-no-link) and the sanitizers; both
# programs link the same objects. Two compilers at a time: CI has two cores.
echo "fuzz: building $out/decode_fuzzer"
started=$(date +%s)
compile() {  # SOURCE OBJECT [EXTRA FLAGS...]
  local source=$1 object=$2
  shift 2
  clang++ "${flags[@]}" "${sanitize[@]}" -fsanitize=fuzzer-no-link "$@" -c "$source" -o "$object"
}
objects=()
jobs_running=0
for source in "${sources[@]}"; do
  object="$out/obj/$(echo "$source" | tr / _).o"
  objects+=("$object")
  compile "$source" "$object" &
  jobs_running=$((jobs_running + 1))
  if [ "$jobs_running" -ge 2 ]; then wait -n; jobs_running=$((jobs_running - 1)); fi
done
compile fuzz/decode_fuzzer.cc "$out/obj/decode_fuzzer.o" &
compile fuzz/decode_fuzzer.cc "$out/obj/write_seeds.o" -DEDGEFL_FUZZ_WRITE_SEEDS &
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n; done
clang++ "${sanitize[@]}" -fsanitize=fuzzer-no-link "$out/obj/write_seeds.o" "${objects[@]}" \
  -o "$out/write_seeds"
clang++ "${sanitize[@]}" -fsanitize=fuzzer "$out/obj/decode_fuzzer.o" "${objects[@]}" \
  -o "$out/decode_fuzzer"
echo "fuzz: built in $(($(date +%s) - started)) s"
"$out/write_seeds" "$out/corpus"

echo "fuzz: running for ${seconds}s"
# -timeout: any single input taking over 10 s is a hang and fails the run. libFuzzer's own
# default exit status for a crash is 77, the skip code above: failures must exit 1.
"$out/decode_fuzzer" "$out/corpus" -max_total_time="$seconds" -max_len="$max_len" \
  -timeout=10 -rss_limit_mb=2048 -error_exitcode=1 -timeout_exitcode=1 -print_final_stats=1 \
  -artifact_prefix="$out/"
echo "fuzz: OK, no crash, leak or hang in ${seconds}s"

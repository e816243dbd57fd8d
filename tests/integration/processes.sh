# Sourced by the process-level tests (bash, set -euo pipefail): a fresh folder `work`, removed
# on exit with every process whose id the test appended to `pids` (EDGEFL_KEEP_TEST_DIR=1 keeps
# the folder and prints where), a free loopback `port`, and wait_for.
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${EDGEFL_KEEP_TEST_DIR:-}" ]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Waits until FILE contains PATTERN (at most TENTHS tenths of a second, default 300), or fails
# the test printing FILE.
wait_for() {  # FILE PATTERN [TENTHS]
  for _ in $(seq 1 "${3:-300}"); do
    if grep -q -- "$2" "$1" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "FAIL: timed out waiting for '$2' in $1"; cat "$1" || true; exit 1
}

#!/usr/bin/env bash
# A sim-worker killed mid-run (SIGKILL, as an operator or the out-of-memory killer does) stops
# `edgefl simulate --workers 2` fast: it exits within 10 s with its error code 1 (a return from
# main after the coordinator service's thread, cancelled mid-round, was joined: no crash, no
# abort), stderr names the dead worker and signal 9 and the other worker it stopped and holds
# nothing else, no sim-worker of the run is left, and rounds.csv keeps the rounds completed
# before the death. The run is long (5000 rounds), so it is still running when the worker dies on
# any machine.
# Usage: worker_death_test.sh EDGEFL_BINARY
set -euo pipefail
edgefl=$1
work=$(mktemp -d)
sim=
# Running (a zombie or no process is not).
alive() {
  local state
  state=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* ]]
}
cleanup() {
  if [ -n "$sim" ] && alive "$sim"; then
    for child in $(pgrep -P "$sim" || true); do kill -9 "$child" 2>/dev/null || true; done
    kill -9 "$sim" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  echo "--- stdout (tail)"; tail -n 5 "$work/out.log" || true
  echo "--- stderr"; cat "$work/err.log" || true
  exit 1
}
cat > "$work/exp.toml" <<TOML
model = "mlp"
clients = 20
clients_per_round = 10
rounds = 5000
local_steps = 5
batch_size = 10
seed = 3
threads = 2
TOML
"$edgefl" simulate --config "$work/exp.toml" --workers 2 --out "$work/run" \
  > "$work/out.log" 2> "$work/err.log" &
sim=$!

# Three rounds done (header + 3 rows), or give up after 60 s of start-up on a loaded machine.
for _ in $(seq 600); do
  [ -f "$work/run/rounds.csv" ] && [ "$(wc -l < "$work/run/rounds.csv")" -ge 4 ] && break
  alive "$sim" || fail "simulate ended before its third round"
  sleep 0.1
done
[ "$(wc -l < "$work/run/rounds.csv")" -ge 4 ] || fail "no third round within 60 s"

# Worker 1 hosts devices 11..20 (--first-device 10); worker 0 the rest.
victim= other=
for pid in $(pgrep -P "$sim"); do
  args=$(tr '\0' ' ' < "/proc/$pid/cmdline")
  case "$args" in
    *" sim-worker "*"--first-device 10 "*) victim=$pid ;;
    *" sim-worker "*"--first-device 0 "*) other=$pid ;;
  esac
done
[ -n "$victim" ] && [ -n "$other" ] || fail "did not find both sim-worker children of $sim"

start=$(date +%s%N)
kill -9 "$victim"
for _ in $(seq 100); do
  alive "$sim" || break
  sleep 0.1
done
alive "$sim" && fail "simulate still running 10 s after sim-worker $victim died"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
rc=0
wait "$sim" || rc=$?
sim=
[ "$rc" -ne 0 ] || fail "simulate exited 0 after a worker died"
[ "$rc" -eq 1 ] || fail "simulate exited with status $rc, not its error code 1 (a crash or abort?)"

grep -qF "sim-worker 1 (pid $victim, devices 11..20) was killed by signal 9 (SIGKILL" \
  "$work/err.log" || fail "stderr does not name the dead worker and signal 9"
grep -qF "(stopped sim-worker 0 (pid $other, devices 1..10) " "$work/err.log" \
  || fail "stderr does not say the other worker was stopped"
# Reaped by simulate before it exited: neither pid exists, nor any worker of this run.
if alive "$victim" || alive "$other"; then
  fail "a sim-worker of the run is still there"
fi
if pgrep -f -- "$work/run/workers/config.toml" > /dev/null; then
  fail "a sim-worker of the run is still running"
fi

# rounds.csv: rows 1..N, one per completed round, as stdout and stderr count them.
rows=$(($(wc -l < "$work/run/rounds.csv") - 1))
[ "$rows" -ge 3 ] || fail "rounds.csv has $rows rounds"
[ "$(tail -n +2 "$work/run/rounds.csv" | cut -d, -f1 | tr '\n' ' ')" = "$(seq -s ' ' "$rows") " ] \
  || fail "rounds.csv rows are not rounds 1..$rows"
grep -qF "after $rows of 5000 rounds; the simulation stopped" "$work/err.log" \
  || fail "stderr does not count the $rows completed rounds"
grep -qF "rounds.csv keeps the $rows completed rounds" "$work/err.log" \
  || fail "stderr does not say rounds.csv keeps the completed rounds"
[ "$(grep -c '^round ' "$work/out.log")" -eq "$rows" ] || fail "stdout and rounds.csv disagree"
# stderr is the error and the rounds.csv note: the worker-death message with the dead worker's
# log tail (indented lines), nothing from a thread left running or a failed check.
unexpected=$(grep -vE '^edgefl simulate: |^  ' "$work/err.log" || true)
[ -z "$unexpected" ] || fail "stderr has more than the worker-death message: $unexpected"
echo "simulate stopped ${elapsed_ms} ms after sim-worker $victim was killed; rounds.csv keeps" \
  "$rows rounds"
echo "worker death: OK"

#!/usr/bin/env bash
# Epsilon survives a coordinator crash. One `edgefl coordinator` with central DP and four
# `edgefl client` processes on loopback. The coordinator is killed with SIGKILL after its
# checkpoint of round 2 or later, restarted from the checkpoint with more devices required than
# there are (so it runs no round: /metrics must show the epsilon of the checkpoint's rounds, not
# 0), killed again, restarted to run two more rounds (their log lines must show the epsilon of
# all rounds so far), and restarted idle once more (/metrics again). The epsilon of N rounds is
# what `edgefl privacy epsilon` computes for N steps at the same sampling rate (2 of 4 devices,
# fixed-size cohorts), noise multiplier and delta, to 1e-9 on /metrics and to the log's 4
# decimals.
# Usage: dp_resume_test.sh EDGEFL_BINARY
set -euo pipefail
edgefl=$1
source "$(dirname "$0")/processes.sh"
clients=4
noise_multiplier=2.0
delta=1e-5

cat > "$work/coordinator.toml" <<TOML
model = "logreg"
endpoint = "tcp://127.0.0.1:$port"
insecure_plaintext = true
metrics_address = "127.0.0.1:0"
metrics_address_file = "$work/metrics_address"
min_clients = $clients
clients_per_round = 2
rounds = 1000
local_steps = 2
batch_size = 10
round_deadline_seconds = 30
heartbeat_timeout_seconds = 3
device_silence_timeout_seconds = 2
dp = "central"
clip = 1.0
noise_multiplier = $noise_multiplier
delta = $delta
seed = 5
checkpoint = "$work/ckpt.bin"
TOML

# The epsilon of STEPS rounds.
epsilon_of() {  # STEPS
  "$edgefl" privacy epsilon --sampling fixed --sampling-rate 0.5 \
    --noise-multiplier "$noise_multiplier" --steps "$1" --delta "$delta" --json |
    python3 -c 'import json, sys; print(repr(json.load(sys.stdin)["epsilon"]))'
}

# Starts a coordinator from the checkpoint with extra FLAGS, logging to LOG; sets `coordinator`,
# and `resumed_round` and `resumed_dp_rounds` from its event=resumed line.
restart() {  # LOG FLAGS...
  local log=$1
  shift
  rm -f "$work/metrics_address"
  "$edgefl" coordinator --config "$work/coordinator.toml" "$@" > "$log" 2>&1 &
  coordinator=$!
  pids+=($coordinator)
  wait_for "$log" "event=resumed "
  grep "event=resumed " "$log"
  resumed_round=$(sed -n 's/.*event=resumed .* last_round=\([0-9]*\).*/\1/p' "$log")
  resumed_dp_rounds=$(sed -n 's/.*event=resumed .* dp_rounds=\([0-9]*\).*/\1/p' "$log")
}

# Scrapes /metrics of the coordinator just restarted (idle) until it has published the resumed
# round, and checks that its epsilon is that of the DP_ROUNDS rounds before the restart.
check_idle_gauge() {  # DP_ROUNDS
  wait_for "$work/metrics_address" ":"
  python3 - "$(cat "$work/metrics_address")" "$1" "$(epsilon_of "$1")" <<'PY'
import re, sys, time, urllib.request
address, rounds, want = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
for _ in range(600):  # polling until published, at most ~30 s
    text = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
    m = dict(re.findall(r"^(edgefl_\w+) (\S+)$", text, re.M))
    if float(m["edgefl_current_round"]) >= rounds:
        break
    time.sleep(0.05)
epsilon = float(m["edgefl_epsilon"])
if m["edgefl_rounds_completed_total"] != "0" or not abs(epsilon - want) <= 1e-9 * want:
    sys.exit(f"FAIL: after a restart from {rounds} rounds /metrics says current_round "
             f"{m['edgefl_current_round']}, rounds_completed_total "
             f"{m['edgefl_rounds_completed_total']}, epsilon {epsilon!r}; want epsilon {want!r}")
print(f"restarted after {rounds} DP rounds: edgefl_epsilon {epsilon!r} == {want!r}")
PY
}

"$edgefl" coordinator --config "$work/coordinator.toml" > "$work/coordinator1.log" 2>&1 &
coordinator=$!
pids+=($coordinator)
for i in $(seq 0 $((clients - 1))); do
  cat > "$work/client$i.toml" <<TOML
endpoint = "tcp://127.0.0.1:$port"
insecure_plaintext = true
model = "logreg"
num_clients = $clients
index = $i
heartbeat_seconds = 0.5
silence_timeout_seconds = 2
TOML
  "$edgefl" client --config "$work/client$i.toml" > "$work/client$i.log" 2>&1 &
  pids+=($!)
done
wait_for "$work/coordinator1.log" "event=checkpoint round=2 "
kill -9 "$coordinator"
wait "$coordinator" 2>/dev/null || true

# 1. Idle after the crash: the gauge holds the checkpoint's epsilon.
restart "$work/coordinator2.log" --min-clients $((clients + 1))
before=$resumed_round
if [ -z "$before" ] || [ "$before" -lt 2 ]; then echo "FAIL: no resume after round 2"; exit 1; fi
# Every round of the first run was applied (all devices answer well within the deadline).
if [ "$resumed_dp_rounds" != "$before" ]; then
  echo "FAIL: the checkpoint of round $before holds $resumed_dp_rounds DP rounds"; exit 1
fi
check_idle_gauge "$before"
kill -9 "$coordinator"
wait "$coordinator" 2>/dev/null || true

# 2. Two more rounds with the devices (which reconnect by themselves); each round's log line
# carries the epsilon of every round so far.
restart "$work/coordinator3.log" --rounds $((before + 2))
wait "$coordinator" || { echo "FAIL: coordinator exit"; cat "$work/coordinator3.log"; exit 1; }
for round in $((before + 1)) $((before + 2)); do
  want=$(printf '%.4f' "$(epsilon_of "$round")")
  grep -q "event=round round=$round applied=true .* epsilon=$want " "$work/coordinator3.log" || {
    echo "FAIL: round $round did not log epsilon=$want"; grep "event=round " "$work/coordinator3.log"
    exit 1
  }
  echo "round $round logged epsilon=$want"
done

# 3. Idle again: the gauge holds the epsilon of all of them.
restart "$work/coordinator4.log" --min-clients $((clients + 1))
[ "$resumed_dp_rounds" = $((before + 2)) ] || { echo "FAIL: $resumed_dp_rounds DP rounds"; exit 1; }
check_idle_gauge $((before + 2))
kill -TERM "$coordinator"
wait "$coordinator" || { echo "FAIL: coordinator exit"; cat "$work/coordinator4.log"; exit 1; }
echo "dp resume: OK"

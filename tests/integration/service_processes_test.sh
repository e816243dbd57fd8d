#!/usr/bin/env bash
# Multi-process acceptance of issue 5 on loopback: one `edgefl coordinator` and 20
# `edgefl client` processes run 5 rounds with secure aggregation and distributed DP; the final
# weights must equal, bit for bit, the in-process simulator's with the same seed and settings.
# Then: a device killed mid-run does not stop the rounds, and a coordinator killed with SIGKILL
# after round 2 resumes from its checkpoint at round 3 while the devices reconnect.
# Usage: service_processes_test.sh EDGEFL_BINARY SIMULATE_WEIGHTS_BINARY
set -euo pipefail
edgefl=$1
simulate_weights=$2
source "$(dirname "$0")/processes.sh"
clients=20

common="clients_per_round = 10
local_steps = 5
batch_size = 10
lr = 0.05
seed = 3
secagg = true
dp = \"distributed\"
clip = 1.0
noise_multiplier = 0.5"

cat > "$work/sim.toml" <<TOML
$common
model = "mlp"
partition = "iid"
clients = $clients
rounds = 5
threads = 2
eval_every = 5
out = "$work/sim"
TOML
"$simulate_weights" "$work/sim.toml" "$work/sim.bin" | tail -n 1

coordinator_config() {  # ROUNDS
  cat > "$work/coordinator.toml" <<TOML
$common
model = "mlp"
endpoint = "tcp://127.0.0.1:$port"
insecure_plaintext = true
min_clients = $clients
rounds = $1
round_deadline_seconds = 30
heartbeat_timeout_seconds = 3
device_silence_timeout_seconds = 4  # the clients' smallest silence_timeout_seconds (part 2)
checkpoint = "$work/ckpt.bin"
save_weights = "$work/service.bin"
TOML
}

start_clients() {  # SILENCE_TIMEOUT_SECONDS
  # Devices start one after another so the channel assigns device i the ClientId i + 1, as the
  # simulator does (ids are assigned in Hello order).
  for i in $(seq 0 $((clients - 1))); do
    cat > "$work/client$i.toml" <<TOML
endpoint = "tcp://127.0.0.1:$port"
insecure_plaintext = true
partition = "iid"
seed = 3
num_clients = $clients
index = $i
heartbeat_seconds = 0.5
silence_timeout_seconds = $1
TOML
    "$edgefl" client --config "$work/client$i.toml" > "$work/client$i.log" 2>&1 &
    pids+=($!)
    client_pids[$i]=$!
    wait_for "$work/client$i.log" "event=welcome"
  done
}

# 1. Same seed, same settings: service == simulator.
coordinator_config 5
"$edgefl" coordinator --config "$work/coordinator.toml" > "$work/coordinator.log" 2>&1 &
coordinator=$!
pids+=($coordinator)
sleep 0.5
kill -0 "$coordinator" || { cat "$work/coordinator.log"; exit 1; }
declare -a client_pids
start_clients 60
wait "$coordinator"
grep -c "event=round " "$work/coordinator.log"
if ! cmp -s "$work/sim.bin" "$work/service.bin"; then
  echo "FAIL: service weights differ from the simulator's"
  grep -E "event=(round|device_expired|client_outcome) " "$work/coordinator.log" | head -n 60
  exit 1
fi
echo "service weights equal simulator weights ($(stat -c %s "$work/service.bin") bytes)"
for pid in "${client_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

# 2. Kill a device mid-run and SIGKILL the coordinator after round 2; restart it.
rm -f "$work/ckpt.bin" "$work/service.bin"
coordinator_config 100
sed -i -e 's/^round_deadline_seconds = .*/round_deadline_seconds = 3/' "$work/coordinator.toml"
"$edgefl" coordinator --config "$work/coordinator.toml" > "$work/coordinator.log" 2>&1 &
coordinator=$!
pids+=($coordinator)
start_clients 4
wait_for "$work/coordinator.log" "event=round round=1 "
kill -9 "${client_pids[0]}"
wait_for "$work/coordinator.log" "event=checkpoint round=2 "
kill -9 "$coordinator"
wait "$coordinator" 2>/dev/null || true
grep "event=client_outcome" "$work/coordinator.log" | head -n 2 || true
"$edgefl" coordinator --config "$work/coordinator.toml" --rounds 6 --min-clients 10 \
  > "$work/coordinator2.log" 2>&1 &
coordinator=$!
pids+=($coordinator)
wait "$coordinator"
last=$(sed -n 's/.*event=resumed .*last_round=\([0-9]*\).*/\1/p' "$work/coordinator2.log")
if [ -z "$last" ] || [ "$last" -lt 2 ]; then echo "FAIL: no resume"; cat "$work/coordinator2.log"; exit 1; fi
grep -q "event=round round=$((last + 1)) applied=true" "$work/coordinator2.log" \
  || { echo "FAIL: round $((last + 1)) after resume"; cat "$work/coordinator2.log"; exit 1; }
grep -q "event=round round=6 applied=true" "$work/coordinator2.log" \
  || { echo "FAIL: round 6"; cat "$work/coordinator2.log"; exit 1; }
echo "resumed at round $((last + 1)) after SIGKILL; devices reconnected"
echo "service processes: OK"

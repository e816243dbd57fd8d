#!/usr/bin/env bash
# Issue 5's hostile-input acceptance on loopback, with real processes and CURVE on: one
# `edgefl coordinator` with an allow-list, three allow-listed `edgefl client` devices, one
# `edgefl client` whose key is not allow-listed, and edgefl_hostile_peer (hostile_peer.cc), a
# raw ZeroMQ DEALER with an allow-listed key. While rounds run, the peer sends random bytes,
# wrong magic, a wrong protocol version, unknown and misdirected message types, oversized and
# truncated frames, messages for rounds it is not in, and, as a selected cohort member, NaN,
# Inf and wrong-shape updates. Passes when the coordinator refuses each kind with its own log
# line, never welcomes the unlisted key, keeps completing rounds during the attack, and
# finishes every round with exit status 0.
# Usage: hostile_input_test.sh EDGEFL_BINARY HOSTILE_PEER_BINARY
# (EDGEFL_KEEP_TEST_DIR=1 keeps the keys, configs and logs and prints where.)
set -euo pipefail
edgefl=$1
peer=$2
source "$(dirname "$0")/processes.sh"
endpoint="tcp://127.0.0.1:$port"
rounds=30
started=$(date +%s%N)

fail() {
  echo "FAIL: $*"
  for log in "$work"/*.log; do echo "--- $log"; tail -n 30 "$log"; done
  echo "--- the whole coordinator log"
  cat "$work/coordinator.log"
  exit 1
}
# Waits until the coordinator's log contains PATTERN (at most ~30 s), failing at once if the
# coordinator has exited.
coordinator=""
wait_for() {
  for _ in $(seq 1 300); do
    if grep -q -- "$1" "$work/coordinator.log" 2>/dev/null; then return 0; fi
    kill -0 "$coordinator" 2>/dev/null || fail "the coordinator exited while waiting for '$1'"
    sleep 0.1
  done
  fail "timed out waiting for '$1' in the coordinator's log"
}
# The coordinator refused something with a line matching PATTERN (extended regex).
expect_refusal() {  # WHAT PATTERN
  grep -Eq -- "$2" "$work/coordinator.log" || fail "no log line for $1 (/$2/)"
  echo "refused with a log line: $1"
}
rounds_done() { grep -c "event=round round=[0-9]* applied=true" "$work/coordinator.log" || true; }

# Keys: the coordinator's, four allow-listed devices (three clients and the hostile peer), and
# one device key that is not on the allow-list.
mkdir -p "$work/keys/allowed"
"$edgefl" keygen --out "$work/keys/coordinator" > /dev/null
for name in device0 device1 device2 hostile rogue; do
  "$edgefl" keygen --out "$work/keys/$name" > /dev/null
  if [ "$name" != rogue ]; then cp "$work/keys/$name.pub" "$work/keys/allowed/"; fi
done

# The channel's counters (ZmqCoordinatorStats) over Prometheus; every refusal logged (the
# rate limit of drop warnings has its own unit test), so each kind can be checked by its line.
cat > "$work/coordinator.toml" <<TOML
metrics_address = "127.0.0.1:0"
metrics_address_file = "$work/metrics_address"
drop_warnings_per_second = 1000000
endpoint = "$endpoint"
secret_key_file = "$work/keys/coordinator.key"
allowed_keys_path = "$work/keys/allowed"
model = "mlp"
rounds = $rounds
min_clients = 4
clients_per_round = 4
over_selection = 1.0
local_steps = 2
batch_size = 10
round_deadline_seconds = 8
heartbeat_timeout_seconds = 4
save_weights = "$work/weights.bin"
TOML
"$edgefl" coordinator --config "$work/coordinator.toml" > "$work/coordinator.log" 2>&1 &
coordinator=$!
pids+=($coordinator)
wait_for "event=listening"

start_client() {  # NAME INDEX
  cat > "$work/$1.toml" <<TOML
endpoint = "$endpoint"
secret_key_file = "$work/keys/$1.key"
server_public_key_file = "$work/keys/coordinator.pub"
name = "$1"
partition = "iid"
seed = 3
num_clients = 3
index = $2
heartbeat_seconds = 0.5
silence_timeout_seconds = 10
TOML
  "$edgefl" client --config "$work/$1.toml" > "$work/$1.log" 2>&1 &
  pids+=($!)
}
start_client rogue 0
for i in 0 1 2; do start_client "device$i" "$i"; done

# The hostile cohort member: registers before round 1 (min_clients counts it), answers its
# first four RoundStarts with NaN, +Inf, too few and too many parameters, then answers with a
# valid zero update after 2.5 s until $work/release exists, so the rounds outlast the attack.
peer_keys=(--secret-key "$work/keys/hostile.key" --server-key "$work/keys/coordinator.pub")
"$peer" --endpoint "$endpoint" "${peer_keys[@]}" --modes cohort --answer-delay-ms 2500 \
  --fast-after-file "$work/release" > "$work/cohort.log" 2>&1 &
cohort=$!
pids+=($cohort)

wait_for "event=round round=1 "
rounds_before=$(rounds_done)
# One mode after another, each on a fresh connection.
attack_started=$(date +%s%N)
"$peer" --endpoint "$endpoint" "${peer_keys[@]}" --pause-ms 300 \
  --modes magic,version,unknown-type,oversized,huge,truncated,wrong-round,random \
  > "$work/peer.log" 2>&1 || fail "hostile peer: $(tail -n 1 "$work/peer.log")"
attack_ms=$((($(date +%s%N) - attack_started) / 1000000))
cat "$work/peer.log"
kill -0 "$coordinator" 2>/dev/null || fail "the coordinator died during the attack"
grep -q "event=done" "$work/coordinator.log" && fail "the run ended before the attack did"
rounds_after=$(rounds_done)
[ "$rounds_after" -gt "$rounds_before" ] ||
  fail "no round completed during the attack ($rounds_before before, $rounds_after after)"
echo "rounds completed during the ${attack_ms} ms attack: $((rounds_after - rounds_before))"
metrics=$(python3 -c 'import sys, urllib.request
address = open(sys.argv[1]).read().strip()
print(urllib.request.urlopen("http://" + address + "/metrics", timeout=5).read().decode())' \
  "$work/metrics_address") || fail "GET /metrics from $(cat "$work/metrics_address")"
metric() { echo "$metrics" | sed -n "s/^edgefl_$1 \([0-9]*\).*/\1/p"; }
refused=$(metric handshakes_refused_total)
dropped=$(metric frames_dropped_total)
# The unlisted device's handshakes; the attack's malformed frames (the truncated mode alone
# sends over 100).
[ "${refused:-0}" -ge 1 ] || fail "handshakes_refused_total is '${refused}'"
[ "${dropped:-0}" -ge 100 ] || fail "frames_dropped_total is '${dropped}'"
echo "metrics: handshakes_refused_total=$refused frames_dropped_total=$dropped"
touch "$work/release"

status=0
wait "$coordinator" || status=$?
[ "$status" -eq 0 ] || fail "coordinator exit status $status"
wait "$cohort" || fail "cohort peer: $(tail -n 1 "$work/cohort.log")"
cat "$work/cohort.log"
grep -q "event=done last_round=$rounds" "$work/coordinator.log" || fail "the run did not finish"
[ "$(rounds_done)" -eq "$rounds" ] || fail "$(rounds_done) of $rounds rounds applied"
echo "coordinator exited 0 after applying all $rounds rounds"

# The device whose key is not allow-listed: refused at the CURVE handshake, never welcomed.
rogue_key=$(cat "$work/keys/rogue.pub")
grep "refused CURVE handshake" "$work/coordinator.log" | grep -qF -- "$rogue_key" ||
  fail "no log line for the key not on the allow-list"
echo "refused with a log line: a key not on the allow-list"
if grep -q "event=welcome" "$work/rogue.log"; then fail "the unlisted device was welcomed"; fi
for i in 0 1 2; do grep -q "event=welcome" "$work/device$i.log" || fail "device$i was not welcomed"; done

# Transport: each kind of malformed or misdirected frame.
expect_refusal "wrong magic" 'dropped a frame .*does not start with the magic'
expect_refusal "wrong protocol version" 'dropped a frame .*protocol version [0-9]+, this build speaks [0-9]+'
for type in 0 10 65535; do
  expect_refusal "unknown message type $type" "dropped a frame .*unknown message type $type\$"
done
expect_refusal "a RoundStart sent by a device" 'RoundStart is not a device-to-coordinator message'
expect_refusal "a Welcome sent by a device" 'Welcome is not a device-to-coordinator message'
expect_refusal "an Update before Hello" 'dropped a frame .*Update before Hello'
expect_refusal "an oversized Hello" 'Hello payload of 4097 bytes exceeds limit 4096'
expect_refusal "an oversized Heartbeat" 'Heartbeat payload of 65 bytes exceeds limit 64'
expect_refusal "an oversized Update" 'Update payload of [0-9]+ bytes exceeds limit'
expect_refusal "a frame shorter than the header" 'shorter than the 28-byte envelope header'
expect_refusal "a truncated frame" 'Update header announces [0-9]+ payload bytes, frame holds'
expect_refusal "a truncated float vector" 'Update.delta has [0-9]+ floats .* remain'
expect_refusal "a truncated scalar" 'Update.train_loss needs 4 bytes'
expect_refusal "an empty payload" 'Update payload does not start with the little-endian marker'
expect_refusal "a two-part message" 'expected one message frame, got 2'
expect_refusal "an empty frame" 'frame has 0 bytes'
# Round engine: messages for rounds the device is not in, and bad updates from a cohort member.
expect_refusal "an Update for a round not started" \
  'refused Update from client [0-9]+ for round 1000000: that round has not started'
expect_refusal "a second answer to a round" 'refused Update from client [0-9]+ .*already answered'
expect_refusal "a NaN update" 'rejected update from client [0-9]+: update value [0-9]+ is not finite'
nonfinite=$(grep -c 'rejected update from client [0-9]*: update value [0-9]* is not finite' \
  "$work/coordinator.log" || true)
[ "$nonfinite" -ge 2 ] || fail "NaN and Inf updates: $nonfinite rejections logged, expected 2"
parameters=$(sed -n 's/.*welcome_parameters=\([0-9]*\).*/\1/p' "$work/peer.log")
expect_refusal "an update with $((parameters - 1)) of $parameters parameters" \
  "update has $((parameters - 1)) values, model has $parameters\b"
expect_refusal "an update with $((parameters + 1)) of $parameters parameters" \
  "update has $((parameters + 1)) values, model has $parameters\b"
rejected=$(grep -c "event=client_outcome .*outcome=rejected" "$work/coordinator.log" || true)
[ "$rejected" -ge 4 ] || fail "$rejected rejected client outcomes logged, expected at least 4"

echo "test took $((($(date +%s%N) - started) / 1000000)) ms"
echo "hostile input: OK"

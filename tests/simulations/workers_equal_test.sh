#!/usr/bin/env bash
# Issue 6: the same seed gives the same results in process and with `--workers 2`, where the
# real coordinator service runs on loopback and two `edgefl sim-worker` processes host the 40
# devices over ZeroMQ. Compares every rounds.csv column except the times, and the final
# weights' fingerprint. Then: worker mode refuses virtual-time features with a clear error.
# Usage: workers_equal_test.sh EDGEFL_BINARY
set -euo pipefail
edgefl=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/exp.toml" <<TOML
model = "mlp"
clients = 40
clients_per_round = 10
rounds = 3
local_steps = 5
batch_size = 10
partition = "dirichlet"
alpha = 0.3
seed = 11
threads = 2
TOML
"$edgefl" simulate --config "$work/exp.toml" --out "$work/in" > "$work/in.log"
"$edgefl" simulate --config "$work/exp.toml" --workers 2 --out "$work/workers" > "$work/workers.log" \
  || { cat "$work/workers.log" "$work"/workers/workers/*.log; exit 1; }
tail -n 1 "$work/workers.log"
# Columns 5 and 6 are wall_seconds and sim_seconds (virtual in process, wall with workers).
cut -d, -f1-4,7- "$work/in/rounds.csv" > "$work/in.csv"
cut -d, -f1-4,7- "$work/workers/rounds.csv" > "$work/workers.csv"
if ! cmp -s "$work/in.csv" "$work/workers.csv"; then
  echo "FAIL: rounds.csv differs between in-process and --workers 2"
  paste -d'|' "$work/in.csv" "$work/workers.csv"; exit 1
fi
test "$(wc -l < "$work/in.csv")" -eq 4
fingerprint() { sed -n 's/.*"final_weights_fnv1a64": "\([0-9a-f]*\)".*/\1/p' "$1/summary.json"; }
a=$(fingerprint "$work/in"); b=$(fingerprint "$work/workers")
test -n "$a"
if [ "$a" != "$b" ]; then echo "FAIL: final weights differ ($a vs $b)"; exit 1; fi
echo "same results in process and with 2 workers (final weights $a)"
grep -q "event=sim_worker_done devices=20 " "$work/workers/workers/worker-0.log"
grep -q "event=sim_worker_done devices=20 " "$work/workers/workers/worker-1.log"

if "$edgefl" simulate --config "$work/exp.toml" --workers 2 --dropout 0.1 --out "$work/x" \
    > "$work/refused.log" 2>&1; then
  echo "FAIL: --workers with --dropout was accepted"; exit 1
fi
grep -q "dropout injection needs the in-process simulator's virtual time" "$work/refused.log" \
  || { cat "$work/refused.log"; exit 1; }
if "$edgefl" sim-worker --connect tcp://127.0.0.1:9 --config "$work/exp.toml" \
    --first-device 30 --devices 20 --insecure-plaintext > "$work/range.log" 2>&1; then
  echo "FAIL: a device range beyond the experiment was accepted"; exit 1
fi
grep -q "exceed the experiment's 40 devices" "$work/range.log" || { cat "$work/range.log"; exit 1; }
echo "simulate workers: OK"

#!/usr/bin/env bash
# Runs issue 2's acceptance command through the real `edgefl` binary: the IID MLP run must reach
# 0.85 test accuracy in 30 rounds, and the same seed must reproduce the accuracy column exactly,
# here with one thread against two. Usage: simulate_cli_test.sh EDGEFL_BINARY
set -euo pipefail
edgefl=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
args=(simulate --model mlp --clients 100 --clients-per-round 10 --rounds 30 --local-epochs 1
      --batch-size 10 --partition iid --seed 1)
"$edgefl" "${args[@]}" --threads 2 --out "$work/a" > "$work/a.log"
"$edgefl" "${args[@]}" --threads 1 --out "$work/b" > "$work/b.log"
tail -n 1 "$work/a.log"
cut -d, -f4 "$work/a/rounds.csv" > "$work/a.acc"
cut -d, -f4 "$work/b/rounds.csv" > "$work/b.acc"
if ! cmp -s "$work/a.acc" "$work/b.acc"; then
  echo "FAIL: same seed, different accuracy columns"; paste "$work/a.acc" "$work/b.acc"; exit 1
fi
final=$(tail -n 1 "$work/a.acc")
echo "final accuracy $final"
awk -v a="$final" 'BEGIN { exit !(a >= 0.85) }' || { echo "FAIL: final accuracy $final < 0.85"; exit 1; }
test "$(head -n 1 "$work/a/rounds.csv" | cut -d, -f1-5)" = "round,train_loss,test_loss,test_accuracy,wall_seconds"
test "$(wc -l < "$work/a/rounds.csv")" -eq 31
grep -q '"rounds_completed": 30' "$work/a/summary.json"
echo "simulate CLI: OK"

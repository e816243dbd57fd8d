#!/usr/bin/env bash
# `edgefl train`, `edgefl quantize` and `edgefl eval` through the real binary, on Debian's fortunes
# and Fashion-MNIST: eval scores the fp32 checkpoint exactly as train's own held-out evaluation
# did, scores its q8 and q4 forms (frozen on the int8 / int4 kernels) close to it, finds the
# model, data and categories from the checkpoint's metadata (quantized files included), and
# refuses a file that is no such checkpoint.
# Usage: eval_cli_test.sh EDGEFL_BINARY
set -euo pipefail
edgefl=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# The numbers of a report line from "loss" on, e.g. "loss 5.5 nats/byte, perplexity 245.1, ...".
metrics() { sed -n 's/.*\(loss [0-9.]* .*\)/\1/p' | sed 's/; trained.*//'; }
perplexity() { sed -n 's/.*perplexity \([0-9.]*\),.*/\1/p'; }

cats=pets,paradoxum
"$edgefl" train --model charlm --categories "$cats" --steps 4 --batch-size 4 --log-every 4 \
    --threads 2 --out "$work/lm.safetensors" > "$work/train.log"
"$edgefl" quantize --model charlm --checkpoint "$work/lm.safetensors" --format q8 \
    --out "$work/lm-q8.safetensors" > /dev/null
"$edgefl" quantize --model charlm --checkpoint "$work/lm.safetensors" --format q4 \
    --out "$work/lm-q4.safetensors" > /dev/null
for format in f32 q8 q4; do
  file=$work/lm.safetensors
  [ "$format" = f32 ] || file=$work/lm-$format.safetensors
  "$edgefl" eval --model charlm --checkpoint "$file" --data fortunes --categories "$cats" \
      --threads 2 > "$work/eval-$format.log"
  grep -q "(charlm, $format) on fortunes/held-out: loss .* perplexity " "$work/eval-$format.log" ||
      fail "eval of the $format checkpoint: $(cat "$work/eval-$format.log")"
  cat "$work/eval-$format.log"
done
# Without --model, --data and --categories, eval reads them from the checkpoint: train records
# them and quantize keeps them, so the q8 file is scored on the same held-out text.
"$edgefl" eval --checkpoint "$work/lm-q8.safetensors" --threads 2 > "$work/eval-q8-meta.log"
[ "$(metrics < "$work/eval-q8-meta.log")" = "$(metrics < "$work/eval-q8.log")" ] ||
    fail "eval from the q8 file's metadata: $(cat "$work/eval-q8-meta.log"), with flags:" \
         "$(cat "$work/eval-q8.log")"
held_out=$(grep '^held-out:' "$work/train.log" | metrics)
[ -n "$held_out" ] && [ "$held_out" = "$(metrics < "$work/eval-f32.log")" ] ||
    fail "train's held-out line '$held_out' differs from eval's: $(cat "$work/eval-f32.log")"
f32=$(perplexity < "$work/eval-f32.log")
for format in q8 q4; do
  q=$(perplexity < "$work/eval-$format.log")
  # Quantization moves an almost untrained model's perplexity by far less than 5%.
  awk -v a="$f32" -v b="$q" 'BEGIN { d = (a - b) / a; exit !(d < 0.05 && d > -0.05) }' ||
      fail "$format perplexity $q is not within 5% of f32's $f32"
done

# Model and data from the metadata; a quantized classifier runs its dense layers in int8.
"$edgefl" train --model mlp --steps 5 --batch-size 32 --log-every 5 --threads 2 \
    --out "$work/mlp.safetensors" > "$work/train-mlp.log"
"$edgefl" quantize --model mlp --checkpoint "$work/mlp.safetensors" --format q8 \
    --out "$work/mlp-q8.safetensors" > /dev/null
"$edgefl" eval --checkpoint "$work/mlp.safetensors" --threads 2 > "$work/eval-mlp.log"
[ "$(grep '^test:' "$work/train-mlp.log" | metrics)" = "$(metrics < "$work/eval-mlp.log")" ] ||
    fail "train's test line differs from eval's: $(cat "$work/eval-mlp.log")"
"$edgefl" eval --checkpoint "$work/mlp-q8.safetensors" --threads 2 > "$work/eval-mlp-q8.log"
grep -q "(mlp, q8) on fashion-mnist/test: loss .* accuracy " "$work/eval-mlp-q8.log" ||
    fail "eval of the q8 mlp: $(cat "$work/eval-mlp-q8.log")"
cat "$work/eval-mlp.log" "$work/eval-mlp-q8.log"

# Refusals: another model's checkpoint, and a safetensors file that is no model's checkpoint.
if "$edgefl" eval --model charlm --checkpoint "$work/mlp.safetensors" 2> "$work/err.log"; then
  fail "eval of an mlp checkpoint as charlm succeeded"
fi
grep -q "holds model 'mlp' (its metadata), not 'charlm'" "$work/err.log" ||
    fail "unclear error: $(cat "$work/err.log")"
# A safetensors file holding one F32 tensor "x" of shape [1] (header padded to 64 bytes).
header='{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
header=$(printf '%-64s' "$header")
{ printf '\x40\x00\x00\x00\x00\x00\x00\x00'; printf '%s' "$header"; printf '\x00\x00\x80\x3f'; } \
    > "$work/neither.safetensors"
if "$edgefl" eval --model charlm --checkpoint "$work/neither.safetensors" 2> "$work/err.log"; then
  fail "eval of a file that is no checkpoint succeeded"
fi
grep -q "not an f32 (\`edgefl train\`) or q8 / q4 (\`edgefl quantize\`) checkpoint of model 'charlm'" \
    "$work/err.log" || fail "unclear error: $(cat "$work/err.log")"
cat "$work/err.log"
echo "eval CLI: OK"

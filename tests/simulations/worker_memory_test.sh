#!/usr/bin/env bash
# What a sim-worker holds per hosted device stays small: about 32 KiB measured, nearly all of it
# ZeroMQ's per-connection pipes and stream buffers, since the devices share the data set, the
# training threads' models and one ZeroMQ context. Runs `simulate --workers 1` with 100 and then
# 2100 devices (cohorts of 10, one round) and reads each worker's own peak RSS (getrusage,
# logged as peak_rss_mib): the 2000 more devices may add at most 128 KiB each. A per-device copy
# of the mlp's weights or of an update buffer (0.8 MB each) breaks that bound several times
# over; ZeroMQ's own per-connection memory varying between versions does not. The small worker
# must also stay under 400 MiB: Fashion-MNIST's training set alone is 188 MiB of floats, so a
# second copy of it shows. Memory only; nothing here depends on timing. Then: a worker short of
# file descriptors says how many it needs.
# Usage: worker_memory_test.sh EDGEFL_BINARY
set -euo pipefail
edgefl=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints the peak RSS in MiB of the one worker of a run with $1 devices.
worker_peak_mib() {
  local devices=$1 out="$work/run-$1"
  if ! "$edgefl" simulate --model mlp --clients "$devices" --clients-per-round 10 --rounds 1 \
      --local-steps 2 --batch-size 10 --seed 5 --threads 2 --workers 1 --out "$out" \
      > "$work/run-$devices.log" 2>&1; then
    echo "FAIL: simulate --workers 1 with $devices devices failed" >&2
    cat "$work/run-$devices.log" "$out"/workers/*.log >&2 || true
    exit 1
  fi
  local line
  line=$(grep "event=sim_worker_done devices=$devices " "$out/workers/worker-0.log") || {
    echo "FAIL: no sim_worker_done line for $devices devices" >&2
    cat "$out/workers/worker-0.log" >&2; exit 1; }
  sed -n 's/.* peak_rss_mib=\([0-9]*\).*/\1/p' <<< "$line"
}

# 2100 devices need about 4300 descriptors in the worker and as many in the coordinator; an
# unprivileged run under a lower hard limit cannot have them (ctest reports the test skipped).
if [ "$(id -u)" != 0 ] && [ "$(ulimit -Hn)" != unlimited ] && [ "$(ulimit -Hn)" -lt 4400 ]; then
  echo "worker memory: SKIPPED (hard open-files limit $(ulimit -Hn) < 4400, not root)"; exit 0
fi
small=$(worker_peak_mib 100)
large=$(worker_peak_mib 2100)
per_device_kib=$(( (large - small) * 1024 / 2000 ))
echo "worker peak RSS: ${small} MiB with 100 devices, ${large} MiB with 2100:" \
     "${per_device_kib} KiB per hosted device"
if [ "$per_device_kib" -gt 128 ]; then
  echo "FAIL: each hosted device adds ${per_device_kib} KiB to the worker (bound 128 KiB)"; exit 1
fi
if [ "$small" -gt 400 ]; then
  echo "FAIL: a worker of 100 devices peaks at ${small} MiB (bound 400 MiB)"; exit 1
fi

# Two descriptors per hosted device: a worker that cannot get them says so before it connects
# anything, instead of failing at the first socket past the limit. 600,000 devices need more
# than fs.nr_open allows (1,048,576 by default), so even a privileged worker cannot raise it.
cat > "$work/huge.toml" <<TOML
model = "mlp"
clients = 600000
TOML
if "$edgefl" sim-worker --connect tcp://127.0.0.1:9 --config "$work/huge.toml" --devices 600000 \
    --insecure-plaintext > "$work/limit.log" 2>&1; then
  echo "FAIL: a worker of 600000 devices started"; exit 1
fi
grep -q "hosting 600000 devices needs 1200064 open files" "$work/limit.log" \
  || { echo "FAIL: no open-file error"; cat "$work/limit.log"; exit 1; }
echo "worker memory: OK"

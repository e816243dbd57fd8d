#!/usr/bin/env python3
"""Runs edgefl_transport_bench and prints its results as one table (issue 5).

Columns: the case, devices, MB each device sends, wall time per round, GB/s through the
coordinator, the ratio to raw ZeroMQ moving the same bytes in the same run (wall time, then
process CPU time; 1.0 = as fast as raw ZeroMQ), CPU seconds per round, and the speed-up over
Flower's 6.6 s per round. The Flower number is the reference constant from the issue (Flower 1.x
gRPC FedAvg, 100 clients x 1M float32, on a 2-core machine), not a measurement of this run:
Flower is not installable here. The codec rows compare Encode/Decode with a memcpy of the same
bytes into a fresh buffer (CPU time).

  bench/transport_compare.py --binary build/bench/edgefl_transport_bench          # all, ~15 min
  bench/transport_compare.py --binary build/bench/edgefl_transport_bench --quick  # 100 devices
  bench/transport_compare.py --binary ... --malloc-tuned   # glibc keeps big buffers (see below)
  bench/transport_compare.py --json transport.json    # a saved --benchmark_format=json run

--malloc-tuned runs with GLIBC_TUNABLES raising glibc's mmap and trim thresholds, so the 1-4 MB
message buffers are reused from the heap instead of being mapped, page-faulted and unmapped for
every message; it shows how much of the cost is the allocator's (both raw and edgefl gain).
"""

import argparse
import json
import os
import re
import subprocess
import sys

TRANSPORT = re.compile(r"^BM_Transport_(RawZmq|Channel|FedAvgRound)/devices:(\d+)/floats:(\d+)"
                       r"(?:/curve:(\d))?")
CODEC = re.compile(r"^BM_Transport_(Encode|Decode)/(\d+)")
TO_SECONDS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def run(binary, quick, rounds, malloc_tuned):
    env = dict(os.environ)
    if rounds:
        env["EDGEFL_TRANSPORT_BENCH_ROUNDS"] = str(rounds)
    if malloc_tuned:
        env["GLIBC_TUNABLES"] = MALLOC_TUNABLES
    command = [binary, "--benchmark_format=json"]
    if quick:
        command.append("--benchmark_filter=Encode|Decode|devices:100/")
    print("$", ("GLIBC_TUNABLES=" + MALLOC_TUNABLES + " ") * malloc_tuned + " ".join(command),
          file=sys.stderr)
    done = subprocess.run(command, env=env, stdout=subprocess.PIPE, check=True)
    return json.loads(done.stdout)


def label(kind, curve):
    security = "CURVE" if curve == "1" else "plaintext"
    if kind == "RawZmq":
        return f"raw ZeroMQ, {security}"
    if kind == "Channel":
        return f"edgefl channel, {security}"
    return "edgefl FedAvg round (RoundEngine)"


def transport_rows(data):
    for bench in data["benchmarks"]:
        match = TRANSPORT.match(bench["name"])
        if not match or bench.get("run_type") == "aggregate":
            continue
        kind, devices, floats, curve = match.groups()
        mb = f"{int(floats) * 4 / 1e6:.2f}"
        if bench.get("error_occurred"):
            yield (label(kind, curve), devices, mb, "error: " + bench.get("error_message", ""),
                   "", "", "", "", "")
            continue
        seconds = bench["real_time"] * TO_SECONDS[bench["time_unit"]]
        gbps = bench.get("bytes_per_second", 0) / 1e9
        cpu = f"{bench['cpu_s_per_round']:.2f}" if "cpu_s_per_round" in bench else "-"
        if kind == "RawZmq":
            wall_ratio, cpu_ratio = "1 (peer)", "1 (peer)"
        else:
            wall_ratio = f"{bench['x_raw_zmq']:.2f}"
            cpu_ratio = f"{bench['x_raw_zmq_cpu']:.2f}"
        flower = f"{bench['x_flower']:.2f}x" if "x_flower" in bench else "-"
        yield (label(kind, curve), devices, mb, f"{seconds:.3f} s", f"{gbps:.3f}", wall_ratio,
               cpu, cpu_ratio, flower)


def codec_rows(data):
    for bench in data["benchmarks"]:
        match = CODEC.match(bench["name"])
        if not match or bench.get("run_type") == "aggregate" or bench.get("error_occurred"):
            continue
        kind, floats = match.groups()
        cpu_seconds = bench["cpu_time"] * TO_SECONDS[bench["time_unit"]]
        yield (f"codec {kind} (Update)", f"{int(floats) * 4 / 1e6:.2f}",
               f"{cpu_seconds * 1e6:.0f} us", f"{int(floats) * 4 / cpu_seconds / 1e9:.1f}",
               f"{bench['x_memcpy']:.2f}")


def print_table(header, rows):
    table = [header] + list(rows)
    if len(table) == 1:
        return
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for n, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", help="path to edgefl_transport_bench")
    parser.add_argument("--json", help="read a saved JSON run instead ('-' for stdin)")
    parser.add_argument("--quick", action="store_true", help="only the 100-device cases")
    parser.add_argument("--rounds", type=int, help="rounds per case (default 3)")
    parser.add_argument("--malloc-tuned", action="store_true",
                        help="run with glibc's mmap/trim thresholds raised (GLIBC_TUNABLES)")
    args = parser.parse_args()
    if args.json:
        with (sys.stdin if args.json == "-" else open(args.json)) as f:
            data = json.load(f)
    elif args.binary:
        data = run(args.binary, args.quick, args.rounds, args.malloc_tuned)
    else:
        parser.error("give --binary or --json")

    print_table(("case", "devices", "MB each", "time/round", "GB/s", "x raw ZeroMQ",
                 "CPU s/round", "x raw ZeroMQ (CPU)", "vs Flower 6.6 s"), transport_rows(data))
    print_table(("codec", "MB", "CPU time", "GB/s (CPU)", "x memcpy"), codec_rows(data))
    print("GB/s: payload bytes through the coordinator per second of wall time (FedAvg round:"
          " weights out plus updates in). x raw ZeroMQ: raw seconds / edgefl seconds for the same"
          " traffic, measured alternately in the same run (round: raw broadcast + answers, no"
          " processing). CPU: process CPU seconds, all threads. Flower: the issue's reference"
          " 6.6 s per round (100 clients x 1M float32), a constant, not measured here.")
    context = data.get("context", {})
    print(f"host: {context.get('host_name', '?')}, {context.get('num_cpus', '?')} CPUs, "
          f"load avg {context.get('load_avg', '?')} at start")


if __name__ == "__main__":
    main()

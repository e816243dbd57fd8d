#!/usr/bin/python3
"""Compares edgefl's GEMM kernels with PyTorch's fp32 matmul at the same shapes.

Reads the Google Benchmark JSON of edgefl_models_bench, times torch.matmul on the same
(m, n, k, layout) shapes with 1 and 2 threads, and prints GFLOP/s and ratios (> 1: edgefl is
faster). PyTorch is Debian's python3-torch (apt-get install -y python3-torch), which lives in
/usr/bin/python3's dist-packages, hence the interpreter above.

  edgefl_models_bench --benchmark_format=json > models.json
  bench/pytorch_compare.py models.json            # or: ... | bench/pytorch_compare.py -

Only the kernels part (BM_Gemm_*) for now; a train-step comparison belongs next to it.
"""

import argparse
import json
import os
import re
import sys
import time

LAYOUTS = {0: "NT", 1: "NN", 2: "TN"}  # as enum Layout in bench/models_bench.cc
NAME = re.compile(r"^(BM_Gemm_\w+)/m:(\d+)/n:(\d+)/k:(\d+)/t:(\d+)")


def load_edgefl(path):
    """{(kernel, m, n, k, layout): GFLOP/s}, taking the median when repetitions were run."""
    with (sys.stdin if path == "-" else open(path)) as f:
        data = json.load(f)
    results, has_median = {}, set()
    for bench in data["benchmarks"]:
        match = NAME.match(bench["name"])
        if not match or "GFLOP/s" not in bench:
            continue
        key = (match.group(1),) + tuple(int(g) for g in match.group(2, 3, 4, 5))
        if bench.get("run_type") == "aggregate":
            if bench.get("aggregate_name") != "median":
                continue
            has_median.add(key)
        elif key in has_median:
            continue
        results[key] = bench["GFLOP/s"]
    return results, data.get("context", {})


def time_torch(torch, m, n, k, layout, threads, min_seconds=0.2):
    """Best-of-3 GFLOP/s of torch.matmul for C[m, n] = op(A) op(B) in `layout`."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(1)
    if layout == 0:  # NT: B stored [n, k]
        a = torch.rand(m, k, generator=gen) * 2 - 1
        b = (torch.rand(n, k, generator=gen) * 2 - 1).t()
    elif layout == 1:  # NN
        a = torch.rand(m, k, generator=gen) * 2 - 1
        b = torch.rand(k, n, generator=gen) * 2 - 1
    else:  # TN: A stored [k, m]
        a = (torch.rand(k, m, generator=gen) * 2 - 1).t()
        b = torch.rand(k, n, generator=gen) * 2 - 1
    c = torch.empty(m, n)
    torch.matmul(a, b, out=c)  # warm-up
    best = float("inf")
    for _ in range(3):
        iterations, start = 0, time.perf_counter()
        while True:
            torch.matmul(a, b, out=c)
            iterations += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds / 3:
                break
        best = min(best, elapsed / iterations)
    return 2.0 * m * n * k / best * 1e-9


def fmt(x):
    return "-" if x is None else f"{x:7.1f}"


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:5.2f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("json", help="edgefl_models_bench --benchmark_format=json output, or -")
    parser.add_argument("--min-seconds", type=float, default=0.2,
                        help="time per PyTorch measurement (default 0.2)")
    args = parser.parse_args()

    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is missing: apt-get install -y python3-torch, then run with "
                 "/usr/bin/python3")

    blas = os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")
    if "/blas/" in blas:
        print(f"warning: torch's BLAS is the netlib reference ({blas}); install "
              "libopenblas0-openmp for a meaningful comparison", file=sys.stderr)
    ours, context = load_edgefl(args.json)
    shapes = sorted({key[1:] for key in ours}, key=lambda s: (-s[0] * s[1] * s[2], s))
    print(f"edgefl kernel level: {context.get('kernel_level', '?')}, "
          f"fp32 peak/thread (assumed): {context.get('fp32_peak_gflops_per_thread', '?')} "
          f"GFLOP/s; torch {torch.__version__} with BLAS {blas}")
    print("GFLOP/s (2mnk/s; int8 counts integer multiply-adds). Ratios > 1: edgefl faster.")
    header = (f"{'m':>5} {'n':>5} {'k':>5} {'t':>2} | {'torch1':>7} {'eigen':>7} {'ours1':>7} "
              f"{'o/t1':>5} {'o/eig':>5} | {'torch2':>7} {'ours2':>7} {'o/t2':>5} | "
              f"{'int8':>7} {'i8/o1':>5} {'int4':>7} {'i4/t1':>5}")
    print(header)
    print("-" * len(header))
    for m, n, k, layout in shapes:
        def get(kernel):
            return ours.get((kernel, m, n, k, layout))
        torch1 = time_torch(torch, m, n, k, layout, 1, args.min_seconds)
        torch2 = time_torch(torch, m, n, k, layout, 2, args.min_seconds)
        eigen, ours1, ours2 = (get("BM_Gemm_F32Eigen"), get("BM_Gemm_F32Dispatched"),
                               get("BM_Gemm_F32Parallel"))
        int8, int4 = get("BM_Gemm_Int8Dispatched"), get("BM_Gemm_Int4Dispatched")
        print(f"{m:5d} {n:5d} {k:5d} {LAYOUTS[layout]:>2} | {fmt(torch1)} {fmt(eigen)} "
              f"{fmt(ours1)} {ratio(ours1, torch1):>5} {ratio(ours1, eigen):>5} | "
              f"{fmt(torch2)} {fmt(ours2)} {ratio(ours2, torch2):>5} | "
              f"{fmt(int8)} {ratio(int8, ours1):>5} {fmt(int4)} {ratio(int4, torch1):>5}")


if __name__ == "__main__":
    main()

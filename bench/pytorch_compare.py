#!/usr/bin/python3
"""Compares edgefl's training step and GEMM kernels with PyTorch's in the same run.

Train step (the default): for each model (mlp, cnn), batch size (10, 32) and thread count
(1, 2), runs edgefl_models_bench's BM_TrainStep/<model>/batch:<b>/threads:<t> (JSON output)
and the same step in PyTorch: the same architecture (models/builtin/*.toml), softmax
cross-entropy, plain SGD with lr 0.05, the same batch of 1x28x28 inputs in [0, 1], with
torch.set_num_threads(t). Each round measures every case once in each framework, edgefl
then PyTorch back to back, so that drift on a shared machine hits both alike; the table
reports the median over rounds of examples per wall-clock second, the ratio edgefl / PyTorch
(> 1: edgefl faster) with its spread over rounds, and whether it meets the goal (default
1.5, issue 3). "cpu ratio" divides examples per CPU second of each whole process instead:
on a loaded machine it is the steadier figure for one thread (with two it also counts
OpenMP's spinning). The exit status is 0 when every case meets the goal, else 1.

  bench/pytorch_compare.py --bench build/bench/edgefl_models_bench
  bench/pytorch_compare.py --bench ... --models mlp --batches 10 --rounds 7 --json out.json

GEMM kernels (--gemm): reads a Google Benchmark JSON of BM_Gemm_* cases, times torch.matmul
on the same (m, n, k, layout) shapes with 1 and 2 threads, and prints GFLOP/s and ratios.

  edgefl_models_bench --benchmark_filter=Gemm --benchmark_format=json > models.json
  bench/pytorch_compare.py --gemm models.json            # or: ... | ... --gemm -

PyTorch is Debian's python3-torch, which lives in /usr/bin/python3's dist-packages, hence the
interpreter above. Install an optimised BLAS with it: without one, Debian's torch runs its
matrix products on the netlib reference BLAS, several times slower, and the ratios mean
nothing (the script warns):

  apt-get install -y python3-torch libopenblas0-openmp

PyTorch's CPU allocator mallocs and frees every activation each step. With glibc's default
thresholds, blocks of more than 128 KiB come from mmap and go back to the kernel when freed,
so every step page-faults its activations in again; on a virtual machine, where a page fault
is costly, that made torch's cnn step 4-5x slower (94 against 20 ms at batch 32). The script
therefore runs itself (and so both frameworks) with glibc.malloc tunables that keep freed
memory in the heap, as a caching allocator (jemalloc, tcmalloc; PyTorch's tuning guide
recommends them) would; --default-malloc turns this off.
"""

import argparse
import copy
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import time

# ---------------------------------------------------------------------------------------------
# Train step.

LEARNING_RATE = 0.05  # as BM_TrainStep in bench/models_bench.cc
INPUT_SHAPE = (1, 28, 28)
NUM_CLASSES = 10


def build_torch_model(torch, name):
    """The PyTorch twin of models/builtin/<name>.toml."""
    nn = torch.nn
    if name == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 200), nn.ReLU(), nn.Linear(200, 200),
                             nn.ReLU(), nn.Linear(200, NUM_CLASSES))
    if name == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(3136, 512), nn.ReLU(),
                             nn.Linear(512, NUM_CLASSES))
    raise ValueError(f"unknown model {name!r}")


EXPECTED_PARAMETERS = {"mlp": 199_210, "cnn": 1_663_370}  # models/builtin/*.toml


class TorchStep:
    """One model, batch and optimizer, ready to time train steps."""

    def __init__(self, torch, name, batch):
        self.torch = torch
        torch.manual_seed(1)
        self.model = build_torch_model(torch, name)
        count = sum(p.numel() for p in self.model.parameters())
        if count != EXPECTED_PARAMETERS[name]:
            raise RuntimeError(f"torch {name} has {count} parameters, edgefl's has "
                               f"{EXPECTED_PARAMETERS[name]}")
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=LEARNING_RATE)
        self.loss = torch.nn.CrossEntropyLoss()
        # Every timing starts from these weights, as each edgefl_models_bench process starts
        # from its model's initialisation: hundreds of steps on one batch drive the loss and
        # gradients towards zero, into subnormal floats, on which the CPU is many times slower
        # (torch measured 3-4x slower after a few rounds without this reset).
        self.initial_state = copy.deepcopy(self.model.state_dict())
        gen = torch.Generator().manual_seed(2)
        self.inputs = torch.rand((batch,) + INPUT_SHAPE, generator=gen)
        self.labels = torch.randint(0, NUM_CLASSES, (batch,), generator=gen)
        self.batch = batch

    def step(self):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(self.model(self.inputs), self.labels)
        loss.backward()
        self.optimizer.step()

    def examples_per_second(self, threads, min_seconds):
        """(examples per wall-clock second, per process CPU second): restarts from the initial
        weights, warms up for a tenth of min_seconds (at least 3 steps), then times whole
        steps."""
        self.model.load_state_dict(self.initial_state)
        self.torch.set_num_threads(threads)
        deadline = time.perf_counter() + min_seconds / 10
        for i in range(1000000):
            self.step()
            if i >= 2 and time.perf_counter() >= deadline:
                break
        steps, start, cpu_start = 0, time.perf_counter(), time.process_time()
        while True:
            self.step()
            steps += 1
            elapsed = time.perf_counter() - start
            if elapsed >= min_seconds:
                cpu = time.process_time() - cpu_start
                return steps * self.batch / elapsed, steps * self.batch / cpu


def edgefl_examples_per_second(bench, name, min_seconds):
    """(examples per wall-clock second, per process CPU second) of one BM_TrainStep case, from
    a fresh edgefl_models_bench process."""
    # The cases are timed on the wall clock, so Google Benchmark appends "/real_time".
    full_name = name + "/real_time"
    command = [bench, f"--benchmark_filter=^{re.escape(full_name)}$", "--benchmark_format=json",
               f"--benchmark_min_time={min_seconds}"]
    run = subprocess.run(command, capture_output=True, text=True, check=False)
    if run.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({run.returncode}):\n{run.stderr}")
    results = []
    if run.stdout.strip():
        results = [b for b in json.loads(run.stdout)["benchmarks"] if b["name"] == full_name]
    if not results:
        sys.exit(f"{bench} has no benchmark {name}")
    if "error_occurred" in results[0]:
        sys.exit(f"{name}: {results[0].get('error_message')}")
    return results[0]["items_per_second"], results[0]["examples/cpu_s"]


def compare_train_steps(args):
    torch = import_torch()
    cases = [(m, b, t) for m in args.models for b in args.batches for t in args.threads]
    steps = {(m, b): TorchStep(torch, m, b) for m in args.models for b in args.batches}
    ours = {case: [] for case in cases}  # (wall, cpu) examples/s per round
    theirs = {case: [] for case in cases}
    load_start = os.getloadavg()
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for case in cases:
            model, batch, threads = case
            name = f"BM_TrainStep/{model}/batch:{batch}/threads:{threads}"
            ours[case].append(edgefl_examples_per_second(args.bench, name, args.min_seconds))
            theirs[case].append(steps[(model, batch)].examples_per_second(threads,
                                                                            args.min_seconds))

    rows = []
    for case in cases:
        model, batch, threads = case
        edgefl = statistics.median(w for w, _ in ours[case])
        pytorch = statistics.median(w for w, _ in theirs[case])
        cpu_ratio = (statistics.median(c for _, c in ours[case]) /
                     statistics.median(c for _, c in theirs[case]))
        rows.append({"model": model, "batch": batch, "threads": threads,
                     "edgefl_examples_per_second": edgefl,
                     "torch_examples_per_second": pytorch,
                     "ratio": edgefl / pytorch, "cpu_ratio": cpu_ratio, "goal": args.goal,
                     "goal_met": edgefl / pytorch >= args.goal,
                     "edgefl_rounds": [w for w, _ in ours[case]],
                     "torch_rounds": [w for w, _ in theirs[case]],
                     "edgefl_cpu_rounds": [c for _, c in ours[case]],
                     "torch_cpu_rounds": [c for _, c in theirs[case]]})

    load = os.getloadavg()
    print(f"load average {load_start[0]:.2f} {load_start[1]:.2f} {load_start[2]:.2f} at the "
          f"start")
    print(f"train step (forward + loss + backward + SGD lr {LEARNING_RATE}), median of "
          f"{args.rounds} interleaved rounds of {args.min_seconds} s each; torch "
          f"{torch.__version__}, {blas_path()}; load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f} at the end; GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')}")
    header = (f"{'model':<5} {'batch':>5} {'threads':>7} | {'edgefl ex/s':>11} "
              f"{'torch ex/s':>11} | {'ratio':>6} {'min':>5} {'max':>5} | {'cpu ratio':>9} | "
              f"goal {args.goal}x")
    print(header)
    print("-" * len(header))
    for row in rows:
        # The spread of per-round ratios shows how much the machine's noise moved things.
        per_round = [a / b for a, b in zip(row["edgefl_rounds"], row["torch_rounds"])]
        print(f"{row['model']:<5} {row['batch']:>5} {row['threads']:>7} | "
              f"{row['edgefl_examples_per_second']:>11.0f} "
              f"{row['torch_examples_per_second']:>11.0f} | {row['ratio']:>6.2f} "
              f"{min(per_round):>5.2f} {max(per_round):>5.2f} | {row['cpu_ratio']:>9.2f} | "
              f"{'met' if row['goal_met'] else 'NOT met'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"torch_version": torch.__version__, "blas": blas_path(),
                       "load_average_start": load_start, "load_average_end": load, "rounds": args.rounds,
                       "min_seconds": args.min_seconds, "results": rows}, f, indent=2)
    if args.csv:
        fields = ["model", "batch", "threads", "edgefl_examples_per_second",
                  "torch_examples_per_second", "ratio", "cpu_ratio", "goal", "goal_met"]
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
    return 0 if all(row["goal_met"] for row in rows) else 1


# ---------------------------------------------------------------------------------------------
# GEMM kernels.

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


def compare_gemm(args):
    torch = import_torch()
    ours, context = load_edgefl(args.gemm)
    shapes = sorted({key[1:] for key in ours}, key=lambda s: (-s[0] * s[1] * s[2], s))
    print(f"edgefl kernel level: {context.get('kernel_level', '?')}, "
          f"fp32 peak/thread (measured FMA chains): "
          f"{context.get('fp32_peak_gflops_per_thread', '?')} "
          f"GFLOP/s; torch {torch.__version__} with BLAS {blas_path()}")
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
    return 0


# ---------------------------------------------------------------------------------------------

def import_torch():
    try:
        import torch
    except ImportError:
        sys.exit("PyTorch is missing: apt-get install -y python3-torch, then run with "
                 "/usr/bin/python3")
    if "/blas/" in blas_path():
        print(f"warning: torch's BLAS is the netlib reference ({blas_path()}); install "
              "libopenblas0-openmp for a meaningful comparison", file=sys.stderr)
    return torch


def blas_path():
    return os.path.realpath("/usr/lib/x86_64-linux-gnu/libblas.so.3")


def int_list(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers >= 1, got {text!r}")
    return values


def model_list(text):
    names = text.split(",")
    unknown = [n for n in names if n not in EXPECTED_PARAMETERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown model(s) {unknown}; known: "
                                         f"{', '.join(EXPECTED_PARAMETERS)}")
    return names


# Keep freed blocks in the heap instead of returning them to the kernel (see the docstring).
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def main():
    if "--default-malloc" not in sys.argv and "GLIBC_TUNABLES" not in os.environ:
        os.environ["GLIBC_TUNABLES"] = MALLOC_TUNABLES
        os.execv(sys.executable, [sys.executable] + sys.argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--bench", help="edgefl_models_bench binary: compare train steps")
    mode.add_argument("--gemm", metavar="JSON",
                      help="edgefl_models_bench --benchmark_format=json output, or -: compare "
                           "GEMM kernels")
    parser.add_argument("--models", type=model_list, default=["mlp", "cnn"])
    parser.add_argument("--batches", type=int_list, default=[10, 32])
    parser.add_argument("--threads", type=int_list, default=[1, 2])
    parser.add_argument("--rounds", type=int, default=5,
                        help="interleaved measurements per case; the median is reported "
                             "(default 5)")
    parser.add_argument("--min-seconds", type=float, default=None,
                        help="time per measurement (default 0.3 for train steps, 0.2 for GEMM)")
    parser.add_argument("--goal", type=float, default=1.5,
                        help="edgefl / PyTorch ratio to meet (default 1.5)")
    parser.add_argument("--json", help="also write the train-step results here")
    parser.add_argument("--csv", help="also write the train-step table here")
    parser.add_argument("--default-malloc", action="store_true",
                        help="run with glibc's default malloc thresholds (see above)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.gemm:
        args.min_seconds = args.min_seconds or 0.2
        return compare_gemm(args)
    if not os.access(args.bench, os.X_OK):
        parser.error(f"--bench {args.bench}: not an executable file")
    args.min_seconds = args.min_seconds or 0.3
    return compare_train_steps(args)


if __name__ == "__main__":
    sys.exit(main())

// Benchmarks of the models kernels (edgefl/models/kernels.h): fp32 GEMM of the reference, of
// Eigen built for the active level (the floor), of the dispatched kernel and of the threaded
// driver; int8 and int4 GEMMs on the forward shapes. Each family runs on a large square shape
// and on the shapes of the 784-200-200-10 MLP's Dense layers (batch 10 and 32): forward NT
// (Y = X W^T), input gradient NN (dX = dY W) and weight gradient TN (dW = dY^T X).
//
// Counters: "GFLOP/s" counts 2 m n k operations per call (integer multiply-adds for int8) per
// second of CPU time (wall-clock time for the threaded BM_Gemm_F32Parallel), and
// "%peak" relates it to the fp32 peak of the threads used: threads x MHz x FLOP/cycle, with
// the MHz read from /proc/cpuinfo (the nominal clock; turbo can exceed it, so "%peak" can pass
// 100 on a boosting CPU) and FLOP/cycle assumed as 2 FMA pipes x vector lanes x 2 (AVX-512: 64,
// AVX2: 32, baseline SSE2: 16), which holds for Zen 4/5 and Intel server cores.
//
//   edgefl_models_bench --benchmark_filter=Gemm_F32 --benchmark_format=json > models.json
//   bench/pytorch_compare.py models.json
#include <benchmark/benchmark.h>

#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/models/kernels.h"
#include "edgefl/models/quantization.h"

namespace edgefl::models::kernels {
namespace {

double CpuMhz() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("cpu MHz", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return std::stod(line.substr(colon + 1));
    }
  }
  return 2000.0;  // an assumption, stated in the context output
}

double Fp32FlopsPerCycle(Isa isa) {
  switch (isa) {
    case Isa::kAvx512:
      return 64.0;
    case Isa::kAvx2:
      return 32.0;
    default:
      return 16.0;
  }
}

double PeakGflopsPerThread() {
  static const double peak = CpuMhz() * 1e-3 * Fp32FlopsPerCycle(ActiveIsa());
  return peak;
}

const int kContext = [] {
  benchmark::AddCustomContext("kernel_level", std::string(IsaName(ActiveIsa())));
  benchmark::AddCustomContext("cpu_mhz_from_proc_cpuinfo", std::to_string(CpuMhz()));
  benchmark::AddCustomContext("assumed_fp32_flop_per_cycle",
                              std::to_string(Fp32FlopsPerCycle(ActiveIsa())));
  benchmark::AddCustomContext("fp32_peak_gflops_per_thread", std::to_string(PeakGflopsPerThread()));
  return 0;
}();

enum Layout : int64_t { kNT = 0, kNN = 1, kTN = 2 };

Transpose TransA(int64_t layout) { return layout == kTN ? Transpose::kYes : Transpose::kNo; }
Transpose TransB(int64_t layout) { return layout == kNT ? Transpose::kYes : Transpose::kNo; }

void SetCounters(benchmark::State& state, double m, double n, double k, int threads) {
  const double flops = 2.0 * m * n * k * static_cast<double>(state.iterations());
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsRate);
  state.counters["%peak"] = benchmark::Counter(
      100.0 * flops * 1e-9 / (PeakGflopsPerThread() * threads), benchmark::Counter::kIsRate);
  state.counters["threads"] = threads;
  const char* names[] = {"NT", "NN", "TN"};
  state.SetLabel(names[state.range(3)]);
}

std::vector<float> RandomFloats(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(2.0 * rng.Uniform01() - 1.0);
  return v;
}

// Operands of C[m, n] = op(A) op(B) for the layout in state.range(3).
struct F32Problem {
  size_t m, n, k;
  Transpose ta, tb;
  size_t lda, ldb;
  std::vector<float> a, b, c, workspace;
  explicit F32Problem(const benchmark::State& state)
      : m(static_cast<size_t>(state.range(0))),
        n(static_cast<size_t>(state.range(1))),
        k(static_cast<size_t>(state.range(2))),
        ta(TransA(state.range(3))),
        tb(TransB(state.range(3))),
        lda(ta == Transpose::kNo ? k : m),
        ldb(tb == Transpose::kNo ? n : k),
        a(RandomFloats(m * k, 1)),
        b(RandomFloats(k * n, 2)),
        c(m * n),
        workspace(kGemmF32WorkspaceFloats) {}
  void Run(GemmF32Fn gemm) {
    gemm(ta, tb, m, n, k, 1.0f, a.data(), lda, b.data(), ldb, 0.0f, c.data(), n, workspace.data());
  }
};

void RunF32(benchmark::State& state, GemmF32Fn gemm) {
  F32Problem p(state);
  for (auto _ : state) {
    p.Run(gemm);
    benchmark::DoNotOptimize(p.c.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, p.m, p.n, p.k, 1);
}

void BM_Gemm_F32Reference(benchmark::State& state) {
  RunF32(state, KernelsFor(Isa::kReference).gemm_f32);
}
void BM_Gemm_F32EigenSse2(benchmark::State& state) {
  RunF32(state, KernelsFor(Isa::kBaseline).gemm_f32_eigen);
}
void BM_Gemm_F32Eigen(benchmark::State& state) { RunF32(state, Kernels().gemm_f32_eigen); }
void BM_Gemm_F32Dispatched(benchmark::State& state) { RunF32(state, Kernels().gemm_f32); }

void BM_Gemm_F32Parallel(benchmark::State& state) {
  F32Problem p(state);
  for (auto _ : state) {
    ParallelGemmF32(p.ta, p.tb, p.m, p.n, p.k, 1.0f, p.a.data(), p.lda, p.b.data(), p.ldb, 0.0f,
                    p.c.data(), p.n);
    benchmark::DoNotOptimize(p.c.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, p.m, p.n, p.k, MaxDriverThreads());
}

// Y[m, n] = X[m, k] W[n, k]^T with W quantized to int8 per channel and X to u8.
void BM_Gemm_Int8Dispatched(benchmark::State& state) {
  const auto m = static_cast<size_t>(state.range(0));
  const auto n = static_cast<size_t>(state.range(1));
  const auto k = static_cast<size_t>(state.range(2));
  const Int8Weights w = QuantizeAndPackInt8(RandomFloats(n * k, 2), n, k);
  std::vector<uint8_t> a(m * k);
  Rng rng(3);
  for (uint8_t& x : a) x = static_cast<uint8_t>(rng.UniformInt(256));
  std::vector<int32_t> c(m * n);
  const GemmU8S8S32Fn gemm = Kernels().gemm_u8s8s32;
  for (auto _ : state) {
    gemm(m, n, k, a.data(), k, w.packed.data(), c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, m, n, k, 1);
}

// Y[m, n] = X[m, k] dequant(W)[n, k]^T with W in int4 groups of 32.
void BM_Gemm_Int4Dispatched(benchmark::State& state) {
  const auto m = static_cast<size_t>(state.range(0));
  const auto n = static_cast<size_t>(state.range(1));
  const auto k = static_cast<size_t>(state.range(2));
  std::vector<Int4Block> w(n * Int4BlocksPerRow(k));
  (void)QuantizeInt4Groups(RandomFloats(n * k, 2), n, k, w);
  const std::vector<float> x = RandomFloats(m * k, 1);
  std::vector<float> y(m * n);
  const GemmF32Int4Fn gemm = Kernels().gemm_f32_int4;
  for (auto _ : state) {
    gemm(m, n, k, x.data(), k, w.data(), 0.0f, y.data(), n);
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  SetCounters(state, m, n, k, 1);
}

// {m, n, k, layout}: the large square product, then the MLP's first Dense layer
// (784 -> 200) at batch 10 and 32 in its three products.
void AllShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "t"});
  b->Args({1024, 1024, 1024, kNT})->Args({1024, 1024, 1024, kNN});
  for (int64_t batch : {10, 32}) {
    b->Args({batch, 200, 784, kNT})->Args({batch, 784, 200, kNN})->Args({200, 784, batch, kTN});
  }
  b->Unit(benchmark::kMicrosecond);
}
void ForwardShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "t"});
  b->Args({1024, 1024, 1024, kNT})->Args({10, 200, 784, kNT})->Args({32, 200, 784, kNT});
  b->Unit(benchmark::kMicrosecond);
}

BENCHMARK(BM_Gemm_F32Reference)->Apply(AllShapes);
BENCHMARK(BM_Gemm_F32EigenSse2)->Apply(AllShapes);
BENCHMARK(BM_Gemm_F32Eigen)->Apply(AllShapes);
BENCHMARK(BM_Gemm_F32Dispatched)->Apply(AllShapes);
// Wall-clock time: the CPU time of a threaded run adds up every thread, spinning included.
BENCHMARK(BM_Gemm_F32Parallel)->Apply(AllShapes)->UseRealTime();
BENCHMARK(BM_Gemm_Int8Dispatched)->Apply(ForwardShapes);
BENCHMARK(BM_Gemm_Int4Dispatched)->Apply(ForwardShapes);

}  // namespace
}  // namespace edgefl::models::kernels

// ---------------------------------------------------------------------------------------------
// One training step of the built-in cnn (McMahan et al. 2017; models/builtin/cnn.toml) on
// 1x28x28 inputs: ForwardBackward + a plain SGD step, single-threaded as in the simulator's
// per-client pool. "GFLOP/s" counts the step's multiply-adds: forward 2 x (conv1 32x784x25 +
// conv2 64x196x800 + fc1 512x3136 + fc2 10x512) per example, backward twice that minus conv1's
// input gradient, which is not computed. PyTorch's baseline for the same step:
// bench/pytorch_compare.py.
#include "edgefl/models/model.h"
#include "edgefl/models/optimizer.h"
#include "edgefl/models/threading.h"

namespace edgefl::models {
namespace {

void BM_TrainStep_Cnn(benchmark::State& state) {
  const auto batch = static_cast<size_t>(state.range(0));
  const int saved_threads = NumThreads();
  SetNumThreads(1);
  std::unique_ptr<Model> model = CreateModel(ModelSpec{.name = "cnn"}).value();
  model->InitializeParameters(1);
  Rng rng(2);
  std::vector<float> inputs(batch * 784);
  for (float& x : inputs) x = static_cast<float>(rng.Uniform01());
  std::vector<uint8_t> labels(batch);
  for (uint8_t& y : labels) y = static_cast<uint8_t>(rng.UniformInt(10));
  Sgd sgd(SgdOptions{.learning_rate = 0.01f}, model->num_parameters());
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        model->ForwardBackward(Batch{.inputs = inputs, .labels = labels, .batch_size = batch}));
    sgd.Step(model->parameters(), model->gradients());
    benchmark::ClobberMemory();
  }
  const double conv1 = 32.0 * 784 * 25, conv2 = 64.0 * 196 * 800, fc = 512.0 * 3136 + 10.0 * 512;
  const double flops_per_example = 2.0 * (3.0 * (conv1 + conv2 + fc) - conv1);
  const double examples = static_cast<double>(state.iterations() * batch);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_example * examples * 1e-9, benchmark::Counter::kIsRate);
  state.counters["examples/s"] = benchmark::Counter(examples, benchmark::Counter::kIsRate);
  SetNumThreads(saved_threads);
}

void BM_TrainStep_Cnn_B10(benchmark::State& state) { BM_TrainStep_Cnn(state); }
void BM_TrainStep_Cnn_B32(benchmark::State& state) { BM_TrainStep_Cnn(state); }
BENCHMARK(BM_TrainStep_Cnn_B10)->Arg(10)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_TrainStep_Cnn_B32)->Arg(32)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgefl::models

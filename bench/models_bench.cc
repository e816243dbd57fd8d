// Benchmarks of the models kernels (edgefl/models/kernels.h): fp32 GEMM of the reference, of
// Eigen built for the active level (the floor), of the dispatched kernel and of the threaded
// driver; int8 and int4 GEMMs on the forward shapes. Each family runs on a large square shape
// and on the shapes of the 784-200-200-10 MLP's Dense layers (batch 10 and 32): forward NT
// (Y = X W^T), input gradient NN (dX = dY W) and weight gradient TN (dW = dY^T X).
//
// Counters: "GFLOP/s" counts 2 m n k operations per call (integer multiply-adds for int8) per
// second of CPU time (wall-clock time for the threaded BM_Gemm_F32Parallel), and
// "%peak" relates it to the fp32 peak of the threads used, measured at start-up: one thread
// runs 12 independent chains of fused multiply-adds on the active level's widest registers for
// 0.2 s (the most a core can do, at the clock it actually runs, turbo included). The context
// also lists the nominal figure, /proc/cpuinfo's MHz x 2 FMA pipes x lanes x 2, which a
// boosting CPU exceeds.
//
//   edgefl_models_bench --benchmark_filter=Gemm_F32 --benchmark_format=json > models.json
//   bench/pytorch_compare.py --gemm models.json
//
// The end of the file times a training step of the mlp and the cnn (BM_TrainStep/...).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/models/kernels.h"
#include "edgefl/models/layers.h"
#include "edgefl/models/model.h"
#include "edgefl/models/optimizer.h"
#include "edgefl/models/quantization.h"
#include "edgefl/models/threading.h"

#include "bench_timing.h"

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

// FLOP/s of `kChains` independent FMA chains of `Vec` (one vector register each; enough to
// cover the FMA pipes' latency x throughput on current x86 cores) for about `seconds`. Always
// inlined, so that it is compiled for its caller's target below.
template <typename Vec>
inline __attribute__((always_inline)) double FmaChainsGflops(double seconds) {
  constexpr int kChains = 12;
  constexpr int kLanes = sizeof(Vec) / sizeof(float);
  Vec acc[kChains];
  for (int c = 0; c < kChains; ++c) acc[c] = Vec{} + 1.0f + 1e-3f * static_cast<float>(c);
  const Vec scale = Vec{} + 0.9999f, shift = Vec{} + 1e-4f;
  double flops = 0.0;
  const double start = edgefl::bench::ProcessCpuSeconds();
  double elapsed = 0.0;
  while (elapsed < seconds) {
    constexpr long kIterations = 1 << 20;
    for (long i = 0; i < kIterations; ++i) {
#pragma GCC unroll 12
      for (int c = 0; c < kChains; ++c) acc[c] = acc[c] * scale + shift;  // contracted to FMA
    }
    flops += 2.0 * kLanes * kChains * kIterations;
    elapsed = edgefl::bench::ProcessCpuSeconds() - start;
  }
  Vec total{};
  for (int c = 0; c < kChains; ++c) total += acc[c];
  float sum = 0.0f;
  for (int lane = 0; lane < kLanes; ++lane) sum += total[lane];
  benchmark::DoNotOptimize(sum);
  return flops / elapsed * 1e-9;
}

using Floats16 = float __attribute__((vector_size(64)));
using Floats8 = float __attribute__((vector_size(32)));
using Floats4 = float __attribute__((vector_size(16)));
__attribute__((target("avx512f,fma"), optimize("fp-contract=fast"))) double PeakAvx512() {
  return FmaChainsGflops<Floats16>(0.2);
}
__attribute__((target("avx2,fma"), optimize("fp-contract=fast"))) double PeakAvx2() {
  return FmaChainsGflops<Floats8>(0.2);
}
double PeakBaseline() { return FmaChainsGflops<Floats4>(0.2); }

double PeakGflopsPerThread() {
  static const double peak = [] {
    switch (ActiveIsa()) {
      case Isa::kAvx512:
        return PeakAvx512();
      case Isa::kAvx2:
        return PeakAvx2();
      default:
        return PeakBaseline();
    }
  }();
  return peak;
}

const int kContext = [] {
  benchmark::AddCustomContext("kernel_level", std::string(IsaName(ActiveIsa())));
  benchmark::AddCustomContext("cpu_mhz_from_proc_cpuinfo", std::to_string(CpuMhz()));
  benchmark::AddCustomContext(
      "nominal_fp32_peak_gflops_per_thread",
      std::to_string(CpuMhz() * 1e-3 * Fp32FlopsPerCycle(ActiveIsa())));
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
// (784 -> 200) at batch 10 and 32 in its three products, and the cnn's fc1 (3136 -> 512) at
// batch 32.
void AllShapes(benchmark::internal::Benchmark* b) {
  b->ArgNames({"m", "n", "k", "t"});
  b->Args({1024, 1024, 1024, kNT})->Args({1024, 1024, 1024, kNN});
  for (int64_t batch : {10, 32}) {
    b->Args({batch, 200, 784, kNT})->Args({batch, 784, 200, kNN})->Args({200, 784, batch, kTN});
  }
  b->Args({32, 512, 3136, kNT})->Args({32, 3136, 512, kNN})->Args({512, 3136, 32, kTN});
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

// 2x2 max-pooling, forward + backward, of the cnn's pool1 input (32 x 28 x 28 per example)
// over a batch of 32, one thread: the scalar reference against the level Kernels() uses.
// "GB/s" counts the bytes each pass must move at least (x, y, argmax; dy, argmax, dx), to
// compare with the memory bandwidth.
void BM_MaxPool2x2(benchmark::State& state, Isa isa) {
  constexpr size_t kBatch = 32, kChannels = 32, kSide = 28;
  constexpr size_t kIn = kChannels * kSide * kSide, kOut = kIn / 4;
  Rng rng(5);
  std::vector<float> x(kBatch * kIn), dy(kBatch * kOut), y(kBatch * kOut),
      argmax(kBatch * kOut), dx(kBatch * kIn);
  for (float& v : x) v = std::max(0.0f, static_cast<float>(2.0 * rng.Uniform01() - 1.0));
  for (float& v : dy) v = static_cast<float>(2.0 * rng.Uniform01() - 1.0);
  const KernelTable& table = KernelsFor(isa);
  for (auto _ : state) {
    for (size_t n = 0; n < kBatch; ++n) {
      table.max_pool2x2_f32(kChannels, kSide, kSide, x.data() + n * kIn, y.data() + n * kOut,
                            argmax.data() + n * kOut);
    }
    for (size_t n = 0; n < kBatch; ++n) {
      table.max_pool2x2_backward_f32(kChannels, kSide, kSide, dy.data() + n * kOut,
                                     argmax.data() + n * kOut, dx.data() + n * kIn);
    }
    benchmark::ClobberMemory();
  }
  const double bytes = 4.0 * kBatch * 2.0 * (kIn + 2.0 * kOut);
  state.counters["GB/s"] = benchmark::Counter(
      bytes * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK_CAPTURE(BM_MaxPool2x2, reference, Isa::kReference)->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_MaxPool2x2, dispatched, ActiveIsa())->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace edgefl::models::kernels

// ---------------------------------------------------------------------------------------------
// One training step of a built-in model on one batch of Fashion-MNIST-shaped data (784 values
// in [0, 1] as 1x28x28, 10 classes): ForwardBackward (forward, softmax cross-entropy, backward)
// and a plain SGD step (lr 0.05), with the model's threads bounded by SetNumThreads as
// `edgefl train --threads` does. Cases are named BM_TrainStep/<model>/batch:<b>/threads:<t>
// and timed on the wall clock (a threaded step's CPU time adds up every thread);
// items_per_second is examples per second of wall-clock time; "examples/cpu_s" divides by the
// CPU time of the whole process (every thread, spinning included), which a loaded machine
// disturbs far less for one thread. "GFLOP/s" counts the step's nominal multiply-adds, those
// of a direct convolution: forward F, backward 2F minus the first layer's input gradient,
// which is not computed. The cnn's conv2 runs by Winograd's algorithm, which does fewer, so
// its figure is an effective rate and can pass the CPU's peak.
// bench/pytorch_compare.py runs the same steps in PyTorch and prints the ratios:
//
//   bench/pytorch_compare.py --bench build/bench/edgefl_models_bench
namespace edgefl::models {
namespace {

using edgefl::bench::ProcessCpuSeconds;

// One Conv2d forward + backward (input gradient included) on a batch, by each algorithm: the
// cnn's conv2 (32 -> 64 channels, 5x5, 'same', 14x14) and a 3x3 layer (64 -> 64, 16x16).
// Cases are BM_Conv2d/<im2col|winograd>/<shape>/batch:<b>/threads:<t>, timed on the wall
// clock; "GFLOP/s" counts a direct convolution's multiply-adds (3 per output and weight), so
// the two algorithms' rates compare as speeds.
void BM_Conv2d(benchmark::State& state, ConvAlgorithm algorithm, int64_t channels,
               int64_t out_channels, int64_t size, int64_t kernel, size_t batch, int threads) {
  const int saved_threads = NumThreads();
  SetNumThreads(threads);
  std::unique_ptr<Layer> conv =
      MakeConv2d("conv", static_cast<size_t>(out_channels), static_cast<size_t>(kernel),
                 ConvPadding::kSame, DenseInit::kHeUniform, algorithm);
  const Shape output = conv->Build({channels, size, size}).value();
  ParameterLayout layout;
  conv->RegisterParameters(layout);
  Rng rng(3);
  auto uniform = [&rng](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = static_cast<float>(2.0 * rng.Uniform01() - 1.0);
    return v;
  };
  const std::vector<float> parameters = uniform(layout.size());
  const std::vector<float> x = uniform(batch * static_cast<size_t>(channels * size * size));
  const std::vector<float> d_out = uniform(batch * NumElements(output));
  std::vector<float> y(d_out.size()), gradients(parameters.size()), d_in(x.size());
  const PassContext pass{
      .batch_size = batch,
      .parameters = parameters,
      .gradients = gradients,
      .parallel = threads > 1 && batch >= conv->min_parallel_batch()};
  for (auto _ : state) {
    conv->Forward(pass, x, y, {});
    conv->Backward(pass, x, y, d_out, d_in, {});
    benchmark::ClobberMemory();
  }
  const double macs = 3.0 * static_cast<double>(batch * NumElements(output)) *
                      static_cast<double>(channels * kernel * kernel);
  state.counters["GFLOP/s"] = benchmark::Counter(
      2.0 * macs * 1e-9 * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  SetNumThreads(saved_threads);
}

const int kConv2dBenchmarks = [] {
  struct Shape {
    const char* name;
    int64_t channels, out_channels, size, kernel;
  };
  for (const Shape& shape : {Shape{"cnn_conv2", 32, 64, 14, 5}, Shape{"3x3_64", 64, 64, 16, 3}}) {
    for (auto [algorithm, algorithm_name] : {std::pair{ConvAlgorithm::kIm2col, "im2col"},
                                             std::pair{ConvAlgorithm::kWinograd, "winograd"}}) {
      for (size_t batch : {10, 32}) {
        for (int threads : {1, 2}) {
          const std::string name = std::string("BM_Conv2d/") + algorithm_name + "/" +
                                   shape.name + "/batch:" + std::to_string(batch) +
                                   "/threads:" + std::to_string(threads);
          benchmark::RegisterBenchmark(name.c_str(), BM_Conv2d, algorithm, shape.channels,
                                       shape.out_channels, shape.size, shape.kernel, batch,
                                       threads)
              ->Unit(benchmark::kMicrosecond)
              ->UseRealTime();
        }
      }
    }
  }
  return 0;
}();

struct TrainStepModel {
  const char* name;
  double forward_macs;      // per example
  double first_input_macs;  // the first layer's input gradient, skipped in backward
};

// mlp: 784-200-200-10; cnn: conv1 32x784x25, conv2 64x196x800, fc1 512x3136, fc2 10x512.
constexpr TrainStepModel kTrainStepModels[] = {
    {"mlp", 784.0 * 200 + 200.0 * 200 + 200.0 * 10, 784.0 * 200},
    {"cnn", 32.0 * 784 * 25 + 64.0 * 196 * 800 + 512.0 * 3136 + 10.0 * 512, 32.0 * 784 * 25},
};

constexpr int kWarmUpSteps = 3;

void BM_TrainStep(benchmark::State& state, TrainStepModel spec, size_t batch, int threads) {
  const int saved_threads = NumThreads();
  SetNumThreads(threads);
  std::unique_ptr<Model> model = CreateModel(ModelSpec{.name = spec.name}).value();
  model->InitializeParameters(1);
  Rng rng(2);
  std::vector<float> inputs(batch * 784);
  for (float& x : inputs) x = static_cast<float>(rng.Uniform01());
  std::vector<uint8_t> labels(batch);
  for (uint8_t& y : labels) y = static_cast<uint8_t>(rng.UniformInt(10));
  Sgd sgd(SgdOptions{.learning_rate = 0.05f}, model->num_parameters());
  const Batch data{.inputs = inputs, .labels = labels, .batch_size = batch};
  // Untimed warm-up steps, as bench/pytorch_compare.py gives torch: the first steps fault in
  // every buffer's pages and start the OpenMP threads, which in a 0.3 s run of the 2-thread
  // cnn step added 20-30% to the time per step.
  for (int i = 0; i < kWarmUpSteps; ++i) {
    model->ForwardBackward(data);
    sgd.Step(model->parameters(), model->gradients());
  }
  const double cpu_start = ProcessCpuSeconds();
  for (auto _ : state) {
    benchmark::DoNotOptimize(model->ForwardBackward(data));
    sgd.Step(model->parameters(), model->gradients());
    benchmark::ClobberMemory();
  }
  const double cpu_seconds = ProcessCpuSeconds() - cpu_start;
  const double examples = static_cast<double>(state.iterations() * batch);
  state.SetItemsProcessed(static_cast<int64_t>(examples));
  state.counters["examples/cpu_s"] = cpu_seconds > 0.0 ? examples / cpu_seconds : 0.0;
  const double flops_per_example = 2.0 * (3.0 * spec.forward_macs - spec.first_input_macs);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_example * examples * 1e-9, benchmark::Counter::kIsRate);
  state.counters["threads"] = threads;
  SetNumThreads(saved_threads);
}

const int kTrainStepBenchmarks = [] {
  for (const TrainStepModel& spec : kTrainStepModels) {
    for (size_t batch : {10, 32}) {
      for (int threads : {1, 2}) {
        const std::string name = std::string("BM_TrainStep/") + spec.name +
                                 "/batch:" + std::to_string(batch) +
                                 "/threads:" + std::to_string(threads);
        benchmark::RegisterBenchmark(name.c_str(), BM_TrainStep, spec, batch, threads)
            ->Unit(benchmark::kMicrosecond)
            ->UseRealTime();
      }
    }
  }
  return 0;
}();

}  // namespace
}  // namespace edgefl::models

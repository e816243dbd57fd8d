// Aggregation cost of one round at the coordinator: Accumulate K client updates, then Finish,
// for FedAvg (the floor: one streaming pass over the updates) and the robust strategies
// fedmedian and fedtrimmedavg (trim_fraction 0.1), which keep every update and reduce each
// coordinate's K values in Finish (robust.h). Shapes: K = 10 and 100 updates of the mlp
// (199,210 floats) and of the cnn (1,663,370 floats); the robust cases on 1 and 2 threads
// (models::SetNumThreads, the bound the simulator sets from --threads).
//
// The memory bound runs in the same program: BM_Aggregation_ReadUpdates sums the K updates'
// values once on one thread, and every round reports `finish_vs_read`, its Finish time over the
// time that read takes at the rate measured for the same shape (best of 3), so 1.0 is Finish at
// the cost of reading its input once.
//
// Counters: GB/s and updates/s count the K x N x 4 bytes of update data per wall second of the
// whole round; add_ms and finish_ms split that round into its two halves (wall, per round).
//
//   edgefl_aggregation_bench --benchmark_filter='fedmedian|ReadUpdates'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "edgefl/aggregation/strategy.h"
#include "edgefl/common/ids.h"
#include "edgefl/common/random.h"
#include "edgefl/models/threading.h"

#include "bench_timing.h"

namespace edgefl::aggregation {
namespace {

using edgefl::bench::SecondsSince;
using edgefl::bench::SteadyClock;

constexpr int64_t kMlpParameters = 199'210;
constexpr int64_t kCnnParameters = 1'663'370;
constexpr size_t kMaxClients = 100;

// kMaxClients updates of num_parameters values, uniform in [-0.01, 0.01) like small local
// steps; a round of K uses the first K. Made once per size and kept for the whole program.
const std::vector<std::vector<float>>& Updates(size_t num_parameters) {
  static std::map<size_t, std::vector<std::vector<float>>> cache;
  std::vector<std::vector<float>>& updates = cache[num_parameters];
  if (updates.empty()) {
    for (size_t k = 0; k < kMaxClients; ++k) {
      Rng rng(DeriveSeed(7, k));
      std::vector<float>& update = updates.emplace_back(num_parameters);
      for (float& x : update) x = static_cast<float>(0.02 * rng.Uniform01() - 0.01);
    }
  }
  return updates;
}

// Reads every value of the first num_clients updates once; returns their sum so that the
// compiler keeps the loads. 32 independent partial sums, so that the adds vectorise and no
// chain of dependent adds, rather than memory, sets the pace.
double ReadOnce(const std::vector<std::vector<float>>& updates, size_t num_clients) {
  constexpr size_t kPartials = 32;
  float partial[kPartials] = {};
  double total = 0.0;
  for (size_t k = 0; k < num_clients; ++k) {
    const std::vector<float>& update = updates[k];
    size_t i = 0;
    for (; i + kPartials <= update.size(); i += kPartials) {
      for (size_t j = 0; j < kPartials; ++j) partial[j] += update[i + j];
    }
    for (; i < update.size(); ++i) total += update[i];
  }
  for (float p : partial) total += p;
  return total;
}

// Seconds one thread takes to read the K x N values once, best of 3.
double ReadSeconds(size_t num_clients, size_t num_parameters) {
  const std::vector<std::vector<float>>& updates = Updates(num_parameters);
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    const SteadyClock::time_point start = SteadyClock::now();
    benchmark::DoNotOptimize(ReadOnce(updates, num_clients));
    best = std::min(best, SecondsSince(start));
  }
  return best;
}

void SetBytesCounters(benchmark::State& state, double bytes_per_iteration) {
  const auto iterations = static_cast<double>(state.iterations());
  state.counters["GB/s"] =
      benchmark::Counter(bytes_per_iteration * 1e-9 * iterations, benchmark::Counter::kIsRate);
}

void BM_Aggregation_ReadUpdates(benchmark::State& state) {
  const auto num_clients = static_cast<size_t>(state.range(0));
  const auto num_parameters = static_cast<size_t>(state.range(1));
  const std::vector<std::vector<float>>& updates = Updates(num_parameters);
  for (auto _ : state) benchmark::DoNotOptimize(ReadOnce(updates, num_clients));
  SetBytesCounters(state, 4.0 * static_cast<double>(num_clients * num_parameters));
}

void BM_Aggregation_Round(benchmark::State& state, std::string name, double trim_fraction) {
  const auto num_clients = static_cast<size_t>(state.range(0));
  const auto num_parameters = static_cast<size_t>(state.range(1));
  models::SetNumThreads(static_cast<int>(state.range(2)));
  const std::vector<std::vector<float>>& updates = Updates(num_parameters);
  Result<std::unique_ptr<Strategy>> strategy =
      CreateStrategy({.name = name, .trim_fraction = trim_fraction}, num_parameters);
  if (!strategy.ok()) {
    state.SkipWithError(strategy.status().ToString().c_str());
    return;
  }
  std::vector<float> global(num_parameters, 0.0f);
  double add_seconds = 0.0, finish_seconds = 0.0;
  const auto round = [&] {
    const SteadyClock::time_point start = SteadyClock::now();
    for (size_t k = 0; k < num_clients; ++k) {
      const Status added = (*strategy)->Accumulate(
          {.client = ClientId(k + 1), .delta = updates[k], .num_examples = 100});
      if (!added.ok()) return added;
    }
    const SteadyClock::time_point added_at = SteadyClock::now();
    const Status finished = (*strategy)->Finish(global);
    finish_seconds += SecondsSince(added_at);
    add_seconds += std::chrono::duration<double>(added_at - start).count();
    // The global weights stay near zero: each round moves them by about 0.01.
    std::fill(global.begin(), global.end(), 0.0f);
    return finished;
  };
  // One untimed round, so that the strategy's buffers exist as they do after round one.
  if (const Status warm = round(); !warm.ok()) {
    state.SkipWithError(warm.ToString().c_str());
    return;
  }
  add_seconds = finish_seconds = 0.0;
  for (auto _ : state) {
    if (const Status done = round(); !done.ok()) {
      state.SkipWithError(done.ToString().c_str());
      return;
    }
  }
  const auto iterations = static_cast<double>(state.iterations());
  const double bytes = 4.0 * static_cast<double>(num_clients * num_parameters);
  SetBytesCounters(state, bytes);
  state.counters["updates/s"] = benchmark::Counter(static_cast<double>(num_clients) * iterations,
                                                   benchmark::Counter::kIsRate);
  state.counters["add_ms"] = 1e3 * add_seconds / iterations;
  state.counters["finish_ms"] = 1e3 * finish_seconds / iterations;
  state.counters["finish_vs_read"] =
      finish_seconds / iterations / ReadSeconds(num_clients, num_parameters);
}

const std::vector<int64_t> kNumClients = {10, kMaxClients};
const std::vector<int64_t> kNumParameters = {kMlpParameters, kCnnParameters};

BENCHMARK(BM_Aggregation_ReadUpdates)
    ->ArgNames({"K", "N"})
    ->ArgsProduct({kNumClients, kNumParameters})
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Aggregation_Round, fedavg, "fedavg", 0.0)
    ->ArgNames({"K", "N", "threads"})
    ->ArgsProduct({kNumClients, kNumParameters, {1}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Aggregation_Round, fedmedian, "fedmedian", 0.0)
    ->ArgNames({"K", "N", "threads"})
    ->ArgsProduct({kNumClients, kNumParameters, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Aggregation_Round, fedtrimmedavg, "fedtrimmedavg", 0.1)
    ->ArgNames({"K", "N", "threads"})
    ->ArgsProduct({kNumClients, kNumParameters, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgefl::aggregation

// Virtual-device rounds per second of the simulator (issue 6): logreg on Fashion-MNIST, 100
// devices per round, one local step each, at 1k, 10k and 100k registered devices, with secure
// aggregation off and on (SecAgg+ with 10 neighbours). Each case runs 4 rounds once; the
// counter rounds_per_s excludes the first round (data loading, partitioning, registration),
// and setup_s is the time until the first round finished.
//
//   edgefl_simulations_bench --benchmark_filter='Rounds/10000'
#include <benchmark/benchmark.h>

#include <filesystem>

#include "edgefl/simulations/config.h"
#include "edgefl/simulations/simulation.h"

namespace {

void BM_Rounds(benchmark::State& state) {
  edgefl::simulations::SimulationConfig config;
  config.model = "logreg";
  config.clients = static_cast<size_t>(state.range(0));
  config.clients_per_round = 100;
  config.rounds = 4;
  config.local_steps = 1;
  config.batch_size = 10;
  config.eval_every = 1000;  // only the last round is evaluated
  config.secagg = state.range(1) != 0;
  config.secagg_neighbours = 10;
  config.device_profiles = "lognormal";
  if (!std::filesystem::exists(config.data_dir)) {
    state.SkipWithError("Fashion-MNIST not installed (apt install dataset-fashion-mnist)");
    return;
  }
  double rounds_per_second = 0.0, setup_seconds = 0.0;
  for (auto _ : state) {
    auto result = edgefl::simulations::RunSimulation(config);
    if (!result.ok()) {
      state.SkipWithError(result.status().ToString().c_str());
      return;
    }
    const auto& rounds = result->rounds;
    setup_seconds = rounds.front().wall_seconds;
    rounds_per_second = static_cast<double>(rounds.size() - 1) /
                        (rounds.back().wall_seconds - rounds.front().wall_seconds);
  }
  state.counters["rounds_per_s"] = rounds_per_second;
  state.counters["device_updates_per_s"] = rounds_per_second * 100;
  state.counters["setup_s"] = setup_seconds;
}

BENCHMARK(BM_Rounds)
    ->Name("Rounds")
    ->ArgNames({"devices", "secagg"})
    ->ArgsProduct({{1000, 10000, 100000}, {0, 1}})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace

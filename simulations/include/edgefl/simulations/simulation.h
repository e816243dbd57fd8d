// RunSimulation: a federated experiment in one process, on the real round engine and the real
// device runtime (DESIGN.md, one round engine). It swaps exactly two seams: the in-process
// channel instead of ZeroMQ and a virtual clock instead of the wall clock.
//
// Data are loaded once and shared; each virtual device holds only its indices. Devices train
// in parallel on a pool of threads, each thread lending its own scratch model, and results do
// not depend on the number of threads: every random stream is derived from the seed and the
// (round, client) it serves, and replies reach the engine in a fixed order.
//
//   SimulationConfig config{.model = "logreg", .rounds = 3};
//   EDGEFL_ASSIGN_OR_RETURN(SimulationResult result, RunSimulation(config));
//   double accuracy = result.rounds.back().test_accuracy;
#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <limits>
#include <optional>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/simulations/config.h"

namespace edgefl::simulations {

struct RoundRecord {
  size_t round = 0;
  double train_loss = 0.0;     // mean local training loss of the reporting clients
  double test_loss = 0.0;      // NaN when the round was not evaluated
  double test_accuracy = 0.0;  // NaN when the round was not evaluated (next-byte, for text)
  // exp(test_loss) for a language model (charlm); NaN when not evaluated or for a classifier.
  double test_perplexity = std::numeric_limits<double>::quiet_NaN();
  double wall_seconds = 0.0;   // since the simulation started, after this round's evaluation
  double sim_seconds = 0.0;    // virtual time at the end of the round
  size_t num_clients_selected = 0;
  size_t num_clients_reported = 0;
  size_t num_clients_dropped = 0;
  size_t num_clients_rejected = 0;
  bool applied = false;        // the aggregate changed the global weights
  double epsilon = 0.0;        // (epsilon, delta) spent so far; 0 without DP
  double mean_staleness = 0.0; // fedbuff: mean staleness of the step's buffered updates
};

struct SimulationResult {
  std::vector<RoundRecord> rounds;
  std::vector<float> final_weights;
  size_t num_parameters = 0;  // floats of the global weights, = of each client's update
  // Parameters of the whole model the update trains: num_parameters, or with LoRA adapters the
  // base model's (478,976 for charlm), so that num_parameters / model_parameters is the
  // update's share of the model.
  size_t model_parameters = 0;
  double label_skew = 0.0;  // of the partition (0 = IID; not computed for text)
  double wall_seconds = 0.0;
  // For text (charlm): the evaluation of the initial global weights, before any round, as
  // round 0 (train_loss NaN, no clients). Empty for the classifiers.
  std::optional<RoundRecord> initial;
};

// Runs `config` (which must Validate). `on_round`, when given, sees each record as it is made.
// Errors: kNotFound for missing data (naming the Debian package), kInvalidArgument for a bad
// config or model/strategy name.
Result<SimulationResult> RunSimulation(const SimulationConfig& config,
                                       const std::function<void(const RoundRecord&)>& on_round = {});

// Writes `records` as CSV with the header
// round,train_loss,test_loss,test_accuracy,wall_seconds,sim_seconds,clients_selected,
// clients_reported,clients_dropped,clients_rejected,epsilon,mean_staleness,perplexity
// (NaN values as empty fields: perplexity is empty for classifiers, train_loss for round 0)
void WriteRoundsCsv(const std::vector<RoundRecord>& records, std::ostream& out);

// `edgefl simulate`: runs, prints a progress line per round and a summary to `out`, and writes
// config.toml, rounds.csv and summary.json into config.out. Returns the process exit code
// (0 on success, 1 on error after printing it to `err`).
int RunSimulateCommand(const SimulationConfig& config, std::ostream& out, std::ostream& err);

}  // namespace edgefl::simulations

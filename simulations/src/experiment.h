// The parts of an experiment that the in-process simulator (simulation.cc) and the sim-worker
// (sim_worker.cc) must build identically from one SimulationConfig, so that a device hosted in
// a worker process holds the same data as the same device in process: the data sets, the
// partition over devices, the model shape, and the test-set evaluation of global weights.
// Defined in simulation.cc. Plain functions; thread-compatible.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "edgefl/client/device.h"
#include "edgefl/coordinator/round_engine.h"
#include "edgefl/common/status.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "edgefl/models/training.h"
#include "edgefl/simulations/config.h"
#include "edgefl/simulations/simulation.h"

namespace edgefl::simulations {

struct Datasets {
  models::Dataset train;
  models::Dataset test;
  // fortunes: each participating category's windows in `train`, in category order (the groups
  // of PartitionGroups). Empty for images.
  std::vector<std::vector<uint32_t>> groups;
};

// The experiment's training and test sets, standardised (the test set left empty without
// `load_test`). kNotFound for missing data.
Result<Datasets> LoadData(const SimulationConfig& config, bool load_test = true);

// Each device's indices into `train`: device i (0-based, ClientId i + 1) uses
// parts[i % parts.size()]. kInvalidArgument for a bad partition name.
Result<std::vector<std::vector<uint32_t>>> PartitionDevices(const SimulationConfig& config,
                                                            const models::Dataset& train);

// The same over `data`: text (data.groups not empty) is partitioned by category
// (PartitionGroups), images as above.
Result<std::vector<std::vector<uint32_t>>> PartitionDevices(const SimulationConfig& config,
                                                            const Datasets& data);

// The model every device and the coordinator build for this experiment and data.
models::ModelSpec ModelSpecFor(const SimulationConfig& config, const models::Dataset& train);

// `count` scratch models of `spec`, one per worker thread.
Result<std::vector<std::unique_ptr<client::Workspace>>> MakeWorkspaces(
    const models::ModelSpec& spec, size_t count);

// Test-set evaluation split over the workspaces' models; the result does not depend on their
// number.
models::Evaluation EvaluateParallel(std::span<const float> weights, const models::Dataset& test,
                                    std::vector<std::unique_ptr<client::Workspace>>& workspaces);

// One rounds.csv row from the engine's report of round `round`, ended at virtual time
// `sim_seconds`: the counts, epsilon and staleness, and, on evaluation rounds (every
// eval_every-th and the last), the test-set evaluation of `weights` (NaN otherwise; perplexity
// for text). wall_seconds is left to the caller.
RoundRecord MakeRoundRecord(const SimulationConfig& config, size_t round,
                            const coordinator::RoundReport& report, double sim_seconds,
                            std::span<const float> weights, const Datasets& data,
                            std::vector<std::unique_ptr<client::Workspace>>& workspaces);

}  // namespace edgefl::simulations

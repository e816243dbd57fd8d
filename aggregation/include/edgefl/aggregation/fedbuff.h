// FedBuff (Nguyen et al. 2022, "Federated Learning with Buffered Asynchronous Aggregation"):
// the server keeps up to `concurrency` devices training at once on whatever model version was
// current when each started, buffers arriving updates, and takes a server step every K of
// them. An update trained on a version `staleness` steps old is scaled by
// 1 / sqrt(1 + staleness) (the paper's polynomial staleness weighting), and the buffer's
// example-weighted mean (as in FedAvg; the paper's plain mean when devices hold equal counts)
// moves the global weights by the server learning rate.
//
// The strategy ("fedbuff" in CreateStrategy) does the averaging and the server step; the round
// engine's RunBufferedStep does the dispatching and scales each delta by
// FedBuffStalenessWeight before Accumulate. Thread-compatible; driven by one thread.
//
//   float w = FedBuffStalenessWeight(3);  // 0.5
//   auto strategy = CreateStrategy({.name = "fedbuff", .server_learning_rate = 1.0f}, n);
//   EDGEFL_ASSIGN_OR_RETURN(RoundReport step, engine.RunBufferedStep());
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "edgefl/aggregation/strategy.h"

namespace edgefl::aggregation {

// 1 / sqrt(1 + staleness): 1 for a fresh update, 0.5 at staleness 3.
float FedBuffStalenessWeight(uint64_t staleness);

// The FedBuff server step: the example-weighted mean of the accumulated (already
// staleness-scaled) deltas times options.server_learning_rate. `options`
// must be valid; num_parameters > 0.
std::unique_ptr<Strategy> MakeFedBuffStrategy(const StrategyOptions& options,
                                              size_t num_parameters);

}  // namespace edgefl::aggregation

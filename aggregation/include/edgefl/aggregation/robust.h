// Byzantine-robust aggregation: the coordinate-wise median ("fedmedian") and the coordinate-wise
// trimmed mean ("fedtrimmedavg") of a round's client updates (Yin et al. 2018, "Byzantine-Robust
// Distributed Learning: Towards Optimal Statistical Rates", ICML, arXiv:1803.01498; Flower's
// FedMedian and FedTrimmedAvg). Under FedAvg one cohort member sending huge but finite values
// moves the global model as far as it likes. Here, in every coordinate, attackers fewer than
// half of the K updates (median), or at most NumTrimmedPerSide of them (trimmed mean), cannot
// pull the aggregate outside the range of the honest updates' values.
//
// Weighting: num_examples is ignored and each update counts once, as in Flower. The count is
// the client's own claim, so an attacker claiming a huge one would otherwise own the median.
// It must still be > 0 (Strategy's contract).
//
// Memory: a robust aggregate needs all updates at once, so Accumulate keeps a copy of each until
// Finish or DiscardRound: K updates of N floats, 4 K N bytes (10 updates of the 199,210-float
// mlp: 8 MB), plus N floats for the result and, during Finish, 256 or 512 B per update of
// scratch per thread. The round engine stops collecting at clients_per_round reports, so
// K <= clients_per_round. The buffers are reused by later rounds, since first-touch page faults
// on fresh memory cost far more than the copy (10 mlp updates: 33 ms fresh, 0.9 ms reused, on
// the 2-core dev VM), so a strategy holds its largest round's 4 K N bytes for its lifetime.
//
// Finish: a sorting network over blocks of 64 or 128 coordinates (robust.cc), O(N K log^2 K)
// min/max on whole vectors, split over models::NumThreads() OpenMP threads (one, inside an
// active parallel region). On one thread of the dev VM, server step included: 1 ms for 10 mlp
// updates, 20 to 30 ms for 100; 12 ms for 10 of the 1,663,370-float cnn, 0.14 to 0.3 s for 100
// (sorting each coordinate took 22 to 32 ms, 0.6 to 1.1 s, 0.2 to 0.3 s and 5.4 to 8 s). That
// is compute: reading the K N floats once takes 5 to 10 times less. Its result is bit-identical
// whatever order the updates came in and whatever the number of threads.
//
// Server step: FedAvg's, global += server_learning_rate * aggregate. At the default rate 1 the
// global weights become the coordinate-wise median (trimmed mean) of the clients' weights, as
// in Flower. SaveState and LoadState are FedAvg's (no optimizer state).
//
// Secure aggregation and central DP hand the strategy only a sum, so AccumulateSum refuses; the
// simulator's and the coordinator's config validation refuse the combination up front
// (coordinator::CheckStrategySettings). Driven by one thread; Finish may fork OpenMP threads.
//
//   auto s = CreateStrategy({.name = "fedtrimmedavg", .trim_fraction = 0.2}, layout.size());
//   size_t t = NumTrimmedPerSide(0.2, 10);  // 2: each coordinate drops its 2 lowest, 2 highest
//   EDGEFL_RETURN_IF_ERROR((*s)->Finish(global));
#pragma once

#include <cstddef>
#include <memory>

#include "edgefl/aggregation/strategy.h"

namespace edgefl::aggregation {

// The updates fedtrimmedavg drops at each end of every coordinate in a round of num_clients:
// floor(trim_fraction x num_clients) as in Flower (scipy's trim_mean), computed so that a
// decimal fraction means what it says (0.29 x 100 trims 29, where a plain floor of the binary
// product gives 28), and at most (num_clients - 1) / 2 so that an update always remains.
// 0 when num_clients == 0. Precondition: trim_fraction in [0, 0.5).
size_t NumTrimmedPerSide(double trim_fraction, size_t num_clients);

// The strategy named options.name ("fedmedian" or "fedtrimmedavg"). Preconditions:
// options.Validate() is OK, NeedsIndividualUpdates(options.name), num_parameters > 0.
std::unique_ptr<Strategy> MakeRobustStrategy(const StrategyOptions& options,
                                             size_t num_parameters);

}  // namespace edgefl::aggregation

// Cohort selection: which registered clients take part in a round.
//
// Uniform sampling without replacement, seeded per round, so the same seed selects the same
// cohorts whatever the thread count or transport. Pure functions.
//
//   std::vector<ClientId> cohort = SelectCohort(registry.Available(), 11, seed, round);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "edgefl/common/ids.h"

namespace edgefl::coordinator {

// min(count, candidates.size()) distinct clients drawn uniformly from `candidates`, returned
// in ascending id order.
std::vector<ClientId> SelectCohort(std::span<const ClientId> candidates, size_t count,
                                   uint64_t seed, RoundId round);

// How many to select so that `target` are expected to report when a fraction
// `over_selection` >= 0 is added: ceil(target * (1 + over_selection)).
size_t CohortSizeWithOverSelection(size_t target, double over_selection);

}  // namespace edgefl::coordinator

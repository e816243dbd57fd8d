#include "edgefl/coordinator/selection.h"

#include <algorithm>
#include <cmath>

#include "edgefl/common/random.h"

namespace edgefl::coordinator {

std::vector<ClientId> SelectCohort(std::span<const ClientId> candidates, size_t count,
                                   uint64_t seed, RoundId round) {
  std::vector<ClientId> pool(candidates.begin(), candidates.end());
  count = std::min(count, pool.size());
  Rng rng(DeriveSeed(seed, 0x5e1ec7ULL, round.value()));
  // Partial Fisher-Yates: the first `count` slots become a uniform sample.
  for (size_t i = 0; i < count; ++i) {
    std::swap(pool[i], pool[i + rng.UniformInt(pool.size() - i)]);
  }
  pool.resize(count);
  std::sort(pool.begin(), pool.end());
  return pool;
}

size_t CohortSizeWithOverSelection(size_t target, double over_selection) {
  return static_cast<size_t>(std::ceil(static_cast<double>(target) * (1.0 + over_selection) - 1e-9));
}

}  // namespace edgefl::coordinator

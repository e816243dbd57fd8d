#include "edgefl/simulations/partition.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <numeric>
#include <queue>
#include <string>
#include <utility>

#include "edgefl/common/check.h"
#include "edgefl/common/random.h"

namespace edgefl::simulations {
namespace {

// Stream labels, so the schemes draw independent streams from one seed.
constexpr uint64_t kIidStream = 1;
constexpr uint64_t kDirichletStream = 2;
constexpr uint64_t kShardsStream = 3;

constexpr std::array<PartitionKind, 3> kAllKinds = {PartitionKind::kIid, PartitionKind::kDirichlet,
                                                    PartitionKind::kShards};

Status CheckSizes(std::span<const uint8_t> labels, size_t num_clients) {
  if (labels.size() > std::numeric_limits<uint32_t>::max()) {
    return InvalidArgumentError("cannot partition " + std::to_string(labels.size()) +
                                " examples: indices are uint32");
  }
  if (num_clients == 0) return InvalidArgumentError("cannot partition over 0 clients");
  if (num_clients > labels.size()) {
    return InvalidArgumentError("cannot partition " + std::to_string(labels.size()) +
                                " examples over " + std::to_string(num_clients) +
                                " clients without leaving a client empty");
  }
  return OkStatus();
}

Status CheckLabels(std::span<const uint8_t> labels, size_t num_classes) {
  if (num_classes == 0) return InvalidArgumentError("cannot partition with num_classes == 0");
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= num_classes) {
      return InvalidArgumentError("label " + std::to_string(labels[i]) + " of example " +
                                  std::to_string(i) + " is >= num_classes " +
                                  std::to_string(num_classes));
    }
  }
  return OkStatus();
}

Status CheckAlpha(double alpha) {
  if (!(std::isfinite(alpha) && alpha > 0.0)) {
    return InvalidArgumentError("partition alpha = " + std::to_string(alpha) +
                                " must be finite and > 0");
  }
  return OkStatus();
}

// Indices 0..n-1 as uint32 (n already checked to fit).
std::vector<uint32_t> Iota(size_t n) {
  std::vector<uint32_t> out(n);
  std::iota(out.begin(), out.end(), uint32_t{0});
  return out;
}

void SortEach(ClientPartition& partition) {
  for (std::vector<uint32_t>& indices : partition) std::sort(indices.begin(), indices.end());
}

// Gives each empty client one example taken at random from the currently largest client.
// Precondition: total examples >= number of clients, so whenever a client is empty another
// holds at least two (pigeonhole) and the donor never becomes empty.
void FillEmptyClients(ClientPartition& partition, Rng& rng) {
  // Max-heap on (size, client); ties go to the higher client index, deterministically. Entries
  // of clients filled below stay at size 0, so a client given one example is never a donor.
  std::priority_queue<std::pair<size_t, size_t>> by_size;
  for (size_t k = 0; k < partition.size(); ++k) by_size.emplace(partition[k].size(), k);
  for (size_t k = 0; k < partition.size(); ++k) {
    if (!partition[k].empty()) continue;
    const size_t donor = by_size.top().second;
    by_size.pop();
    std::vector<uint32_t>& from = partition[donor];
    EDGEFL_CHECK(from.size() >= 2) << "client " << donor << " cannot give to empty client " << k;
    const size_t j = rng.UniformInt(from.size());
    partition[k].push_back(from[j]);
    from[j] = from.back();
    from.pop_back();
    by_size.emplace(from.size(), donor);
  }
}

}  // namespace

std::string_view PartitionKindName(PartitionKind kind) {
  switch (kind) {
    case PartitionKind::kIid: return "iid";
    case PartitionKind::kDirichlet: return "dirichlet";
    case PartitionKind::kShards: return "shards";
  }
  return "unknown";
}

Result<PartitionKind> ParsePartitionKind(std::string_view name) {
  std::string valid;
  for (PartitionKind kind : kAllKinds) {
    if (name == PartitionKindName(kind)) return kind;
    if (!valid.empty()) valid += ", ";
    valid += PartitionKindName(kind);
  }
  return InvalidArgumentError("unknown partition '" + std::string(name) + "'; valid: " + valid);
}

Status PartitionOptions::Validate() const {
  EDGEFL_RETURN_IF_ERROR(CheckAlpha(alpha));
  if (shards_per_client == 0) return InvalidArgumentError("partition shards_per_client = 0");
  return OkStatus();
}

Result<ClientPartition> PartitionIid(std::span<const uint8_t> labels, size_t num_clients,
                                     uint64_t seed) {
  EDGEFL_RETURN_IF_ERROR(CheckSizes(labels, num_clients));
  const size_t n = labels.size();
  std::vector<uint32_t> order = Iota(n);
  Rng rng(DeriveSeed(seed, kIidStream));
  rng.Shuffle(std::span<uint32_t>(order));
  ClientPartition partition(num_clients);
  for (size_t k = 0; k < num_clients; ++k) {
    // n < 2^32 and k < 2^32, so k * n fits in 64 bits.
    const size_t begin = k * n / num_clients;
    const size_t end = (k + 1) * n / num_clients;
    partition[k].assign(order.begin() + static_cast<std::ptrdiff_t>(begin),
                        order.begin() + static_cast<std::ptrdiff_t>(end));
  }
  SortEach(partition);
  return partition;
}

Result<ClientPartition> PartitionDirichlet(std::span<const uint8_t> labels, size_t num_classes,
                                           size_t num_clients, double alpha, uint64_t seed) {
  EDGEFL_RETURN_IF_ERROR(CheckSizes(labels, num_clients));
  EDGEFL_RETURN_IF_ERROR(CheckLabels(labels, num_classes));
  EDGEFL_RETURN_IF_ERROR(CheckAlpha(alpha));
  std::vector<std::vector<uint32_t>> by_class(num_classes);
  for (size_t i = 0; i < labels.size(); ++i)
    by_class[labels[i]].push_back(static_cast<uint32_t>(i));

  Rng rng(DeriveSeed(seed, kDirichletStream));
  ClientPartition partition(num_clients);
  std::vector<double> proportions(num_clients);
  for (std::vector<uint32_t>& members : by_class) {
    if (members.empty()) continue;
    rng.Shuffle(std::span<uint32_t>(members));
    // Dirichlet(alpha, ..., alpha) = independent Gamma(alpha, 1) draws over their sum.
    double total = 0.0;
    for (double& p : proportions) {
      p = rng.Gamma(alpha);
      total += p;
    }
    const size_t n_class = members.size();
    if (!(total > 0.0 && std::isfinite(total))) {
      // Every draw underflowed (tiny alpha): the alpha -> 0 limit puts the class on one client.
      std::vector<uint32_t>& to = partition[rng.UniformInt(num_clients)];
      to.insert(to.end(), members.begin(), members.end());
      continue;
    }
    // Cut at the rounded cumulative proportions; the last cut is the class size exactly.
    double cumulative = 0.0;
    size_t begin = 0;
    for (size_t k = 0; k < num_clients; ++k) {
      cumulative += proportions[k];
      size_t end = n_class;
      if (k + 1 < num_clients) {
        const double cut = std::round(cumulative / total * static_cast<double>(n_class));
        end = std::clamp(static_cast<size_t>(cut), begin, n_class);
      }
      partition[k].insert(partition[k].end(), members.begin() + static_cast<std::ptrdiff_t>(begin),
                          members.begin() + static_cast<std::ptrdiff_t>(end));
      begin = end;
    }
  }
  FillEmptyClients(partition, rng);
  SortEach(partition);
  return partition;
}

Result<ClientPartition> PartitionShards(std::span<const uint8_t> labels, size_t num_clients,
                                        size_t shards_per_client, uint64_t seed) {
  EDGEFL_RETURN_IF_ERROR(CheckSizes(labels, num_clients));
  const size_t n = labels.size();
  if (shards_per_client == 0) return InvalidArgumentError("partition shards_per_client = 0");
  if (shards_per_client > n / num_clients) {
    return InvalidArgumentError("cannot cut " + std::to_string(n) + " examples into " +
                                std::to_string(num_clients) + " clients x " +
                                std::to_string(shards_per_client) + " non-empty shards");
  }
  const size_t num_shards = num_clients * shards_per_client;

  // Label-sorted order with ties in random order: shuffle, then a stable counting sort.
  Rng rng(DeriveSeed(seed, kShardsStream));
  std::vector<uint32_t> shuffled = Iota(n);
  rng.Shuffle(std::span<uint32_t>(shuffled));
  std::array<size_t, 257> starts{};
  for (uint8_t label : labels) ++starts[label + 1];
  std::partial_sum(starts.begin(), starts.end(), starts.begin());
  std::vector<uint32_t> sorted(n);
  for (uint32_t i : shuffled) sorted[starts[labels[i]]++] = i;

  std::vector<uint32_t> shard_order = Iota(num_shards);
  rng.Shuffle(std::span<uint32_t>(shard_order));
  ClientPartition partition(num_clients);
  for (size_t k = 0; k < num_clients; ++k) {
    for (size_t s = 0; s < shards_per_client; ++s) {
      const size_t shard = shard_order[k * shards_per_client + s];
      // shard < num_shards <= n < 2^32, so shard * n fits in 64 bits.
      const size_t begin = shard * n / num_shards;
      const size_t end = (shard + 1) * n / num_shards;
      partition[k].insert(partition[k].end(), sorted.begin() + static_cast<std::ptrdiff_t>(begin),
                          sorted.begin() + static_cast<std::ptrdiff_t>(end));
    }
  }
  SortEach(partition);
  return partition;
}

Result<ClientPartition> PartitionGroups(const std::vector<std::vector<uint32_t>>& groups,
                                        size_t num_clients) {
  if (groups.empty() || num_clients < groups.size()) {
    return InvalidArgumentError("clients must be >= the number of groups (categories), " +
                                std::to_string(groups.size()) + ", got " +
                                std::to_string(num_clients));
  }
  ClientPartition partition(num_clients);
  for (size_t g = 0; g < groups.size(); ++g) {
    const size_t members = (num_clients - g + groups.size() - 1) / groups.size();
    if (groups[g].size() < members) {
      return InvalidArgumentError("group " + std::to_string(g) + " has " +
                                  std::to_string(groups[g].size()) + " examples for " +
                                  std::to_string(members) + " clients");
    }
    for (size_t k = 0; k < groups[g].size(); ++k) {
      partition[g + (k % members) * groups.size()].push_back(groups[g][k]);
    }
  }
  for (std::vector<uint32_t>& part : partition) std::sort(part.begin(), part.end());
  return partition;
}

Result<ClientPartition> Partition(std::span<const uint8_t> labels, size_t num_classes,
                                  size_t num_clients, const PartitionOptions& options,
                                  uint64_t seed) {
  EDGEFL_RETURN_IF_ERROR(options.Validate());
  EDGEFL_RETURN_IF_ERROR(CheckLabels(labels, num_classes));
  switch (options.kind) {
    case PartitionKind::kIid: return PartitionIid(labels, num_clients, seed);
    case PartitionKind::kDirichlet:
      return PartitionDirichlet(labels, num_classes, num_clients, options.alpha, seed);
    case PartitionKind::kShards:
      return PartitionShards(labels, num_clients, options.shards_per_client, seed);
  }
  return InvalidArgumentError("unknown partition kind " +
                              std::to_string(static_cast<int>(options.kind)));
}

std::vector<std::vector<size_t>> LabelCounts(std::span<const uint8_t> labels, size_t num_classes,
                                             const ClientPartition& partition) {
  std::vector<std::vector<size_t>> counts(partition.size(), std::vector<size_t>(num_classes, 0));
  for (size_t k = 0; k < partition.size(); ++k) {
    for (uint32_t i : partition[k]) {
      EDGEFL_CHECK_LT(i, labels.size()) << "client " << k;
      EDGEFL_CHECK_LT(labels[i], num_classes) << "example " << i;
      ++counts[k][labels[i]];
    }
  }
  return counts;
}

double LabelSkew(std::span<const uint8_t> labels, size_t num_classes,
                 const ClientPartition& partition) {
  const std::vector<std::vector<size_t>> counts = LabelCounts(labels, num_classes, partition);
  std::vector<double> global(num_classes, 0.0);
  double total = 0.0;
  for (const std::vector<size_t>& client : counts) {
    for (size_t c = 0; c < num_classes; ++c) global[c] += static_cast<double>(client[c]);
  }
  for (double g : global) total += g;
  if (total == 0.0) return 0.0;
  for (double& g : global) g /= total;

  double sum_distance = 0.0;
  size_t num_nonempty = 0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const double size = static_cast<double>(partition[k].size());
    if (size == 0.0) continue;
    double distance = 0.0;
    for (size_t c = 0; c < num_classes; ++c) {
      distance += std::abs(static_cast<double>(counts[k][c]) / size - global[c]);
    }
    sum_distance += 0.5 * distance;
    ++num_nonempty;
  }
  return sum_distance / static_cast<double>(num_nonempty);
}

}  // namespace edgefl::simulations

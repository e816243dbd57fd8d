// Partitioners: split one shared training set over num_clients virtual devices.
//
// A partition is, for each client, the ascending list of indices of its examples in the shared
// dataset (DESIGN.md, "Data layout": a device owns indices, never a copy). Every example goes to
// exactly one client and no client is left empty. Three schemes cover the usual experiments:
// IID (shuffle and deal), label skew by a per-class Dirichlet(alpha) split (Hsu, Qi & Brown
// 2019), and McMahan et al. 2017's label-sorted shards. All are pure functions of their inputs
// and the seed: same seed, same partition, on every platform. Thread-safe (no shared state).
//
//   PartitionOptions options{.kind = PartitionKind::kDirichlet, .alpha = 0.1};
//   EDGEFL_ASSIGN_OR_RETURN(auto parts, Partition(train.labels, 10, 100, options, seed));
//   double skew = LabelSkew(train.labels, 10, parts);  // 0 for perfectly IID
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "edgefl/common/status.h"

namespace edgefl::simulations {

enum class PartitionKind {
  kIid,        // "iid": shuffled, dealt in near-equal parts (sizes differ by at most 1)
  kDirichlet,  // "dirichlet": per class, proportions over clients drawn from Dirichlet(alpha)
  kShards,     // "shards": sorted by label, cut into equal shards, shards dealt at random
};

// "iid", "dirichlet", "shards".
std::string_view PartitionKindName(PartitionKind kind);

// The kind named by `name` (as PartitionKindName spells it); kInvalidArgument listing the
// valid names otherwise.
Result<PartitionKind> ParsePartitionKind(std::string_view name);

struct PartitionOptions {
  // Which scheme. Default kIid.
  PartitionKind kind = PartitionKind::kIid;
  // Dirichlet concentration for kDirichlet, finite and > 0: small values (0.1) give each client
  // few labels, large ones (100) approach IID. Default 0.5.
  double alpha = 0.5;
  // Shards per client for kShards, >= 1 (McMahan et al. 2017 use 2). Default 2.
  size_t shards_per_client = 2;
  // kInvalidArgument naming the field when alpha or shards_per_client is out of range (checked
  // whatever the kind, so a config is valid or not independently of which scheme it selects).
  Status Validate() const;
};

// One ascending index list per client, indices into the labels span.
using ClientPartition = std::vector<std::vector<uint32_t>>;

// Shuffles all indices and deals them in num_clients contiguous runs whose sizes differ by at
// most one. kInvalidArgument when num_clients == 0, num_clients > labels.size(), or
// labels.size() does not fit in uint32_t.
Result<ClientPartition> PartitionIid(std::span<const uint8_t> labels, size_t num_clients,
                                     uint64_t seed);

// Label skew after Hsu, Qi & Brown 2019: for each class, draws proportions p ~ Dirichlet(alpha)
// over the clients (normalised Gamma(alpha) draws) and cuts that class's shuffled indices at
// the cumulative proportions. Afterwards each client left empty receives one randomly chosen
// example from the client that currently holds the most, so no client is empty; this moves
// at most num_clients - 1 examples and keeps every example assigned once. kInvalidArgument
// as PartitionIid, and when num_classes == 0, a label is >= num_classes, or alpha is not
// finite and > 0.
Result<ClientPartition> PartitionDirichlet(std::span<const uint8_t> labels, size_t num_classes,
                                           size_t num_clients, double alpha, uint64_t seed);

// McMahan et al. 2017 ("pathological non-IID"): orders the examples by label (ties in a
// seeded random order), cuts them into num_clients * shards_per_client contiguous shards whose
// sizes differ by at most one, and gives each client shards_per_client shards chosen at
// random. With balanced classes and shard sizes dividing the class sizes, each client sees at
// most shards_per_client labels. kInvalidArgument as PartitionIid, and when
// shards_per_client == 0 or there are more shards than examples.
Result<ClientPartition> PartitionShards(std::span<const uint8_t> labels, size_t num_clients,
                                        size_t shards_per_client, uint64_t seed);

// Validates `options` and the labels (each < num_classes, num_classes > 0), then runs the
// scheme options.kind selects. Errors are those of Validate and of the scheme.
Result<ClientPartition> Partition(std::span<const uint8_t> labels, size_t num_classes,
                                  size_t num_clients, const PartitionOptions& options,
                                  uint64_t seed);

// Naturally non-IID clients from groups of examples (text: one group per fortunes category,
// models::PartitionByCategory): client i belongs to group i mod groups.size(), and each group's
// examples are dealt round-robin over its clients, in order (client j of a group with m clients
// gets its examples j, j + m, ...), so each client keeps its group's text and nothing else.
// kInvalidArgument when num_clients < groups.size() or a group has fewer examples than clients.
Result<ClientPartition> PartitionGroups(const std::vector<std::vector<uint32_t>>& groups,
                                        size_t num_clients);

// Label counts per client: counts[client][label]. Preconditions (checked): every index is
// < labels.size() and every label it points to is < num_classes.
std::vector<std::vector<size_t>> LabelCounts(std::span<const uint8_t> labels, size_t num_classes,
                                             const ClientPartition& partition);

// How far the clients' label distributions are from the whole dataset's: the mean over
// non-empty clients of the total-variation distance 1/2 sum_c |p_client(c) - p_global(c)|,
// where p_global is the distribution over the examples the partition covers. In [0, 1): 0 when
// every client has the global mix; 0.9 with ten balanced classes when each client holds a
// single label. 0 for a partition with no examples. Preconditions as LabelCounts.
double LabelSkew(std::span<const uint8_t> labels, size_t num_classes,
                 const ClientPartition& partition);

}  // namespace edgefl::simulations

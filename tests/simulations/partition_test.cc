#include "edgefl/simulations/partition.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "edgefl/common/random.h"

namespace edgefl::simulations {
namespace {

constexpr size_t kNumClasses = 10;
constexpr size_t kNumExamples = 60000;  // Fashion-MNIST's training set size
constexpr size_t kNumClients = 100;

// Balanced synthetic labels (6000 per class) in a random order, so tests need no files.
const std::vector<uint8_t>& SyntheticLabels() {
  static const std::vector<uint8_t> labels = [] {
    std::vector<uint8_t> out(kNumExamples);
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<uint8_t>(i % kNumClasses);
    Rng rng(2024);
    rng.Shuffle(std::span<uint8_t>(out));
    return out;
  }();
  return labels;
}

// Every example assigned exactly once, no client empty, each list strictly ascending.
void CheckIsPartition(const ClientPartition& partition, size_t num_examples, size_t num_clients) {
  REQUIRE(partition.size() == num_clients);
  std::vector<int> times_assigned(num_examples, 0);
  size_t num_empty = 0, num_unsorted = 0, num_out_of_range = 0;
  for (const std::vector<uint32_t>& indices : partition) {
    num_empty += indices.empty();
    num_unsorted += std::adjacent_find(indices.begin(), indices.end(), [](uint32_t a, uint32_t b) {
                      return a >= b;
                    }) != indices.end();
    for (uint32_t i : indices) {
      if (i < num_examples) {
        ++times_assigned[i];
      } else {
        ++num_out_of_range;
      }
    }
  }
  CHECK(num_empty == 0);
  CHECK(num_unsorted == 0);
  CHECK(num_out_of_range == 0);
  CHECK(std::count(times_assigned.begin(), times_assigned.end(), 1) ==
        static_cast<std::ptrdiff_t>(num_examples));
}

ClientPartition Run(const PartitionOptions& options, uint64_t seed,
                    size_t num_clients = kNumClients) {
  Result<ClientPartition> partition =
      Partition(SyntheticLabels(), kNumClasses, num_clients, options, seed);
  REQUIRE_MESSAGE(partition.ok(), partition.status().ToString());
  return std::move(partition).value();
}

const std::vector<PartitionOptions> kEveryKind = {
    {.kind = PartitionKind::kIid},
    {.kind = PartitionKind::kDirichlet, .alpha = 0.1},
    {.kind = PartitionKind::kDirichlet, .alpha = 100.0},
    {.kind = PartitionKind::kShards, .shards_per_client = 2},
};

TEST_CASE("Every partitioner assigns each example to exactly one non-empty client") {
  for (const PartitionOptions& options : kEveryKind) {
    CAPTURE(PartitionKindName(options.kind));
    CAPTURE(options.alpha);
    CheckIsPartition(Run(options, 1), kNumExamples, kNumClients);
  }
}

TEST_CASE("IID parts differ in size by at most one example") {
  const ClientPartition partition = Run({.kind = PartitionKind::kIid}, 1, 7);
  CheckIsPartition(partition, kNumExamples, 7);
  auto [smallest, largest] =
      std::minmax_element(partition.begin(), partition.end(),
                          [](const auto& a, const auto& b) { return a.size() < b.size(); });
  CHECK(largest->size() - smallest->size() <= 1);
}

TEST_CASE("The same seed gives the same partition and another seed a different one") {
  for (const PartitionOptions& options : kEveryKind) {
    CAPTURE(PartitionKindName(options.kind));
    const ClientPartition a = Run(options, 5);
    CHECK(Run(options, 5) == a);
    CHECK(Run(options, 6) != a);
  }
}

TEST_CASE("Label skew grows as the Dirichlet alpha falls") {
  // Measured with these labels and seed: iid 0.049, alpha 100 0.037, alpha 1 0.34, alpha 0.1
  // 0.71. Alpha 100 is as close to the global mix as IID dealing (whose 600-example samples
  // carry multinomial noise), so it is compared with a bound, not with IID.
  const std::vector<uint8_t>& labels = SyntheticLabels();
  const double iid = LabelSkew(labels, kNumClasses, Run({.kind = PartitionKind::kIid}, 3));
  CHECK(iid < 0.1);
  std::vector<double> skews;
  for (double alpha : {100.0, 1.0, 0.1}) {
    skews.push_back(LabelSkew(labels, kNumClasses,
                              Run({.kind = PartitionKind::kDirichlet, .alpha = alpha}, 3)));
  }
  INFO("skew: iid " << iid << ", alpha 100 " << skews[0] << ", alpha 1 " << skews[1]
                    << ", alpha 0.1 " << skews[2]);
  CHECK(skews[0] < 0.1);
  CHECK(skews[1] > skews[0] + 0.1);
  CHECK(skews[2] > skews[1] + 0.1);
  CHECK(skews[2] > 0.6);
}

TEST_CASE("Shards give each of 100 clients at most 2 labels on Fashion-MNIST-sized data") {
  const std::vector<uint8_t>& labels = SyntheticLabels();
  const ClientPartition partition =
      Run({.kind = PartitionKind::kShards, .shards_per_client = 2}, 9);
  CheckIsPartition(partition, kNumExamples, kNumClients);
  const std::vector<std::vector<size_t>> counts = LabelCounts(labels, kNumClasses, partition);
  for (size_t k = 0; k < kNumClients; ++k) {
    CAPTURE(k);
    CHECK(partition[k].size() == kNumExamples / kNumClients);
    CHECK(std::count_if(counts[k].begin(), counts[k].end(), [](size_t c) { return c > 0; }) <= 2);
  }
  CHECK(LabelSkew(labels, kNumClasses, partition) > 0.7);
}

TEST_CASE("A very skewed Dirichlet split over many clients still leaves no client empty") {
  // 500 clients, 10 classes and alpha 0.01: most draws give a client nothing of any class.
  const std::vector<uint8_t> labels(SyntheticLabels().begin(), SyntheticLabels().begin() + 2000);
  Result<ClientPartition> partition = PartitionDirichlet(labels, kNumClasses, 500, 0.01, 4);
  REQUIRE(partition.ok());
  CheckIsPartition(*partition, labels.size(), 500);
  // As many clients as examples: everyone gets exactly one.
  Result<ClientPartition> one_each = PartitionDirichlet(labels, kNumClasses, 2000, 0.5, 4);
  REQUIRE(one_each.ok());
  CheckIsPartition(*one_each, labels.size(), 2000);
}

TEST_CASE("LabelSkew is 0 for the global mix and 0.9 for single-label clients") {
  const std::vector<uint8_t> labels = {0, 1, 0, 1, 2, 2};
  CHECK(LabelSkew(labels, 3, {{0, 1, 4}, {2, 3, 5}}) == doctest::Approx(0.0));
  std::vector<uint8_t> ten(10);
  ClientPartition single(10);
  for (uint32_t i = 0; i < 10; ++i) {
    ten[i] = static_cast<uint8_t>(i);
    single[i] = {i};
  }
  CHECK(LabelSkew(ten, 10, single) == doctest::Approx(0.9));
  CHECK(LabelSkew(ten, 10, ClientPartition(3)) == 0.0);
}

TEST_CASE("Bad partition requests are invalid arguments") {
  const std::vector<uint8_t> labels = {0, 1, 2, 0, 1, 2};
  auto code = [](const Result<ClientPartition>& r) { return r.status().code(); };
  constexpr StatusCode kInvalid = StatusCode::kInvalidArgument;
  CHECK(code(PartitionIid(labels, 0, 1)) == kInvalid);
  CHECK(code(PartitionIid(labels, 7, 1)) == kInvalid);
  CHECK(code(PartitionDirichlet(labels, 3, 2, 0.0, 1)) == kInvalid);
  CHECK(code(PartitionDirichlet(labels, 3, 2, -1.0, 1)) == kInvalid);
  CHECK(code(PartitionDirichlet(labels, 2, 2, 1.0, 1)) == kInvalid);  // label 2 >= 2 classes
  CHECK(code(PartitionShards(labels, 2, 0, 1)) == kInvalid);
  CHECK(code(PartitionShards(labels, 2, 4, 1)) == kInvalid);  // 8 shards > 6 examples
  CHECK(code(Partition(labels, 3, 0, {}, 1)) == kInvalid);
  CHECK(code(Partition(labels, 0, 2, {}, 1)) == kInvalid);
  CHECK(code(Partition(labels, 3, 2, {.alpha = 0.0}, 1)) == kInvalid);
  CHECK(PartitionOptions{.shards_per_client = 0}.Validate().code() == kInvalid);
  CHECK(PartitionOptions{.kind = PartitionKind::kDirichlet, .alpha = 0.3}.Validate().ok());

  for (PartitionKind kind :
       {PartitionKind::kIid, PartitionKind::kDirichlet, PartitionKind::kShards}) {
    Result<PartitionKind> parsed = ParsePartitionKind(PartitionKindName(kind));
    REQUIRE(parsed.ok());
    CHECK(*parsed == kind);
  }
  Result<PartitionKind> unknown = ParsePartitionKind("random");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.status().code() == kInvalid);
  CHECK(unknown.status().message().find("iid, dirichlet, shards") != std::string::npos);
}

}  // namespace
}  // namespace edgefl::simulations

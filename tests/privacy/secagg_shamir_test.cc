// Shamir secret sharing (secagg/shamir.h), SecAggConfig validation and the SecAgg+ neighbour
// graph (secagg/config.h).
#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/privacy/secagg/config.h"
#include "edgefl/privacy/secagg/crypto.h"
#include "edgefl/privacy/secagg/shamir.h"

namespace edgefl::privacy::secagg {
namespace {

ShamirSecret RandomSecret() {
  ShamirSecret secret;
  REQUIRE(RandomBytes(secret.MutableReveal()).ok());
  return secret;
}

bool Same(const ShamirSecret& a, const ShamirSecret& b) {
  return std::ranges::equal(a.Reveal(), b.Reveal());
}

std::vector<uint32_t> Points(uint32_t n) {
  std::vector<uint32_t> points(n);
  std::iota(points.begin(), points.end(), 1u);  // client index + 1
  return points;
}

// A random subset of `shares` of the given size, in random order.
std::vector<ShamirShare> Subset(const std::vector<ShamirShare>& shares, size_t size, Rng& rng) {
  std::vector<ShamirShare> copy = shares;
  rng.Shuffle(std::span<ShamirShare>(copy));
  copy.resize(size);
  return copy;
}

TEST_CASE("Shamir reconstructs the secret from any threshold shares") {
  Rng rng(5);
  for (uint32_t threshold : {1u, 2u, 4u, 7u, 10u}) {
    CAPTURE(threshold);
    const ShamirSecret secret = RandomSecret();
    auto shares = ShamirSplit(secret, threshold, Points(10));
    REQUIRE(shares.ok());
    REQUIRE(shares->size() == 10);
    for (int trial = 0; trial < 8; ++trial) {
      for (size_t size : {size_t{threshold}, size_t{10}}) {
        const auto subset = Subset(*shares, size, rng);
        auto again = ShamirReconstruct(subset, threshold);
        REQUIRE(again.ok());
        CHECK(Same(*again, secret));
      }
    }
  }
}

TEST_CASE("Shamir with fewer than threshold shares or wrong shares does not give the secret") {
  Rng rng(6);
  const uint32_t threshold = 5;
  const ShamirSecret secret = RandomSecret();
  auto shares = ShamirSplit(secret, threshold, Points(9));
  REQUIRE(shares.ok());
  for (int trial = 0; trial < 8; ++trial) {
    const auto few = Subset(*shares, threshold - 1, rng);
    CHECK(ShamirReconstruct(few, threshold).status().code() == StatusCode::kInvalidArgument);
    // Pretending t - 1 shares suffice interpolates the wrong polynomial.
    auto wrong = ShamirReconstruct(few, threshold - 1);
    CHECK((!wrong.ok() || !Same(*wrong, secret)));
    // One altered value.
    auto altered = Subset(*shares, threshold, rng);
    altered[0].y[trial % kShamirElements] =
        (altered[0].y[trial % kShamirElements] + 1) % kShamirPrime;
    auto bad = ShamirReconstruct(altered, threshold);
    CHECK((!bad.ok() || !Same(*bad, secret)));
  }
  // Shares of two different secrets do not mix: the result is not a valid encoding.
  auto other = ShamirSplit(RandomSecret(), threshold, Points(9));
  REQUIRE(other.ok());
  std::vector<ShamirShare> mixed(shares->begin(), shares->begin() + 3);
  mixed.insert(mixed.end(), other->begin() + 3, other->begin() + 5);
  auto mixed_result = ShamirReconstruct(mixed, threshold);
  CHECK((!mixed_result.ok() || !Same(*mixed_result, secret)));
}

TEST_CASE("Shamir shares of one secret differ between splits and reveal nothing alone") {
  const ShamirSecret secret = RandomSecret();
  auto a = ShamirSplit(secret, 3, Points(5));
  auto b = ShamirSplit(secret, 3, Points(5));
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK((*a)[0].y != (*b)[0].y);
  // With threshold 1 each share is the secret itself, so encoding must round-trip.
  auto one = ShamirSplit(secret, 1, Points(3));
  REQUIRE(one.ok());
  auto again = ShamirReconstruct(std::span(*one).subspan(2), 1);
  REQUIRE(again.ok());
  CHECK(Same(*again, secret));
}

TEST_CASE("Shamir rejects bad thresholds, points and share bytes") {
  const ShamirSecret secret = RandomSecret();
  CHECK(ShamirSplit(secret, 0, Points(3)).status().code() == StatusCode::kInvalidArgument);
  CHECK(ShamirSplit(secret, 4, Points(3)).status().code() == StatusCode::kInvalidArgument);
  const std::vector<uint32_t> with_zero = {0, 1, 2};
  CHECK(ShamirSplit(secret, 2, with_zero).status().code() == StatusCode::kInvalidArgument);
  const std::vector<uint32_t> repeated = {1, 2, 2};
  CHECK(ShamirSplit(secret, 2, repeated).status().code() == StatusCode::kInvalidArgument);

  auto shares = ShamirSplit(secret, 2, Points(3));
  REQUIRE(shares.ok());
  std::vector<ShamirShare> twice = {(*shares)[0], (*shares)[0]};
  CHECK(ShamirReconstruct(twice, 2).status().code() == StatusCode::kInvalidArgument);

  std::array<uint8_t, kShamirShareBytes> bytes;
  EncodeShamirShare((*shares)[1], bytes);
  auto decoded = DecodeShamirShare(2, bytes);
  REQUIRE(decoded.ok());
  CHECK(decoded->x == 2);
  CHECK(decoded->y == (*shares)[1].y);
  std::fill(bytes.begin(), bytes.begin() + 8, 0xff);  // 2^64 - 1 >= p
  CHECK(DecodeShamirShare(2, bytes).status().code() == StatusCode::kInvalidArgument);
  CHECK(DecodeShamirShare(0, bytes).status().code() == StatusCode::kInvalidArgument);
  CHECK(DecodeShamirShare(2, std::span(bytes).first(39)).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("ShamirReconstructor reuses coefficients only for the same points") {
  ShamirReconstructor reconstructor;
  for (int i = 0; i < 3; ++i) {
    const ShamirSecret secret = RandomSecret();
    auto shares = ShamirSplit(secret, 3, Points(6));
    REQUIRE(shares.ok());
    // Same points twice, then different points.
    const std::vector<ShamirShare> first(shares->begin(), shares->begin() + 3);
    const std::vector<ShamirShare> last(shares->begin() + 3, shares->end());
    for (const auto* subset : {&first, &first, &last}) {
      auto again = reconstructor.Reconstruct(*subset, 3);
      REQUIRE(again.ok());
      CHECK(Same(*again, secret));
    }
  }
}

TEST_CASE("SecAggConfig requires a majority threshold of each group and sane sizes") {
  SecAggConfig ok{.num_clients = 10, .threshold = 6, .vector_length = 100};
  CHECK(ok.Validate().ok());
  CHECK(ok.group_size() == 10);
  SecAggConfig c = ok;
  c.threshold = 5;  // exactly half: two disjoint halves could each rebuild a secret
  CHECK(c.Validate().code() == StatusCode::kInvalidArgument);
  c.threshold = 11;
  CHECK(c.Validate().code() == StatusCode::kInvalidArgument);
  c = ok;
  c.num_clients = 1;
  CHECK(c.Validate().code() == StatusCode::kInvalidArgument);
  c = ok;
  c.vector_length = 0;
  CHECK(c.Validate().code() == StatusCode::kInvalidArgument);
  c = ok;
  c.max_threads = -1;
  CHECK(c.Validate().code() == StatusCode::kInvalidArgument);

  SecAggConfig sparse{.num_clients = 21, .threshold = 5, .neighbours = 8, .vector_length = 1};
  CHECK(sparse.Validate().ok());
  CHECK(sparse.group_size() == 9);
  CHECK(!sparse.is_full_graph());
  sparse.neighbours = 7;  // odd degree on an odd number of clients
  CHECK(sparse.Validate().code() == StatusCode::kInvalidArgument);
  sparse.neighbours = 1;
  CHECK(sparse.Validate().code() == StatusCode::kInvalidArgument);
  sparse.neighbours = 20;  // n - 1 is the full graph
  sparse.threshold = 11;
  CHECK(sparse.Validate().ok());
  CHECK(sparse.is_full_graph());
}

TEST_CASE("The SecAgg+ Harary graph is regular, symmetric and fixed by its public seed") {
  for (uint32_t n : {10u, 21u, 100u}) {
    for (uint32_t k : {2u, 3u, 6u, 8u}) {
      if (k % 2 == 1 && n % 2 == 1) continue;
      CAPTURE(n);
      CAPTURE(k);
      const SecAggConfig config{.num_clients = n,
                                .threshold = (k + 1) / 2 + 1,
                                .neighbours = k,
                                .vector_length = 1,
                                .graph_seed = 99};
      REQUIRE(config.Validate().ok());
      const NeighbourGraph graph(config);
      CHECK(graph.degree() == k);
      for (uint32_t u = 0; u < n; ++u) {
        const std::vector<uint32_t> neighbours = graph.NeighboursOf(u);
        CHECK(neighbours.size() == k);
        CHECK(std::is_sorted(neighbours.begin(), neighbours.end()));
        CHECK(std::adjacent_find(neighbours.begin(), neighbours.end()) == neighbours.end());
        CHECK(!graph.AreNeighbours(u, u));
        for (uint32_t v = 0; v < n; ++v) {
          const bool listed = std::binary_search(neighbours.begin(), neighbours.end(), v);
          CHECK(listed == graph.AreNeighbours(u, v));
          CHECK(graph.AreNeighbours(u, v) == graph.AreNeighbours(v, u));
        }
      }
    }
  }
  SecAggConfig config{
      .num_clients = 50, .threshold = 4, .neighbours = 6, .vector_length = 1, .graph_seed = 1};
  const NeighbourGraph a(config);
  const NeighbourGraph b(config);
  config.graph_seed = 2;
  const NeighbourGraph c(config);
  size_t same_as_b = 0;
  size_t same_as_c = 0;
  for (uint32_t u = 0; u < 50; ++u) {
    same_as_b += a.NeighboursOf(u) == b.NeighboursOf(u);
    same_as_c += a.NeighboursOf(u) == c.NeighboursOf(u);
  }
  CHECK(same_as_b == 50);
  CHECK(same_as_c < 10);
}

TEST_CASE("The full graph joins every pair of distinct clients") {
  const SecAggConfig config{.num_clients = 7, .threshold = 4, .vector_length = 1};
  const NeighbourGraph graph(config);
  CHECK(graph.degree() == 6);
  CHECK(graph.NeighboursOf(3) == std::vector<uint32_t>{0, 1, 2, 4, 5, 6});
  CHECK(graph.AreNeighbours(0, 6));
  CHECK(!graph.AreNeighbours(2, 2));
}

}  // namespace
}  // namespace edgefl::privacy::secagg

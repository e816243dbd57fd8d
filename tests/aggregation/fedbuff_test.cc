#include "edgefl/aggregation/fedbuff.h"

#include <doctest/doctest.h>

#include <vector>

namespace edgefl::aggregation {
namespace {

TEST_CASE("FedBuff's staleness weight is 1 / sqrt(1 + staleness)") {
  CHECK(FedBuffStalenessWeight(0) == 1.0f);
  CHECK(FedBuffStalenessWeight(3) == doctest::Approx(0.5));
  CHECK(FedBuffStalenessWeight(99) == doctest::Approx(0.1));
}

TEST_CASE("The fedbuff strategy moves the weights by the server rate times the buffer's mean") {
  auto strategy = CreateStrategy({.name = "fedbuff", .server_learning_rate = 0.5f}, 2).value();
  CHECK(strategy->name() == "fedbuff");
  const std::vector<float> a = {1.0f, 2.0f}, b = {3.0f, -2.0f};
  REQUIRE(strategy->Accumulate({.client = ClientId{1}, .delta = a, .num_examples = 10}).ok());
  REQUIRE(strategy->Accumulate({.client = ClientId{2}, .delta = b, .num_examples = 10}).ok());
  std::vector<float> global = {0.0f, 1.0f};
  REQUIRE(strategy->Finish(global).ok());
  CHECK(global[0] == doctest::Approx(1.0));  // 0 + 0.5 x mean(1, 3)
  CHECK(global[1] == doctest::Approx(1.0));  // 1 + 0.5 x mean(2, -2)
}

}  // namespace
}  // namespace edgefl::aggregation

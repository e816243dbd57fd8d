#include "edgefl/common/strings.h"

#include <doctest/doctest.h>

namespace edgefl {
namespace {

TEST_CASE("DidYouMean suggests the nearest known name and stays quiet for distant ones") {
  const std::vector<std::string> keys = {"clients", "clients_per_round", "rounds", "seed"};
  CHECK(EditDistance("kitten", "sitting") == 3);
  CHECK(DidYouMean("clients_per_rund", keys) == " (did you mean 'clients_per_round'?)");
  CHECK(DidYouMean("sed", keys) == " (did you mean 'seed'?)");
  CHECK(DidYouMean("learning_rate", keys).empty());
  CHECK(JoinNames(keys) == "clients, clients_per_round, rounds, seed");
}

}  // namespace
}  // namespace edgefl

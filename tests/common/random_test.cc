#include "edgefl/common/random.h"

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "edgefl/common/clock.h"

namespace edgefl {
namespace {

TEST_CASE("Rng gives the same stream for the same seed and different ones for derived seeds") {
  Rng a(1), b(1), c(DeriveSeed(1, 2));
  for (int i = 0; i < 100; ++i) {
    uint64_t x = a.NextU64();
    CHECK(x == b.NextU64());
    CHECK(x != c.NextU64());
  }
  CHECK(DeriveSeed(5, 1, 2) != DeriveSeed(5, 2, 1));
}

TEST_CASE("Rng's normal and uniform draws have the right moments") {
  Rng rng(42);
  const int n = 200000;
  double sum = 0, sum_sq = 0, uniform_sum = 0;
  std::vector<int> counts(7, 0);
  for (int i = 0; i < n; ++i) {
    double z = rng.Normal();
    sum += z;
    sum_sq += z * z;
    uniform_sum += rng.Uniform01();
    ++counts[rng.UniformInt(7)];
  }
  CHECK(std::abs(sum / n) < 0.01);
  CHECK(std::abs(sum_sq / n - 1.0) < 0.02);
  CHECK(std::abs(uniform_sum / n - 0.5) < 0.01);
  for (int c : counts) CHECK(std::abs(c / double(n) - 1.0 / 7) < 0.005);
}

TEST_CASE("Rng's gamma draws have mean equal to the shape") {
  Rng rng(3);
  for (double shape : {0.3, 1.0, 4.5}) {
    double sum = 0;
    const int n = 100000;
    for (int i = 0; i < n; ++i) sum += rng.Gamma(shape);
    CHECK(std::abs(sum / n - shape) < 0.03 * shape + 0.01);
  }
}

TEST_CASE("VirtualClock moves only forward and only when told") {
  VirtualClock clock;
  CHECK(clock.Now().count() == 0);
  clock.AdvanceBy(std::chrono::seconds(2));
  clock.AdvanceTo(std::chrono::seconds(1));
  CHECK(clock.Now() == std::chrono::seconds(2));
  clock.AdvanceTo(std::chrono::seconds(5));
  CHECK(ToSeconds(clock.Now()) == 5.0);
}

}  // namespace
}  // namespace edgefl

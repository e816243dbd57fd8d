#include "edgefl/privacy/clipping.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "edgefl/common/random.h"

namespace edgefl::privacy {
namespace {

std::vector<float> RandomUpdate(size_t size, double stddev, Rng& rng) {
  std::vector<float> update(size);
  for (float& v : update) v = static_cast<float>(stddev * rng.Normal());
  return update;
}

TEST_CASE("ClipToNorm scales an update above the clip norm down to it and returns the old norm") {
  std::vector<float> update = {3.0f, -4.0f};
  Result<double> norm = ClipToNorm(update, 1.0);
  REQUIRE(norm.ok());
  CHECK(*norm == 5.0);
  // Direction kept, length 1 up to the 2^-21 safety margin of the scale.
  CHECK(update[0] == doctest::Approx(0.6).epsilon(1e-6));
  CHECK(update[1] == doctest::Approx(-0.8).epsilon(1e-6));
  CHECK(L2Norm(update) <= 1.0);
}

TEST_CASE("ClipToNorm leaves an update within the clip norm untouched") {
  const std::vector<float> original = {0.1f, -0.2f, 0.3f};
  std::vector<float> update = original;
  Result<double> norm = ClipToNorm(update, 1.0);
  REQUIRE(norm.ok());
  CHECK(*norm == doctest::Approx(std::sqrt(0.14)).epsilon(1e-7));
  CHECK(update == original);

  std::vector<float> empty;
  CHECK(ClipToNorm(empty, 1.0).value() == 0.0);
}

TEST_CASE("ClipToNorm never leaves a norm above the clip norm despite float rounding") {
  Rng rng(11);
  for (size_t size : {1, 7, 8, 255, 1027, 100000}) {
    for (double clip_norm : {1e-3, 0.1, 1.0, 3.7, 1e4}) {
      std::vector<float> update = RandomUpdate(size, 1.0, rng);
      const double before = L2Norm(update);
      Result<double> norm = ClipToNorm(update, clip_norm);
      REQUIRE(norm.ok());
      CHECK(*norm == before);
      const double after = L2Norm(update);
      CHECK(after <= clip_norm);
      if (before > clip_norm) CHECK(after >= clip_norm * (1.0 - 1e-5));
    }
  }
}

TEST_CASE("ClipToNorm rejects NaN, Inf and bad clip norms without touching the update") {
  const std::vector<float> original = {10.0f, std::numeric_limits<float>::quiet_NaN(), 1.0f};
  std::vector<float> update = original;
  Result<double> norm = ClipToNorm(update, 1.0);
  REQUIRE_FALSE(norm.ok());
  CHECK(norm.status().code() == StatusCode::kInvalidArgument);
  CHECK(norm.status().message() == "update value 1 of 3 is NaN");
  CHECK(update[0] == 10.0f);

  std::vector<float> inf = {1.0f, -std::numeric_limits<float>::infinity()};
  CHECK(ClipToNorm(inf, 1.0).status().message() == "update value 1 of 2 is Inf");

  std::vector<float> fine = {3.0f, 4.0f};
  for (double bad : {0.0, -1.0, std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
    CHECK(ClipToNorm(fine, bad).status().code() == StatusCode::kInvalidArgument);
  }
  CHECK(fine == std::vector<float>{3.0f, 4.0f});
}

}  // namespace
}  // namespace edgefl::privacy

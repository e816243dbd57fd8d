#include "edgefl/models/optimizer.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

namespace edgefl::models {
namespace {

// The hand-computed values below are exact in decimal; float32 rounds each step's arithmetic
// once or twice, so results agree to a few ulps of numbers below 2 (ulp 2^-23 = 1.2e-7).
constexpr double kStepTolerance = 1e-6;

TEST_CASE("Sgd without momentum takes w -= lr * g") {
  Sgd sgd(SgdOptions{.learning_rate = 0.5f}, 2);
  std::vector<float> w = {1.0f, -2.0f};
  const std::vector<float> g = {0.25f, -1.0f};
  sgd.Step(w, g);
  CHECK(w == std::vector<float>{0.875f, -1.5f});
}

TEST_CASE("Sgd with momentum, weight decay and a proximal term matches hand-computed steps") {
  // g' = g + wd * w + mu * (w - anchor); v = m * v + g'; w -= lr * v.
  const SgdOptions options{
      .learning_rate = 0.1f, .momentum = 0.9f, .weight_decay = 0.01f, .proximal_mu = 0.5f};
  Sgd sgd(options, 2);
  const std::vector<float> anchor = {0.0f, 1.0f};
  sgd.set_proximal_anchor(anchor);
  std::vector<float> w = {1.0f, 2.0f};
  const std::vector<float> g = {0.2f, -0.4f};

  // Step 1: g'0 = 0.2 + 0.01 + 0.5 = 0.71, g'1 = -0.4 + 0.02 + 0.5 = 0.12;
  // v = (0.71, 0.12); w = (1 - 0.071, 2 - 0.012) = (0.929, 1.988).
  sgd.Step(w, g);
  CHECK(w[0] == doctest::Approx(0.929).epsilon(kStepTolerance));
  CHECK(w[1] == doctest::Approx(1.988).epsilon(kStepTolerance));

  // Step 2: g'0 = 0.2 + 0.00929 + 0.4645 = 0.67379, v0 = 0.639 + 0.67379 = 1.31279,
  // w0 = 0.929 - 0.131279 = 0.797721; g'1 = -0.4 + 0.01988 + 0.494 = 0.11388,
  // v1 = 0.108 + 0.11388 = 0.22188, w1 = 1.988 - 0.022188 = 1.965812.
  sgd.Step(w, g);
  CHECK(w[0] == doctest::Approx(0.797721).epsilon(kStepTolerance));
  CHECK(w[1] == doctest::Approx(1.965812).epsilon(kStepTolerance));

  // Reset forgets the velocity: the next step is step 1's rule from the current weights.
  sgd.Reset();
  std::vector<float> fresh = {1.0f, 2.0f};
  sgd.Step(fresh, g);
  CHECK(fresh[0] == doctest::Approx(0.929).epsilon(kStepTolerance));
}

TEST_CASE("SgdOptions::Validate names the field that is out of range") {
  CHECK(SgdOptions{}.Validate().ok());
  const Status lr = SgdOptions{.learning_rate = 0.0f}.Validate();
  CHECK(lr.code() == StatusCode::kInvalidArgument);
  CHECK(lr.message().find("learning_rate") != std::string::npos);
  CHECK(SgdOptions{.momentum = 1.0f}.Validate().message().find("momentum") != std::string::npos);
  CHECK(SgdOptions{.weight_decay = -1.0f}.Validate().message().find("weight_decay") !=
        std::string::npos);
  CHECK(
      SgdOptions{.proximal_mu = std::numeric_limits<float>::quiet_NaN()}.Validate().message().find(
          "proximal_mu") != std::string::npos);
}

}  // namespace
}  // namespace edgefl::models

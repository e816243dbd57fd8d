#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "edgefl/models/optimizer.h"

namespace edgefl::models {
namespace {

// The expected values come from the same two steps in double (Python); float32 rounds each step's
// dozen operations on values below 2, so they agree to a few ulps (2^-23 = 1.2e-7).
constexpr double kStepTolerance = 1e-6;

TEST_CASE(
    "AdamW matches a hand-computed two-step sequence with decoupled "
    "weight decay") {
  const AdamWOptions options{.learning_rate = 0.1f,
                             .beta1 = 0.9f,
                             .beta2 = 0.999f,
                             .epsilon = 1e-8f,
                             .weight_decay = 0.1f};
  AdamW adamw(options, 2);
  std::vector<float> w = {1.0f, 2.0f};
  // Step 1, w[0]: m = 0.05, v = 2.5e-4, m_hat = 0.5, v_hat = 0.25, update = 0.5 / (0.5 + eps); w =
  // 1 - 0.1 * update - 0.1 * 0.1 * 1 = 0.890000002. w[1] has zero gradient: only the decoupled
  // decay acts, w = 2 * (1 - 0.01) = 1.98 (Adam with an L2 term in the gradient would instead move
  // it by a whole normalised step of lr).
  adamw.Step(w, std::vector<float>{0.5f, 0.0f});
  CHECK(w[0] == doctest::Approx(0.890000002).epsilon(kStepTolerance));
  CHECK(w[1] == doctest::Approx(1.98).epsilon(kStepTolerance));
  // Step 2, w[0], g = -0.25: m = 0.02, v = 3.1225e-4, m_hat = 0.02 / 0.19, v_hat = 3.1225e-4 /
  // 0.001999, update = 0.266337033; w = 0.89 - 0.0266337 - 0.0089.
  adamw.Step(w, std::vector<float>{-0.25f, 0.0f});
  CHECK(w[0] == doctest::Approx(0.8544662986878463).epsilon(kStepTolerance));
  CHECK(w[1] == doctest::Approx(1.9602).epsilon(kStepTolerance));
  CHECK(adamw.num_steps() == 2);

  adamw.Reset();
  CHECK(adamw.num_steps() == 0);
  std::vector<float> fresh = {1.0f, 2.0f};
  adamw.Step(fresh, std::vector<float>{0.5f, 0.0f});
  CHECK(fresh[0] == doctest::Approx(0.890000002).epsilon(kStepTolerance));
}

TEST_CASE(
    "AdamW's first step moves every parameter by about lr whatever the "
    "gradient's scale") {
  AdamW adamw(AdamWOptions{.learning_rate = 0.01f, .weight_decay = 0.0f}, 3);
  std::vector<float> w = {0.0f, 0.0f, 0.0f};
  adamw.Step(w, std::vector<float>{1e-3f, -5.0f, 300.0f});
  CHECK(w[0] == doctest::Approx(-0.01).epsilon(1e-4));
  CHECK(w[1] == doctest::Approx(0.01).epsilon(1e-4));
  CHECK(w[2] == doctest::Approx(-0.01).epsilon(1e-4));
}

TEST_CASE("AdamWOptions rejects out-of-range fields by name") {
  CHECK(AdamWOptions{}.Validate().ok());
  CHECK(AdamWOptions{.learning_rate = 0.0f}.Validate().message().find("learning_rate") !=
        std::string::npos);
  CHECK(AdamWOptions{.beta1 = 1.0f}.Validate().message().find("beta1") != std::string::npos);
  CHECK(AdamWOptions{.beta2 = -0.1f}.Validate().message().find("beta2") != std::string::npos);
  CHECK(AdamWOptions{.epsilon = 0.0f}.Validate().message().find("epsilon") != std::string::npos);
  CHECK(AdamWOptions{.weight_decay = NAN}.Validate().message().find("weight_decay") !=
        std::string::npos);
}

}  // namespace
}  // namespace edgefl::models

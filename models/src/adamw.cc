#include <algorithm>
#include <cmath>
#include <string>

#include "edgefl/common/check.h"
#include "edgefl/models/optimizer.h"

namespace edgefl::models {

Status AdamWOptions::Validate() const {
  // Written so that NaN fails every range check.
  if (!(learning_rate > 0.0f) || !std::isfinite(learning_rate)) {
    return InvalidArgumentError("learning_rate must be > 0 and finite, got " +
                                std::to_string(learning_rate));
  }
  if (!(beta1 >= 0.0f && beta1 < 1.0f)) {
    return InvalidArgumentError("beta1 must be in [0, 1), got " + std::to_string(beta1));
  }
  if (!(beta2 >= 0.0f && beta2 < 1.0f)) {
    return InvalidArgumentError("beta2 must be in [0, 1), got " + std::to_string(beta2));
  }
  if (!(epsilon > 0.0f) || !std::isfinite(epsilon)) {
    return InvalidArgumentError("epsilon must be > 0 and finite, got " + std::to_string(epsilon));
  }
  if (!(weight_decay >= 0.0f) || !std::isfinite(weight_decay)) {
    return InvalidArgumentError("weight_decay must be >= 0 and finite, got " +
                                std::to_string(weight_decay));
  }
  return OkStatus();
}

AdamW::AdamW(const AdamWOptions& options, size_t num_parameters)
    : options_(options), m_(num_parameters, 0.0f), v_(num_parameters, 0.0f) {
  const Status valid = options.Validate();
  EDGEFL_CHECK(valid.ok()) << valid.ToString();
}

void AdamW::Step(std::span<float> parameters, std::span<const float> gradients) {
  EDGEFL_CHECK_EQ(parameters.size(), m_.size());
  EDGEFL_CHECK_EQ(gradients.size(), m_.size());
  ++step_;
  const float b1 = options_.beta1;
  const float b2 = options_.beta2;
  // Bias corrections in double: 1 - b2^t is tiny for small t and b2 near 1.
  const double t = static_cast<double>(step_);
  const float inverse_c1 = static_cast<float>(1.0 / (1.0 - std::pow(double{b1}, t)));
  const float inverse_c2 = static_cast<float>(1.0 / (1.0 - std::pow(double{b2}, t)));
  const float lr = options_.learning_rate;
  const float decay = lr * options_.weight_decay;
  const float eps = options_.epsilon;
  float* w = parameters.data();
  const float* g = gradients.data();
  float* m = m_.data();
  float* v = v_.data();
  const size_t n = m_.size();
  for (size_t i = 0; i < n; ++i) {
    m[i] = b1 * m[i] + (1.0f - b1) * g[i];
    v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
    const float update = (m[i] * inverse_c1) / (std::sqrt(v[i] * inverse_c2) + eps);
    w[i] -= lr * update + decay * w[i];
  }
}

void AdamW::Reset() {
  std::fill(m_.begin(), m_.end(), 0.0f);
  std::fill(v_.begin(), v_.end(), 0.0f);
  step_ = 0;
}

}  // namespace edgefl::models

// Local optimizers over a model's flat parameter buffer: SGD with momentum, weight decay and
// FedProx's proximal term (Li et al. 2020).
//
// An optimizer owns only its state (the momentum buffer); parameters and gradients are spans
// of the model's buffers. One optimizer per training session and thread.
//
//   Sgd sgd(SgdOptions{.learning_rate = 0.1f, .momentum = 0.9f}, model.num_parameters());
//   sgd.set_proximal_anchor(global_weights);   // only when proximal_mu > 0
//   sgd.Step(model.parameters(), model.gradients());
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "edgefl/common/status.h"

namespace edgefl::models {

struct SgdOptions {
  float learning_rate = 0.05f;  // > 0
  float momentum = 0.0f;        // [0, 1); classical (heavy-ball) momentum
  float weight_decay = 0.0f;    // >= 0; L2 penalty added to the gradient
  float proximal_mu = 0.0f;     // >= 0; FedProx: adds mu * (w - anchor) to the gradient
  // kInvalidArgument naming the field and value when out of range.
  Status Validate() const;
};

class Sgd {
 public:
  // Precondition (checked): options.Validate() is OK. Steps take spans of num_parameters.
  Sgd(const SgdOptions& options, size_t num_parameters);

  const SgdOptions& options() const { return options_; }
  size_t num_parameters() const { return num_parameters_; }

  // The weights the proximal term pulls towards (the round's global weights). Must outlive
  // the Steps that use it; required when proximal_mu > 0 (checked).
  void set_proximal_anchor(std::span<const float> anchor) { anchor_ = anchor; }

  // g' = g + weight_decay * w + proximal_mu * (w - anchor); v = momentum * v + g'; w -= lr * v.
  // Preconditions (checked): both spans hold num_parameters() floats.
  void Step(std::span<float> parameters, std::span<const float> gradients);

  // Forgets the momentum buffer.
  void Reset();

 private:
  SgdOptions options_;
  size_t num_parameters_ = 0;
  std::vector<float> velocity_;  // empty when momentum == 0
  std::span<const float> anchor_;
};

}  // namespace edgefl::models

namespace edgefl::models {

// AdamW (Loshchilov & Hutter 2019, Algorithm 2): Adam (Kingma & Ba 2015) with bias-corrected
// moments and weight decay decoupled from the gradient, applied with the same learning rate
// (PyTorch's torch.optim.AdamW convention: w -= lr * weight_decay * w; no schedule multiplier).
struct AdamWOptions {
  float learning_rate = 1e-3f;  // > 0 and finite
  float beta1 = 0.9f;           // [0, 1); decay of the first moment
  float beta2 = 0.999f;         // [0, 1); decay of the second moment
  float epsilon = 1e-8f;        // > 0; added to sqrt(v_hat)
  float weight_decay = 0.01f;   // >= 0; decoupled: does not enter the moments
  // kInvalidArgument naming the field and value when out of range.
  Status Validate() const;
};

// Owns the two moment buffers (2 * num_parameters floats) and the step count.
//
//   AdamW adamw(AdamWOptions{.learning_rate = 3e-4f}, model.num_parameters());
//   adamw.Step(model.parameters(), model.gradients());
class AdamW {
 public:
  // Precondition (checked): options.Validate() is OK.
  AdamW(const AdamWOptions& options, size_t num_parameters);

  const AdamWOptions& options() const { return options_; }
  size_t num_parameters() const { return m_.size(); }
  // Steps taken since construction or Reset.
  size_t num_steps() const { return step_; }

  // With t the step count after incrementing:
  //   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
  //   w -= lr * (m / (1 - b1^t) / (sqrt(v / (1 - b2^t)) + eps) + weight_decay * w).
  // Preconditions (checked): both spans hold num_parameters() floats.
  void Step(std::span<float> parameters, std::span<const float> gradients);

  // Zeroes the moments and the step count.
  void Reset();

 private:
  AdamWOptions options_;
  size_t step_ = 0;
  std::vector<float> m_;
  std::vector<float> v_;
};

}  // namespace edgefl::models

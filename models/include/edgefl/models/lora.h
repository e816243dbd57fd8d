// LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): trainable
// low-rank adapters over frozen (fp32 or quantized) dense weights, so that a client trains and
// sends only the adapters.
//
// For a dense layer L with frozen W [out, in] and bias b, the adapter adds A [r, in] and B [out,
// r] and computes y = x W^T + b + scale * (x A^T) B^T with scale = alpha / r (section 4.1). B
// starts at zero, so the adapted model starts equal to its base; A starts U(-1/sqrt(in),
// 1/sqrt(in)) (the Kaiming-uniform(a = sqrt(5)) of PEFT's reference implementation; the paper
// says "random Gaussian"). The tensors are "L.lora_A" [r, in] and "L.lora_B" [out, r], and the
// model's layout holds nothing else: parameters() are the adapters, which is what the federated
// engine trains, clips, masks and aggregates.
//
// LoraAdapter is the math on spans, usable inside any layer (the charlm transformer's
// projections); LoraDense is a Layer (a FrozenDense plus an adapter); CreateLoraModel builds
// "base + adapters" as a Model. Same thread-safety as layers.h / model.h.
//
//   EDGEFL_ASSIGN_OR_RETURN(auto base, QuantizeModel(std::move(mlp), {.format = WeightFormat::kInt4}));
//   EDGEFL_ASSIGN_OR_RETURN(auto model, CreateLoraModel(std::move(base), {.rank = 8, .alpha = 16}));
//   model->InitializeParameters(seed);  // then train; model->parameters() are the adapters
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/common/status.h"
#include "edgefl/models/layers.h"
#include "edgefl/models/layout.h"
#include "edgefl/models/model.h"
#include "edgefl/models/quantized.h"

namespace edgefl::models {

struct LoraOptions {
  size_t rank = 8;      // r, in [1, min(in, out)] of each target
  float alpha = 16.0f;  // the scale is alpha / rank; > 0
  // Names of the dense layers to adapt; empty adapts every dense layer.
  std::vector<std::string> target_layers;

  // kInvalidArgument naming the field when rank == 0 or alpha is not finite and positive.
  Status Validate() const;
};

// The adapter of one dense-like projection, independent of how the base weight is stored.
// Register it once (after the base layer knows its shapes), then call Forward after the base
// computed y = x W^T + b, and Backward with the same x. Const methods, no allocation: the
// caller provides `hidden` (batch * rank floats, kept from Forward to Backward) and
// `d_hidden` (batch * rank floats of scratch).
class LoraAdapter {
 public:
  // Precondition (checked): options valid, in_features, out_features > 0.
  LoraAdapter(std::string layer_name, size_t in_features, size_t out_features,
              const LoraOptions& options);

  // Adds "<layer>.lora_A" [rank, in] and "<layer>.lora_B" [out, rank] to `layout`.
  void RegisterParameters(ParameterLayout& layout);
  // A ~ U(-1/sqrt(in), 1/sqrt(in)), B = 0.
  void InitializeParameters(std::span<float> parameters, Rng& rng) const;

  // hidden = x A^T; y += scale * hidden B^T. x [batch, in], y [batch, out].
  void Forward(std::span<const float> parameters, size_t batch, const float* x, float* y,
               float* hidden, bool parallel) const;
  // Overwrites dA = scale * (dY B)^T x and dB = scale * dY^T hidden in `gradients`; when `d_x`
  // is not null ADDS scale * (dY B) A to it (the caller has put dY W there, the base's part).
  void Backward(std::span<const float> parameters, std::span<float> gradients, size_t batch,
                const float* x, const float* d_y, const float* hidden, float* d_hidden,
                float* d_x, bool parallel) const;

  // W += scale * B A for W [out, in] (MergeLora).
  void MergeInto(std::span<const float> parameters, std::span<float> weight) const;

  size_t rank() const { return rank_; }
  float scale() const { return scale_; }
  size_t in_features() const { return in_; }
  size_t out_features() const { return out_; }
  size_t a_offset() const { return a_offset_; }
  size_t b_offset() const { return b_offset_; }

 private:
  std::string layer_name_;
  size_t in_;
  size_t out_;
  size_t rank_;
  float scale_;
  size_t a_offset_ = 0;
  size_t b_offset_ = 0;
};

// A frozen dense layer plus a LoRA adapter: kind "lora_dense", the name of its base layer,
// trainable tensors the adapter's only. dX = dY W~ + scale * (dY B) A, with W~ the base's
// dequantized weight (FrozenDense::DequantizedWeight, cached: out * in * 4 bytes) when the
// layer is not the first. `base` must outlive the layer.
class LoraDense final : public Layer {
 public:
  LoraDense(const FrozenDense& base, const LoraOptions& options);

  std::string_view kind() const override { return "lora_dense"; }
  Result<Shape> Build(const Shape& input_shape) override;
  void RegisterParameters(ParameterLayout& layout) override { adapter_.RegisterParameters(layout); }
  void InitializeParameters(std::span<float> parameters, Rng& rng) const override {
    adapter_.InitializeParameters(parameters, rng);
  }
  // hidden (rank) and d_hidden (rank) per example.
  size_t scratch_per_example() const override { return 2 * adapter_.rank(); }
  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override;
  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override;

  const FrozenDense& base() const { return base_; }
  const LoraAdapter& adapter() const { return adapter_; }

 private:
  const FrozenDense& base_;
  LoraAdapter adapter_;
};

// "base + adapters" as a Model. `base` is a SequentialModel (its dense layers are first frozen
// in fp32, as QuantizeModel with WeightFormat::kF32) or a model from QuantizeModel /
// LoadQuantizedModel. Each target dense layer becomes a LoraDense over its frozen layer;
// everything else is carried over frozen. The result's layout holds only the adapters, in
// layer order; call InitializeParameters (A random, B zero) or load adapters with
// LoadModelParameters. Errors: kInvalidArgument for invalid options, a target that is missing
// or not dense, or a rank above min(in, out) of a target; kUnimplemented for other models.
Result<std::unique_ptr<Model>> CreateLoraModel(std::unique_ptr<Model> base,
                                               const LoraOptions& options);

// Writes into `dense` (an fp32 model of the base architecture, e.g. CreateModel(spec)) every
// parameter of the LoRA model `lora`, with W' = W~ + scale * B A for adapted layers (W~ the
// dequantized base weight), so that dense computes what lora computes (up to the base's
// quantization of activations, for q8). Also works on a QuantizeModel result (dequantizes) and
// on a charlm of CreateCharLmLora (charlm.h), with `dense` a CreateCharLm of its config.
// kInvalidArgument naming the tensor when `dense`'s layout does not match; on error `dense`
// may be partly written.
[[nodiscard]] Status MergeLora(const Model& lora, Model& dense);

}  // namespace edgefl::models

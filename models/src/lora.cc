// LoRA adapters (lora.h). Every product runs on the dispatched fp32 GEMM (kernels.h), as the
// Dense layer's do; shapes: x [batch, in], A [r, in], B [out, r], hidden = x A^T [batch, r].
#include "edgefl/models/lora.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "adapted_model.h"
#include "edgefl/common/check.h"
#include "edgefl/models/kernels.h"
#include "edgefl/models/sequential.h"
#include "parallel.h"

namespace edgefl::models {
namespace {

using internal::ForEachChunk;
using internal::ThreadGemmWorkspace;
using kernels::Transpose;

}  // namespace

Status LoraOptions::Validate() const {
  if (rank == 0) return InvalidArgumentError("LoRA rank must be >= 1, got 0");
  if (!(std::isfinite(alpha) && alpha > 0.0f)) {
    return InvalidArgumentError("LoRA alpha must be finite and > 0, got " + std::to_string(alpha));
  }
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------
// LoraAdapter

LoraAdapter::LoraAdapter(std::string layer_name, size_t in_features, size_t out_features,
                         const LoraOptions& options)
    : layer_name_(std::move(layer_name)),
      in_(in_features),
      out_(out_features),
      rank_(options.rank),
      scale_(options.alpha / static_cast<float>(options.rank)) {
  EDGEFL_CHECK(options.Validate().ok()) << options.Validate().ToString();
  EDGEFL_CHECK(in_ > 0 && out_ > 0) << layer_name_;
}

void LoraAdapter::RegisterParameters(ParameterLayout& layout) {
  a_offset_ = layout.Add(layer_name_ + ".lora_A",
                         {static_cast<int64_t>(rank_), static_cast<int64_t>(in_)});
  b_offset_ = layout.Add(layer_name_ + ".lora_B",
                         {static_cast<int64_t>(out_), static_cast<int64_t>(rank_)});
}

void LoraAdapter::InitializeParameters(std::span<float> parameters, Rng& rng) const {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  std::span<float> a = parameters.subspan(a_offset_, rank_ * in_);
  for (float& v : a) v = static_cast<float>((2.0 * rng.Uniform01() - 1.0) * bound);
  std::span<float> b = parameters.subspan(b_offset_, out_ * rank_);
  std::fill(b.begin(), b.end(), 0.0f);
}

void LoraAdapter::Forward(std::span<const float> parameters, size_t batch, const float* x,
                          float* y, float* hidden, bool parallel) const {
  const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
  const float* a = parameters.data() + a_offset_;
  const float* b = parameters.data() + b_offset_;
  ForEachChunk(batch, parallel, [&](size_t begin, size_t end) {
    // hidden = x A^T (NT), then y += scale * hidden B^T (NT).
    gemm(Transpose::kNo, Transpose::kYes, end - begin, rank_, in_, 1.0f, x + begin * in_, in_, a,
         in_, 0.0f, hidden + begin * rank_, rank_, ThreadGemmWorkspace());
    gemm(Transpose::kNo, Transpose::kYes, end - begin, out_, rank_, scale_,
         hidden + begin * rank_, rank_, b, rank_, 1.0f, y + begin * out_, out_,
         ThreadGemmWorkspace());
  });
}

void LoraAdapter::Backward(std::span<const float> parameters, std::span<float> gradients,
                           size_t batch, const float* x, const float* d_y, const float* hidden,
                           float* d_hidden, float* d_x, bool parallel) const {
  const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
  const float* a = parameters.data() + a_offset_;
  const float* b = parameters.data() + b_offset_;
  float* d_a = gradients.data() + a_offset_;
  float* d_b = gradients.data() + b_offset_;
  // d_hidden = scale * dY B (NN) and dX += d_hidden A (NN), split over examples.
  ForEachChunk(batch, parallel, [&](size_t begin, size_t end) {
    gemm(Transpose::kNo, Transpose::kNo, end - begin, rank_, out_, scale_, d_y + begin * out_,
         out_, b, rank_, 0.0f, d_hidden + begin * rank_, rank_, ThreadGemmWorkspace());
    if (d_x != nullptr) {
      gemm(Transpose::kNo, Transpose::kNo, end - begin, in_, rank_, 1.0f,
           d_hidden + begin * rank_, rank_, a, in_, 1.0f, d_x + begin * in_, in_,
           ThreadGemmWorkspace());
    }
  });
  // dA = d_hidden^T x (TN) [r, in]; dB = scale * dY^T hidden (TN) [out, r]. Small: serial.
  gemm(Transpose::kYes, Transpose::kNo, rank_, in_, batch, 1.0f, d_hidden, rank_, x, in_, 0.0f,
       d_a, in_, ThreadGemmWorkspace());
  gemm(Transpose::kYes, Transpose::kNo, out_, rank_, batch, scale_, d_y, out_, hidden, rank_, 0.0f,
       d_b, rank_, ThreadGemmWorkspace());
}

void LoraAdapter::MergeInto(std::span<const float> parameters, std::span<float> weight) const {
  EDGEFL_CHECK_EQ(weight.size(), out_ * in_);
  // W += scale * B A (NN).
  kernels::Kernels().gemm_f32(Transpose::kNo, Transpose::kNo, out_, in_, rank_, scale_,
                              parameters.data() + b_offset_, rank_,
                              parameters.data() + a_offset_, in_, 1.0f, weight.data(), in_,
                              ThreadGemmWorkspace());
}

// ---------------------------------------------------------------------------------------------
// LoraDense

LoraDense::LoraDense(const FrozenDense& base, const LoraOptions& options)
    : Layer(base.name()),
      base_(base),
      adapter_(base.name(), base.in_features(), base.out_features(), options) {}

Result<Shape> LoraDense::Build(const Shape& input_shape) {
  if (NumElements(input_shape) != base_.in_features()) {
    return InvalidArgumentError("LoRA layer '" + name() + "' takes " +
                                std::to_string(base_.in_features()) + " inputs, got shape " +
                                ShapeToString(input_shape));
  }
  return Shape{static_cast<int64_t>(base_.out_features())};
}

void LoraDense::Forward(const PassContext& pass, std::span<const float> in,
                        std::span<float> out, std::span<float> scratch) const {
  const size_t batch = pass.batch_size;
  EDGEFL_CHECK(scratch.size() == 2 * batch * adapter_.rank()) << name();
  base_.Forward(pass, in, out, {});
  adapter_.Forward(pass.parameters, batch, in.data(), out.data(), scratch.data(), pass.parallel);
}

void LoraDense::Backward(const PassContext& pass, std::span<const float> in,
                         std::span<const float> out, std::span<const float> d_out,
                         std::span<float> d_in, std::span<float> scratch) const {
  const size_t batch = pass.batch_size;
  EDGEFL_CHECK(scratch.size() == 2 * batch * adapter_.rank()) << name();
  // The base's part of dX first (dY W~), then the adapter adds its own.
  if (!d_in.empty()) base_.Backward(pass, in, out, d_out, d_in, {});
  float* hidden = scratch.data();
  float* d_hidden = scratch.data() + batch * adapter_.rank();
  adapter_.Backward(pass.parameters, pass.gradients, batch, in.data(), d_out.data(), hidden,
                    d_hidden, d_in.empty() ? nullptr : d_in.data(), pass.parallel);
}

// ---------------------------------------------------------------------------------------------
// Models

Result<std::unique_ptr<Model>> CreateLoraModel(std::unique_ptr<Model> base,
                                               const LoraOptions& options) {
  EDGEFL_CHECK(base != nullptr);
  EDGEFL_RETURN_IF_ERROR(options.Validate());
  if (dynamic_cast<internal::AdaptedModel*>(base.get()) == nullptr) {
    if (dynamic_cast<SequentialModel*>(base.get()) == nullptr) {
      return UnimplementedError("model '" + base->name() + "' is not a sequential model");
    }
    EDGEFL_ASSIGN_OR_RETURN(base,
                            QuantizeModel(std::move(base), {.format = WeightFormat::kF32}));
  }
  SequentialModel& source = static_cast<internal::AdaptedModel&>(*base).sequential();

  std::set<std::string, std::less<>> targets(options.target_layers.begin(),
                                             options.target_layers.end());
  for (const std::string& target : targets) {
    bool found = false;
    for (size_t i = 0; i < source.num_layers(); ++i) {
      if (source.layer(i).name() != target) continue;
      found = true;
      const internal::ResolvedLayer resolved = internal::ResolveLayer(source.layer(i), source);
      if (dynamic_cast<const FrozenDense*>(resolved.layer) == nullptr) {
        return InvalidArgumentError("LoRA target '" + target + "' of model '" + base->name() +
                                    "' is a " + std::string(resolved.layer->kind()) +
                                    ", not a dense layer");
      }
    }
    if (!found) {
      return InvalidArgumentError("LoRA target '" + target + "': model '" + base->name() +
                                  "' has no such layer");
    }
  }

  std::vector<std::unique_ptr<Layer>> layers;
  for (size_t i = 0; i < source.num_layers(); ++i) {
    const internal::ResolvedLayer resolved = internal::ResolveLayer(source.layer(i), source);
    const auto* frozen = dynamic_cast<const FrozenDense*>(resolved.layer);
    if (resolved.layer->kind() == "lora_dense") {
      return UnimplementedError("model '" + base->name() + "' already has LoRA adapters");
    }
    if (frozen != nullptr && (targets.empty() || targets.contains(frozen->name()))) {
      layers.push_back(std::make_unique<LoraDense>(*frozen, options));
    } else {
      layers.push_back(internal::BorrowLayer(source, i));
    }
  }
  EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<SequentialModel> sequential,
                          SequentialModel::Create(source.name(), source.input_shape(),
                                                  source.num_classes(), std::move(layers)));
  return std::unique_ptr<Model>(
      std::make_unique<internal::AdaptedModel>(std::move(base), std::move(sequential)));
}

namespace {

// Copies `values` into `dense`'s tensor `name`, checking its shape.
Status WriteTensor(Model& dense, const std::string& name, const std::vector<int64_t>& shape,
                   std::span<const float> values) {
  Result<ParameterSpec> spec = dense.layout().Find(name);
  if (!spec.ok()) return spec.status().WithContext("merging into model '" + dense.name() + "'");
  if (spec->shape != shape) {
    return InvalidArgumentError("tensor '" + name + "' has shape " + ShapeToString(spec->shape) +
                                " in model '" + dense.name() + "', expected " +
                                ShapeToString(shape));
  }
  std::copy(values.begin(), values.end(), dense.parameters().begin() + spec->offset);
  return OkStatus();
}

}  // namespace

Status MergeLora(const Model& lora, Model& dense) {
  if (const auto* mergeable = dynamic_cast<const internal::MergeableLora*>(&lora)) {
    return mergeable->MergeInto(dense);
  }
  const SequentialModel* sequential = internal::AsSequential(lora);
  if (sequential == nullptr) {
    return InvalidArgumentError("model '" + lora.name() + "' is not a sequential model");
  }
  for (size_t i = 0; i < sequential->num_layers(); ++i) {
    const internal::ResolvedLayer resolved =
        internal::ResolveLayer(sequential->layer(i), *sequential);
    const FrozenDense* frozen = dynamic_cast<const FrozenDense*>(resolved.layer);
    const LoraDense* adapted = dynamic_cast<const LoraDense*>(resolved.layer);
    if (adapted != nullptr) frozen = &adapted->base();
    if (frozen != nullptr) {
      const std::span<const float> base_weight = frozen->DequantizedWeight();
      std::vector<float> weight(base_weight.begin(), base_weight.end());
      if (adapted != nullptr) adapted->adapter().MergeInto(resolved.owner->parameters(), weight);
      const int64_t out = static_cast<int64_t>(frozen->out_features());
      const int64_t in = static_cast<int64_t>(frozen->in_features());
      EDGEFL_RETURN_IF_ERROR(WriteTensor(dense, frozen->name() + ".weight", {out, in}, weight));
      EDGEFL_RETURN_IF_ERROR(WriteTensor(dense, frozen->name() + ".bias", {out}, frozen->bias()));
      continue;
    }
    const std::string prefix = resolved.layer->name() + ".";
    const std::span<const float> parameters = resolved.owner->parameters();
    for (const ParameterSpec& spec : resolved.owner->layout().specs()) {
      if (!spec.name.starts_with(prefix)) continue;
      EDGEFL_RETURN_IF_ERROR(
          WriteTensor(dense, spec.name, spec.shape, parameters.subspan(spec.offset, spec.size)));
    }
  }
  return OkStatus();
}

}  // namespace edgefl::models

// FrozenDense, QuantizeModel and the AdaptedModel machinery (quantized.h, adapted_model.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "adapted_model.h"
#include "edgefl/common/check.h"
#include "edgefl/models/quantized.h"
#include "edgefl/models/sequential.h"
#include "parallel.h"

namespace edgefl::models {
namespace {

using internal::ForEachChunk;
using internal::ThreadGemmWorkspace;
using kernels::Transpose;

// Per-thread buffers that grow to the largest size asked for and are then reused, so a
// forward pass allocates only while the batch size is still growing.
template <typename T>
T* ThreadBuffer(std::vector<T>& buffer, size_t size) {
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}
uint8_t* ActivationBuffer(size_t size) {
  thread_local std::vector<uint8_t> buffer;
  return ThreadBuffer(buffer, size);
}
int32_t* AccumulatorBuffer(size_t size) {
  thread_local std::vector<int32_t> buffer;
  return ThreadBuffer(buffer, size);
}

}  // namespace

std::string_view WeightFormatName(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32:
      return "f32";
    case WeightFormat::kInt8:
      return "q8";
    case WeightFormat::kInt4:
      return "q4";
  }
  return "unknown";
}

Result<WeightFormat> ParseWeightFormat(std::string_view name) {
  for (WeightFormat format : {WeightFormat::kF32, WeightFormat::kInt8, WeightFormat::kInt4}) {
    if (WeightFormatName(format) == name) return format;
  }
  return InvalidArgumentError("unknown weight format '" + std::string(name) +
                              "'; known formats: f32, q8, q4");
}

std::string_view QuantizedMetadataFormat(WeightFormat format) {
  switch (format) {
    case WeightFormat::kF32:
      return "edgefl-f32";
    case WeightFormat::kInt8:
      return "edgefl-q8";
    case WeightFormat::kInt4:
      return "edgefl-q4";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------------------------
// FrozenDense

FrozenDense::FrozenDense(std::string name, WeightFormat format, size_t out_features,
                         size_t in_features)
    : Layer(std::move(name)), format_(format), out_(out_features), in_(in_features) {
  EDGEFL_CHECK(out_ > 0 && in_ > 0) << "frozen dense layer " << this->name() << " of " << out_
                                    << " x " << in_;
}

std::unique_ptr<FrozenDense> FrozenDense::Quantize(std::string name, WeightFormat format,
                                                   size_t out_features, size_t in_features,
                                                   std::span<const float> weight,
                                                   std::span<const float> bias) {
  std::unique_ptr<FrozenDense> layer(
      new FrozenDense(std::move(name), format, out_features, in_features));
  EDGEFL_CHECK(weight.size() == out_features * in_features && bias.size() == out_features)
      << layer->name();
  layer->bias_.assign(bias.begin(), bias.end());
  switch (format) {
    case WeightFormat::kF32:
      layer->weight_f32_.assign(weight.begin(), weight.end());
      break;
    case WeightFormat::kInt8:
      layer->weight_q8_ = QuantizeAndPackInt8(weight, out_features, in_features);
      break;
    case WeightFormat::kInt4:
      layer->weight_q4_.resize(out_features * kernels::Int4BlocksPerRow(in_features));
      QuantizeInt4Groups(weight, out_features, in_features, layer->weight_q4_);
      break;
  }
  return layer;
}

namespace {

// The tensor `name` with the given dtype and shape, or the error naming it.
Result<const Tensor*> FindTensor(const TensorMap& tensors, const std::string& name,
                                 TensorDtype dtype, const std::vector<int64_t>& shape) {
  const auto it = tensors.find(name);
  if (it == tensors.end()) return NotFoundError("checkpoint has no tensor '" + name + "'");
  const Tensor& tensor = it->second;
  if (tensor.dtype != dtype || tensor.shape != shape) {
    return InvalidArgumentError("tensor '" + name + "' is " + std::string(DtypeName(tensor.dtype)) +
                                " " + ShapeToString(tensor.shape) + ", expected " +
                                std::string(DtypeName(dtype)) + " " + ShapeToString(shape));
  }
  return &tensor;
}

Result<std::vector<float>> FiniteF32(const Tensor& tensor, const std::string& name) {
  EDGEFL_ASSIGN_OR_RETURN(std::vector<float> values, TensorToF32(tensor, name));
  for (float v : values) {
    if (!std::isfinite(v)) return InvalidArgumentError("tensor '" + name + "' holds " +
                                                       std::to_string(v));
  }
  return values;
}

}  // namespace

Result<std::unique_ptr<FrozenDense>> FrozenDense::FromTensors(std::string name,
                                                              const TensorMap& tensors) {
  const std::string weight_name = name + ".weight";
  const std::string q8_name = weight_name + ".q8";
  const std::string q4_name = weight_name + ".q4";
  const std::string scale_name = weight_name + ".scale";
  const std::string bias_name = name + ".bias";
  const auto bias_it = tensors.find(bias_name);
  if (bias_it == tensors.end()) return NotFoundError("checkpoint has no tensor '" + bias_name + "'");
  if (bias_it->second.shape.size() != 1 || bias_it->second.shape[0] <= 0) {
    return InvalidArgumentError("tensor '" + bias_name + "' has shape " +
                                ShapeToString(bias_it->second.shape) + ", expected [out > 0]");
  }
  const int64_t out = bias_it->second.shape[0];
  EDGEFL_ASSIGN_OR_RETURN(std::vector<float> bias, FiniteF32(bias_it->second, bias_name));

  // The weight tensor that is present decides the format; its second dimension gives `in`.
  WeightFormat format;
  const Tensor* weight = nullptr;
  if (auto it = tensors.find(q8_name); it != tensors.end()) {
    format = WeightFormat::kInt8;
    weight = &it->second;
  } else if (auto it4 = tensors.find(q4_name); it4 != tensors.end()) {
    format = WeightFormat::kInt4;
    weight = &it4->second;
  } else if (auto it32 = tensors.find(weight_name); it32 != tensors.end()) {
    format = WeightFormat::kF32;
    weight = &it32->second;
  } else {
    return NotFoundError("checkpoint has none of '" + weight_name + "', '" + q8_name + "', '" +
                         q4_name + "'");
  }
  if (weight->shape.size() != 2 || weight->shape[0] != out || weight->shape[1] <= 0) {
    return InvalidArgumentError("weight of layer '" + name + "' has shape " +
                                ShapeToString(weight->shape) + ", expected [" +
                                std::to_string(out) + ", in]");
  }
  const size_t rows = static_cast<size_t>(out);
  std::unique_ptr<FrozenDense> layer;
  if (format == WeightFormat::kF32) {
    const size_t in = static_cast<size_t>(weight->shape[1]);
    EDGEFL_ASSIGN_OR_RETURN(std::vector<float> w, FiniteF32(*weight, weight_name));
    layer.reset(new FrozenDense(name, format, rows, in));
    layer->weight_f32_ = std::move(w);
  } else if (format == WeightFormat::kInt8) {
    const size_t in = static_cast<size_t>(weight->shape[1]);
    if (weight->dtype != TensorDtype::kI8 || in > kernels::kMaxInt8GemmDepth) {
      return InvalidArgumentError("tensor '" + q8_name + "' must be I8 with at most " +
                                  std::to_string(kernels::kMaxInt8GemmDepth) + " columns");
    }
    EDGEFL_ASSIGN_OR_RETURN(const Tensor* scale,
                            FindTensor(tensors, scale_name, TensorDtype::kF32, {out}));
    EDGEFL_ASSIGN_OR_RETURN(std::vector<float> scales, FiniteF32(*scale, scale_name));
    layer.reset(new FrozenDense(name, format, rows, in));
    Int8Weights& q8 = layer->weight_q8_;
    q8.rows = rows;
    q8.cols = in;
    q8.scales = std::move(scales);
    q8.packed.resize(kernels::Int8PackedBlocks(rows, in));
    q8.row_sums.resize(rows);
    kernels::PackInt8Weights(reinterpret_cast<const int8_t*>(weight->bytes.data()), in, rows, in,
                             q8.packed.data(), q8.row_sums.data());
  } else {
    // [out, 16 G] nibbles: `in` is known only up to the group, so take it as 32 G, the widest
    // it can be; a wider model layer fails at Build with the shapes in the message.
    if (weight->dtype != TensorDtype::kU8 || weight->shape[1] % 16 != 0) {
      return InvalidArgumentError("tensor '" + q4_name + "' must be U8 [out, 16 * groups], is " +
                                  std::string(DtypeName(weight->dtype)) + " " +
                                  ShapeToString(weight->shape));
    }
    const int64_t groups = weight->shape[1] / 16;
    EDGEFL_ASSIGN_OR_RETURN(const Tensor* scale,
                            FindTensor(tensors, scale_name, TensorDtype::kF32, {out, groups}));
    EDGEFL_ASSIGN_OR_RETURN(std::vector<float> scales, FiniteF32(*scale, scale_name));
    const size_t in = static_cast<size_t>(groups) * kernels::kInt4GroupSize;
    layer.reset(new FrozenDense(name, format, rows, in));
    layer->weight_q4_.resize(rows * static_cast<size_t>(groups));
    for (size_t b = 0; b < layer->weight_q4_.size(); ++b) {
      layer->weight_q4_[b].scale = scales[b];
      std::memcpy(layer->weight_q4_[b].packed, weight->bytes.data() + b * 16, 16);
    }
  }
  layer->bias_ = std::move(bias);
  return layer;
}

Result<Shape> FrozenDense::Build(const Shape& input_shape) {
  const size_t in = NumElements(input_shape);
  // An int4 layer loaded from a checkpoint knows `in` only up to its group of 32.
  const bool fits = in == in_ || (format_ == WeightFormat::kInt4 &&
                                  kernels::Int4BlocksPerRow(in) * kernels::kInt4GroupSize == in_);
  if (!fits) {
    return InvalidArgumentError("frozen dense layer '" + name() + "' takes " +
                                std::to_string(in_) + " inputs, got shape " +
                                ShapeToString(input_shape));
  }
  in_ = in;
  return Shape{static_cast<int64_t>(out_)};
}

void FrozenDense::Forward(const PassContext& pass, std::span<const float> in,
                          std::span<float> out, std::span<float> scratch) const {
  const size_t batch = pass.batch_size;
  EDGEFL_CHECK(in.size() == batch * in_ && out.size() == batch * out_) << name();
  if (batch == 0) return;
  const kernels::KernelTable& k = kernels::Kernels();
  switch (format_) {
    case WeightFormat::kF32:
      ForEachChunk(batch, pass.parallel, [&](size_t begin, size_t end) {
        for (size_t r = begin; r < end; ++r) {
          std::copy(bias_.begin(), bias_.end(), out.data() + r * out_);
        }
        k.gemm_f32(Transpose::kNo, Transpose::kYes, end - begin, out_, in_, 1.0f,
                   in.data() + begin * in_, in_, weight_f32_.data(), in_, 1.0f,
                   out.data() + begin * out_, out_, ThreadGemmWorkspace());
      });
      break;
    case WeightFormat::kInt8: {
      // One (scale, zero point) for the whole batch, so the result does not depend on how the
      // batch is split over threads.
      const auto [lo, hi] = std::minmax_element(in.begin(), in.end());
      const U8QuantParams params = ChooseU8QuantParams(*lo, *hi);
      uint8_t* q = ActivationBuffer(in.size());
      QuantizeU8(in, params, std::span<uint8_t>(q, in.size()));
      ForEachChunk(batch, pass.parallel, [&](size_t begin, size_t end) {
        int32_t* acc = AccumulatorBuffer((end - begin) * out_);
        k.gemm_u8s8s32(end - begin, out_, in_, q + begin * in_, in_, weight_q8_.packed.data(), acc,
                       out_);
        kernels::RequantizeS32ToF32(end - begin, out_, acc, out_, params.scale, params.zero_point,
                                    weight_q8_.scales.data(), weight_q8_.row_sums.data(),
                                    bias_.data(), out.data() + begin * out_, out_);
      });
      break;
    }
    case WeightFormat::kInt4:
      ForEachChunk(batch, pass.parallel, [&](size_t begin, size_t end) {
        for (size_t r = begin; r < end; ++r) {
          std::copy(bias_.begin(), bias_.end(), out.data() + r * out_);
        }
        k.gemm_f32_int4(end - begin, out_, in_, in.data() + begin * in_, in_, weight_q4_.data(),
                        1.0f, out.data() + begin * out_, out_);
      });
      break;
  }
}

void FrozenDense::Backward(const PassContext& pass, std::span<const float> in,
                           std::span<const float> out, std::span<const float> d_out,
                           std::span<float> d_in, std::span<float> scratch) const {
  if (d_in.empty()) return;
  const size_t batch = pass.batch_size;
  EDGEFL_CHECK(d_out.size() == batch * out_ && d_in.size() == batch * in_) << name();
  const float* weight = DequantizedWeight().data();
  const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
  // dX = dY W~ (NN), split over examples.
  ForEachChunk(batch, pass.parallel, [&](size_t begin, size_t end) {
    gemm(Transpose::kNo, Transpose::kNo, end - begin, in_, out_, 1.0f,
         d_out.data() + begin * out_, out_, weight, in_, 0.0f, d_in.data() + begin * in_, in_,
         ThreadGemmWorkspace());
  });
}

std::span<const float> FrozenDense::DequantizedWeight() const {
  if (format_ == WeightFormat::kF32) return weight_f32_;
  std::call_once(dequantize_once_, [this] {
    dequantized_.resize(out_ * in_);
    if (format_ == WeightFormat::kInt8) {
      std::vector<int8_t> q(out_ * in_);
      kernels::UnpackInt8Weights(weight_q8_.packed.data(), out_, in_, q.data(), in_);
      DequantizeInt8PerChannel(q, weight_q8_.scales, out_, in_, dequantized_);
    } else {
      DequantizeInt4Groups(weight_q4_, out_, in_, dequantized_);
    }
  });
  return dequantized_;
}

size_t FrozenDense::weight_bytes() const {
  switch (format_) {
    case WeightFormat::kF32:
      return out_ * in_ * sizeof(float);
    case WeightFormat::kInt8:
      return out_ * in_ + out_ * sizeof(float);
    case WeightFormat::kInt4:
      return weight_q4_.size() * (kernels::kInt4GroupSize / 2 + sizeof(float));
  }
  return 0;
}

void FrozenDense::AppendTensors(TensorMap& tensors) const {
  const int64_t out = static_cast<int64_t>(out_);
  const int64_t in = static_cast<int64_t>(in_);
  const std::string weight = name() + ".weight";
  switch (format_) {
    case WeightFormat::kF32:
      tensors[weight] = F32Tensor({out, in}, weight_f32_);
      break;
    case WeightFormat::kInt8: {
      std::vector<int8_t> q(out_ * in_);
      kernels::UnpackInt8Weights(weight_q8_.packed.data(), out_, in_, q.data(), in_);
      tensors[weight + ".q8"] = I8Tensor({out, in}, q);
      tensors[weight + ".scale"] = F32Tensor({out}, weight_q8_.scales);
      break;
    }
    case WeightFormat::kInt4: {
      const int64_t groups = static_cast<int64_t>(kernels::Int4BlocksPerRow(in_));
      std::vector<uint8_t> nibbles(weight_q4_.size() * 16);
      std::vector<float> scales(weight_q4_.size());
      for (size_t b = 0; b < weight_q4_.size(); ++b) {
        std::memcpy(nibbles.data() + b * 16, weight_q4_[b].packed, 16);
        scales[b] = weight_q4_[b].scale;
      }
      tensors[weight + ".q4"] = U8Tensor({out, 16 * groups}, nibbles);
      tensors[weight + ".scale"] = F32Tensor({out, groups}, scales);
      break;
    }
  }
  tensors[name() + ".bias"] = F32Tensor({out}, bias_);
}

// ---------------------------------------------------------------------------------------------
// Borrowed layers and AdaptedModel helpers

namespace internal {
namespace {

class BorrowedLayer final : public Layer {
 public:
  BorrowedLayer(SequentialModel& source, size_t index)
      : Layer(source.layer(index).name()), source_(source), index_(index) {}

  std::string_view kind() const override { return source_.layer(index_).kind(); }

  Result<Shape> Build(const Shape& input_shape) override {
    const Shape& expected = index_ == 0 ? source_.input_shape() : source_.output_shape(index_ - 1);
    if (NumElements(input_shape) != NumElements(expected)) {
      return InvalidArgumentError("layer '" + name() + "' was built for input " +
                                  ShapeToString(expected) + ", got " + ShapeToString(input_shape));
    }
    return source_.output_shape(index_);
  }

  size_t scratch_per_example() const override {
    return source_.layer(index_).scratch_per_example();
  }

  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override {
    source_.layer(index_).Forward(SourcePass(pass), in, out, scratch);
  }

  // The source layer also writes its own parameter gradients into the source model's gradient
  // buffer, where nobody reads them: carried-over layers are frozen.
  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override {
    source_.layer(index_).Backward(SourcePass(pass), in, out, d_out, d_in, scratch);
  }

  const Layer& source_layer() const { return source_.layer(index_); }
  const SequentialModel& source() const { return source_; }

 private:
  PassContext SourcePass(const PassContext& pass) const {
    return PassContext{.batch_size = pass.batch_size,
                       .parameters = std::as_const(source_).parameters(),
                       .gradients = source_.gradients(),
                       .parallel = pass.parallel};
  }

  SequentialModel& source_;
  size_t index_;
};

}  // namespace

SequentialModel* AsSequential(Model& model) {
  if (auto* adapted = dynamic_cast<AdaptedModel*>(&model)) return &adapted->sequential();
  return dynamic_cast<SequentialModel*>(&model);
}

const SequentialModel* AsSequential(const Model& model) {
  if (auto* adapted = dynamic_cast<const AdaptedModel*>(&model)) return &adapted->sequential();
  return dynamic_cast<const SequentialModel*>(&model);
}

std::unique_ptr<Layer> BorrowLayer(SequentialModel& source, size_t index) {
  return std::make_unique<BorrowedLayer>(source, index);
}

ResolvedLayer ResolveLayer(const Layer& layer, const SequentialModel& owner) {
  ResolvedLayer resolved{.layer = &layer, .owner = &owner};
  while (auto* borrowed = dynamic_cast<const BorrowedLayer*>(resolved.layer)) {
    resolved = ResolvedLayer{.layer = &borrowed->source_layer(), .owner = &borrowed->source()};
  }
  return resolved;
}

}  // namespace internal

// ---------------------------------------------------------------------------------------------
// QuantizeModel and friends

namespace {

// Appends the F32 parameters of `layer` (found in `owner`'s layout under "<layer>.") to
// `tensors`.
void AppendLayerParameters(const Layer& layer, const SequentialModel& owner, TensorMap& tensors) {
  const std::string prefix = layer.name() + ".";
  const std::span<const float> parameters = owner.parameters();
  for (const ParameterSpec& spec : owner.layout().specs()) {
    if (spec.name.starts_with(prefix)) {
      tensors[spec.name] = F32Tensor(spec.shape, parameters.subspan(spec.offset, spec.size));
    }
  }
}

}  // namespace

QuantizedTensorReport MeasureQuantization(std::string name, std::span<const float> fp32,
                                          const FrozenDense& frozen) {
  const std::span<const float> dequantized = frozen.DequantizedWeight();
  EDGEFL_CHECK(dequantized.size() == fp32.size());
  double sum = 0.0;
  float max = 0.0f;
  for (size_t i = 0; i < fp32.size(); ++i) {
    const float error = std::fabs(fp32[i] - dequantized[i]);
    sum += error;
    max = std::max(max, error);
  }
  return {.name = std::move(name),
          .fp32_bytes = fp32.size() * sizeof(float),
          .quantized_bytes = frozen.weight_bytes(),
          .max_abs_error = max,
          .mean_abs_error = fp32.empty() ? 0.0f
                                         : static_cast<float>(sum / static_cast<double>(fp32.size()))};
}

Result<std::unique_ptr<Model>> QuantizeModel(std::unique_ptr<Model> model,
                                             const QuantizeOptions& options,
                                             std::vector<QuantizedTensorReport>* report) {
  EDGEFL_CHECK(model != nullptr);
  auto* source = dynamic_cast<SequentialModel*>(model.get());
  if (source == nullptr) {
    return UnimplementedError("model '" + model->name() +
                              "' is not a plain sequential model; only those can be quantized");
  }
  std::set<std::string, std::less<>> wanted(options.layers.begin(), options.layers.end());
  for (const std::string& name : wanted) {
    bool found = false;
    for (size_t i = 0; i < source->num_layers(); ++i) {
      if (source->layer(i).name() != name) continue;
      found = true;
      if (source->layer(i).kind() != "dense") {
        return InvalidArgumentError("layer '" + name + "' of model '" + model->name() + "' is a " +
                                    std::string(source->layer(i).kind()) +
                                    ", only dense layers can be quantized");
      }
    }
    if (!found) {
      return InvalidArgumentError("model '" + model->name() + "' has no layer named '" + name +
                                  "'");
    }
  }
  if (report != nullptr) report->clear();

  std::vector<std::unique_ptr<Layer>> layers;
  bool borrows = false;
  const std::span<const float> parameters = std::as_const(*source).parameters();
  for (size_t i = 0; i < source->num_layers(); ++i) {
    const Layer& layer = source->layer(i);
    const bool chosen = wanted.empty() || wanted.contains(layer.name());
    if (layer.kind() == "dense" && chosen) {
      EDGEFL_ASSIGN_OR_RETURN(ParameterSpec weight,
                              source->layout().Find(layer.name() + ".weight"));
      EDGEFL_ASSIGN_OR_RETURN(ParameterSpec bias, source->layout().Find(layer.name() + ".bias"));
      EDGEFL_CHECK(weight.shape.size() == 2) << weight.name;
      const size_t out = static_cast<size_t>(weight.shape[0]);
      const size_t in = static_cast<size_t>(weight.shape[1]);
      const std::span<const float> w = parameters.subspan(weight.offset, weight.size);
      std::unique_ptr<FrozenDense> frozen = FrozenDense::Quantize(
          layer.name(), options.format, out, in, w, parameters.subspan(bias.offset, bias.size));
      if (report != nullptr) report->push_back(MeasureQuantization(weight.name, w, *frozen));
      layers.push_back(std::move(frozen));
    } else if (layer.kind() == "relu") {
      layers.push_back(MakeRelu(layer.name()));
    } else {
      layers.push_back(internal::BorrowLayer(*source, i));
      borrows = true;
    }
  }
  EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<SequentialModel> sequential,
                          SequentialModel::Create(source->name(), source->input_shape(),
                                                  source->num_classes(), std::move(layers)));
  if (!borrows) model.reset();
  return std::unique_ptr<Model>(
      std::make_unique<internal::AdaptedModel>(std::move(model), std::move(sequential)));
}

Result<TensorMap> QuantizedModelTensors(const Model& model) {
  const auto* adapted = dynamic_cast<const internal::AdaptedModel*>(&model);
  if (adapted == nullptr) {
    return InvalidArgumentError("model '" + model.name() + "' was not made by QuantizeModel");
  }
  const SequentialModel& sequential = adapted->sequential();
  TensorMap tensors;
  for (size_t i = 0; i < sequential.num_layers(); ++i) {
    const internal::ResolvedLayer resolved = internal::ResolveLayer(sequential.layer(i), sequential);
    if (auto* frozen = dynamic_cast<const FrozenDense*>(resolved.layer)) {
      frozen->AppendTensors(tensors);
    } else if (resolved.layer->kind() == "lora_dense") {
      return InvalidArgumentError("model '" + model.name() +
                                  "' has LoRA adapters; save them with SaveModel and the base "
                                  "with QuantizedModelTensors");
    } else {
      AppendLayerParameters(*resolved.layer, *resolved.owner, tensors);
    }
  }
  return tensors;
}

Result<std::unique_ptr<Model>> LoadQuantizedModel(const TensorMap& tensors,
                                                  std::unique_ptr<Model> architecture) {
  EDGEFL_CHECK(architecture != nullptr);
  auto* source = dynamic_cast<SequentialModel*>(architecture.get());
  if (source == nullptr) {
    return UnimplementedError("model '" + architecture->name() +
                              "' is not a plain sequential model");
  }
  // Carried-over layers keep their parameters in `architecture`: load them there first.
  {
    std::vector<float> staged(source->parameters().begin(), source->parameters().end());
    for (const ParameterSpec& spec : source->layout().specs()) {
      const std::string layer_name = spec.name.substr(0, spec.name.find('.'));
      bool dense = false;
      for (size_t i = 0; i < source->num_layers(); ++i) {
        if (source->layer(i).name() == layer_name) dense = source->layer(i).kind() == "dense";
      }
      if (dense) continue;
      EDGEFL_ASSIGN_OR_RETURN(const Tensor* tensor,
                              FindTensor(tensors, spec.name, TensorDtype::kF32, spec.shape));
      std::memcpy(staged.data() + spec.offset, tensor->bytes.data(), spec.size * sizeof(float));
    }
    std::copy(staged.begin(), staged.end(), source->parameters().begin());
  }
  std::vector<std::unique_ptr<Layer>> layers;
  bool borrows = false;
  for (size_t i = 0; i < source->num_layers(); ++i) {
    const Layer& layer = source->layer(i);
    if (layer.kind() == "dense") {
      EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<FrozenDense> frozen,
                              FrozenDense::FromTensors(layer.name(), tensors));
      layers.push_back(std::move(frozen));
    } else if (layer.kind() == "relu") {
      layers.push_back(MakeRelu(layer.name()));
    } else {
      layers.push_back(internal::BorrowLayer(*source, i));
      borrows = true;
    }
  }
  EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<SequentialModel> sequential,
                          SequentialModel::Create(source->name(), source->input_shape(),
                                                  source->num_classes(), std::move(layers)));
  if (!borrows) architecture.reset();
  return std::unique_ptr<Model>(
      std::make_unique<internal::AdaptedModel>(std::move(architecture), std::move(sequential)));
}

}  // namespace edgefl::models

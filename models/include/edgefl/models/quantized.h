// Frozen and quantized Dense layers, and QuantizeModel: a model whose Dense layers run on the
// int8 or int4 GEMM of kernels.h with their weights held apart from the trainable buffer.
//
// A FrozenDense owns its weights (fp32, int8 per output channel, or int4 in groups of 32) and
// its fp32 bias; none of them is a trainable parameter, so a model made of frozen layers has an
// empty ParameterLayout and ForwardBackward only passes dX through (for LoRA adapters, lora.h).
// Forward of the int8 variant quantizes the batch's activations to u8 on the fly (one scale
// and zero point per batch, ChooseU8QuantParams over the batch's min and max), runs the exact
// u8 x s8 -> s32 GEMM and requantizes to fp32 with the bias; the int4 variant multiplies the
// fp32 activations by the weights dequantized on the fly (kernels::GemmF32Int4Fn). Built
// layers are immutable; their const methods are safe from any number of threads, as layers.h
// requires (the dequantized-weight cache is filled once under std::call_once).
//
//   EDGEFL_ASSIGN_OR_RETURN(auto fp32, CreateModel(ModelSpec{.name = "mlp"}));
//   EDGEFL_RETURN_IF_ERROR(LoadModelParameters("mlp.safetensors", *fp32));
//   EDGEFL_ASSIGN_OR_RETURN(auto q8, QuantizeModel(std::move(fp32), {.format = WeightFormat::kInt8}));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/models/checkpoint.h"
#include "edgefl/models/kernels.h"
#include "edgefl/models/layers.h"
#include "edgefl/models/model.h"
#include "edgefl/models/quantization.h"

namespace edgefl::models {

// How a frozen weight is stored. Values are never renumbered.
enum class WeightFormat : uint8_t {
  kF32 = 0,   // "f32": fp32, as trained
  kInt8 = 1,  // "q8": int8, one fp32 scale per output channel (QuantizeInt8PerChannel)
  kInt4 = 2,  // "q4": int4, one fp32 scale per 32 inputs of a row (QuantizeInt4Groups)
};
// "f32", "q8", "q4".
std::string_view WeightFormatName(WeightFormat format);
// Accepts the names above; kInvalidArgument listing them otherwise.
Result<WeightFormat> ParseWeightFormat(std::string_view name);

// Checkpoint tensors of a frozen dense layer named L (checkpoint.h):
//   f32: "L.weight" F32 [out, in]
//   q8:  "L.weight.q8" I8 [out, in] (q in [-127, 127]) + "L.weight.scale" F32 [out]
//   q4:  "L.weight.q4" U8 [out, 16 * G] + "L.weight.scale" F32 [out, G], G = ceil(in / 32):
//        byte 16 g + j of a row holds, as q + 8, input 32 g + j in its low nibble and input
//        32 g + j + 16 in its high nibble (kernels::Int4Block), zero past `in`
// and always "L.bias" F32 [out]; w = q * scale. The file's metadata "format" is
// "edgefl-q8" / "edgefl-q4" (QuantizedMetadataFormat).
std::string_view QuantizedMetadataFormat(WeightFormat format);

// y = x W^T + b with W [out_features, in_features] and b [out_features] held by the layer,
// frozen. Backward writes no parameter gradient; it writes dX = dY W~ where W~ is the
// dequantized weight, made on the first Backward (or DequantizedWeight()) and kept: that costs
// out * in * 4 bytes per layer (627 KB for the mlp's fc1), paid only by a model that trains
// something behind the layer (LoRA adapters below it, as on every layer but the first).
class FrozenDense final : public Layer {
 public:
  // Quantizes `weight` [out, in] (row-major) to `format`. Preconditions (checked): sizes
  // match, out, in > 0, in <= kernels::kMaxInt8GemmDepth for kInt8, every value finite.
  static std::unique_ptr<FrozenDense> Quantize(std::string name, WeightFormat format,
                                               size_t out_features, size_t in_features,
                                               std::span<const float> weight,
                                               std::span<const float> bias);
  // Rebuilds the layer named `name` from its checkpoint tensors (above), finding its format
  // from which weight tensor is present. kNotFound naming the tensor when one is missing;
  // kInvalidArgument naming it when a dtype or shape is wrong or a scale is not finite.
  static Result<std::unique_ptr<FrozenDense>> FromTensors(std::string name,
                                                          const TensorMap& tensors);

  std::string_view kind() const override { return "frozen_dense"; }
  // kInvalidArgument unless the input has exactly in_features() elements.
  Result<Shape> Build(const Shape& input_shape) override;
  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override;
  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override;

  WeightFormat format() const { return format_; }
  size_t in_features() const { return in_; }
  size_t out_features() const { return out_; }
  std::span<const float> bias() const { return bias_; }
  // The weight as the forward pass uses it, [out, in] fp32: the weight itself for kF32, else
  // dequantized (and cached) on the first call.
  std::span<const float> DequantizedWeight() const;
  // Bytes of the stored weight: values plus scales (the bias not included).
  size_t weight_bytes() const;
  // Adds this layer's checkpoint tensors (above) to `tensors`.
  void AppendTensors(TensorMap& tensors) const;

 private:
  FrozenDense(std::string name, WeightFormat format, size_t out_features, size_t in_features);

  WeightFormat format_;
  size_t out_ = 0;
  size_t in_ = 0;
  std::vector<float> bias_;
  std::vector<float> weight_f32_;             // kF32 only
  Int8Weights weight_q8_;                     // kInt8 only
  std::vector<kernels::Int4Block> weight_q4_;  // kInt4 only
  mutable std::once_flag dequantize_once_;
  mutable std::vector<float> dequantized_;     // kInt8 / kInt4, on first use
};

// How to quantize a model.
struct QuantizeOptions {
  WeightFormat format = WeightFormat::kInt8;
  // Names of the dense layers to freeze in `format`; empty means every dense layer.
  std::vector<std::string> layers;
};

// One row of what QuantizeModel did to a weight tensor, for `edgefl quantize`'s table.
struct QuantizedTensorReport {
  std::string name;            // "fc1.weight"
  size_t fp32_bytes = 0;       // out * in * 4
  size_t quantized_bytes = 0;  // FrozenDense::weight_bytes()
  float max_abs_error = 0.0f;  // max |w - dequantized w|
  float mean_abs_error = 0.0f;
};

// The report of one weight: its fp32 values against `frozen`'s dequantized weight.
QuantizedTensorReport MeasureQuantization(std::string name, std::span<const float> fp32,
                                          const FrozenDense& frozen);

// Replaces the dense layers of `model` (a SequentialModel, e.g. from CreateModel) named by
// `options` with FrozenDense layers quantized from its current parameters; every other layer is
// carried over unchanged and also frozen. The result's layout is EMPTY (nothing trainable:
// parameters() and gradients() are empty spans); its Forward runs the int8 / int4 kernels, its
// ForwardBackward returns the loss. The fp32 weights are dropped unless some layer other than
// dense and relu has to be carried over, whose parameters then stay in the original model,
// kept alive inside the result. When `report` is not null it receives one row per quantized
// weight. Errors: kInvalidArgument when a named layer is missing or is not dense;
// kUnimplemented when `model` is not a SequentialModel (or is already frozen).
Result<std::unique_ptr<Model>> QuantizeModel(std::unique_ptr<Model> model,
                                             const QuantizeOptions& options,
                                             std::vector<QuantizedTensorReport>* report = nullptr);

// The checkpoint of a model made by QuantizeModel or CreateLoraModel's base: each frozen dense
// layer's tensors (above) and every carried-over layer's parameters as F32 under their own
// names. kInvalidArgument when `model` did not come from QuantizeModel.
Result<TensorMap> QuantizedModelTensors(const Model& model);

// Builds a frozen model from such a checkpoint: `architecture` (e.g. CreateModel's mlp, whose
// parameters are ignored) gives the layers; each dense layer L becomes
// FrozenDense::FromTensors(L, tensors) and the other layers' parameters are loaded as
// SetModelParameters does. Errors as those two.
Result<std::unique_ptr<Model>> LoadQuantizedModel(const TensorMap& tensors,
                                                  std::unique_ptr<Model> architecture);

}  // namespace edgefl::models

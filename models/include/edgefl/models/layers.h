// Layers: the building blocks of a SequentialModel (sequential.h), and the softmax
// cross-entropy loss every model trains with.
//
// A Layer holds no activations and no parameters of its own: after Build and
// RegisterParameters it knows only its shapes and where its tensors sit in the model's one
// flat parameter buffer (layout.h). The model owns the parameter and gradient buffers and all
// per-layer activation and scratch memory, and hands them to Forward and Backward, so a built
// layer is immutable and its const methods are safe to call from any number of threads on
// different buffers. Activations are batched and row-major: [batch_size, NumElements(shape)].
//
//   std::vector<std::unique_ptr<Layer>> layers;
//   layers.push_back(MakeDense("fc1", 200, DenseInit::kHeUniform));
//   layers.push_back(MakeRelu("relu1"));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/common/status.h"
#include "edgefl/models/layout.h"

namespace edgefl::models {

// The shape of one example's activation, without the batch dimension, row-major:
// {features} after a dense layer, {channels, rows, cols} for images.
using Shape = std::vector<int64_t>;

// Product of the dimensions; 1 for an empty shape. Precondition: no negative dimension.
size_t NumElements(std::span<const int64_t> shape);
// "[1, 28, 28]", for messages.
std::string ShapeToString(std::span<const int64_t> shape);

// What a layer's Forward and Backward see besides its own activations.
struct PassContext {
  size_t batch_size = 0;
  std::span<const float> parameters;  // the model's whole parameter buffer
  std::span<float> gradients;         // the model's whole gradient buffer (Backward only)
  // When true the layer may split its work over OpenMP threads (up to NumThreads()); the
  // model sets it only outside any active parallel region and for large batches
  // (threading.h), so a pool of per-client threads never oversubscribes the cores.
  bool parallel = false;
};

class Layer {
 public:
  explicit Layer(std::string name) : name_(std::move(name)) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  // Unique within a model; the prefix of its tensors' names ("fc1" -> "fc1.weight").
  const std::string& name() const { return name_; }
  // "dense", "relu", ...: for messages and model summaries.
  virtual std::string_view kind() const = 0;

  // Fixes the per-example input shape and returns the output shape. kInvalidArgument naming
  // the layer and the shape when the input does not fit. Called once, before anything else.
  virtual Result<Shape> Build(const Shape& input_shape) = 0;

  // Appends this layer's trainable tensors ("<name>.weight", ...) to `layout` and remembers
  // their offsets. Called once, after Build. Layers without parameters add nothing.
  virtual void RegisterParameters(ParameterLayout& layout) {}

  // Writes this layer's initial values into its tensors inside the model's whole
  // `parameters` buffer, drawing only from `rng` (the model gives each layer its own stream).
  virtual void InitializeParameters(std::span<float> parameters, Rng& rng) const {}

  // Floats of per-example scratch the layer keeps from Forward to Backward (a max-pool's
  // argmax, a layer norm's statistics). The model allocates batch_size times this.
  virtual size_t scratch_per_example() const { return 0; }

  // out[batch, output] = f(in[batch, input]). `scratch` holds batch_size *
  // scratch_per_example() floats owned by the model. Must not allocate per call (a per-thread
  // buffer made once, like the GEMM workspace, is fine).
  virtual void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
                       std::span<float> scratch) const = 0;

  // Given d_out = dL/d(out), OVERWRITES this layer's slices of pass.gradients with dL/d(its
  // parameters) and, when `d_in` is not empty, writes d_in = dL/d(in). `in`, `out` and
  // `scratch` are as the preceding Forward left them. `d_in` is empty for the first layer,
  // whose input gradient nobody needs. Must not allocate per call.
  virtual void Backward(const PassContext& pass, std::span<const float> in,
                        std::span<const float> out, std::span<const float> d_out,
                        std::span<float> d_in, std::span<float> scratch) const = 0;

 private:
  std::string name_;
};

// How a Dense layer draws its initial weights (biases always start at zero).
enum class DenseInit {
  // U(-b, b) with b = sqrt(6 / fan_in): He et al. 2015 ("Kaiming uniform", gain sqrt(2)),
  // for a dense layer followed by a ReLU.
  kHeUniform,
  // U(-b, b) with b = sqrt(3 / fan_in): unit-gain variance 1 / fan_in (LeCun et al. 1998),
  // for a dense layer followed by no nonlinearity (e.g. the logits).
  kLeCunUniform,
};

// y = x W^T + b with W row-major [out_features, in_features] ("<name>.weight") and b
// [out_features] ("<name>.bias"). Flattens any input shape to in_features = NumElements(shape);
// output shape {out_features}. Precondition: out_features > 0 (checked). Its three products
// (Y = X W^T, dW = dY^T X, dX = dY W) run on the dispatched fp32 GEMM of kernels.h: Eigen at
// the baseline level, hand-written AVX2 / AVX-512 where the CPU has them.
std::unique_ptr<Layer> MakeDense(std::string name, size_t out_features,
                                 DenseInit init = DenseInit::kLeCunUniform);

// y = max(x, 0) elementwise; any shape; no parameters.
std::unique_ptr<Layer> MakeRelu(std::string name);

// Mean softmax cross-entropy of `logits` [batch, num_classes] against `labels` [batch],
// computed stably through log-sum-exp. When `d_logits` is not empty it receives the gradient
// of the mean loss, (softmax(logits) - onehot(label)) / batch. Preconditions (checked):
// batch = labels.size() > 0, logits.size() == batch * num_classes, every label < num_classes,
// d_logits empty or logits.size() floats.
float SoftmaxCrossEntropy(std::span<const float> logits, std::span<const uint8_t> labels,
                          size_t num_classes, std::span<float> d_logits);

}  // namespace edgefl::models

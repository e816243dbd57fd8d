#include "edgefl/models/sequential.h"

#include <algorithm>
#include <set>
#include <utility>

#include "edgefl/common/check.h"
#include "edgefl/common/random.h"
#include "parallel.h"

namespace edgefl::models {
namespace {

// Scratch for this many examples is made at creation: the default training batch sizes (10,
// 32) never grow it; evaluation batches grow it once.
constexpr size_t kInitialBatchCapacity = 32;

}  // namespace

Result<std::unique_ptr<SequentialModel>> SequentialModel::Create(
    std::string name, Shape input_shape, size_t num_classes,
    std::vector<std::unique_ptr<Layer>> layers) {
  if (layers.empty()) return InvalidArgumentError("model '" + name + "' has no layers");
  for (int64_t d : input_shape) {
    if (d <= 0) {
      return InvalidArgumentError("model '" + name + "' has input shape " +
                                  ShapeToString(input_shape));
    }
  }
  std::unique_ptr<SequentialModel> model(new SequentialModel());
  model->name_ = std::move(name);
  model->input_shape_ = std::move(input_shape);
  model->input_size_ = NumElements(model->input_shape_);
  model->num_classes_ = num_classes;
  model->max_width_ = model->input_size_;

  // ReLU then max-pool runs as max-pool then ReLU (see Create in sequential.h): the same
  // bits, with the ReLU's passes on a quarter of the values; about 4% of the cnn's step.
  for (size_t i = 0; i + 1 < layers.size(); ++i) {
    EDGEFL_CHECK(layers[i] != nullptr && layers[i + 1] != nullptr);
    if (layers[i]->kind() == "relu" && layers[i + 1]->kind() == "maxpool2d") {
      std::swap(layers[i], layers[i + 1]);
    }
  }
  std::set<std::string, std::less<>> names;
  Shape shape = model->input_shape_;
  for (std::unique_ptr<Layer>& layer : layers) {
    EDGEFL_CHECK(layer != nullptr);
    if (!names.insert(layer->name()).second) {
      return InvalidArgumentError("model '" + model->name_ + "' has two layers named '" +
                                  layer->name() + "'");
    }
    Result<Shape> out = layer->Build(shape);
    if (!out.ok()) return out.status().WithContext("model '" + model->name_ + "'");
    shape = std::move(out).value();
    layer->RegisterParameters(model->layout_);
    model->output_shapes_.push_back(shape);
    model->output_sizes_.push_back(NumElements(shape));
    model->scratch_sizes_.push_back(layer->scratch_per_example());
    model->max_width_ = std::max(model->max_width_, model->output_sizes_.back());
  }
  if (model->output_sizes_.back() != num_classes) {
    return InvalidArgumentError("model '" + model->name_ + "' ends in shape " +
                                ShapeToString(shape) + ", expected " + std::to_string(num_classes) +
                                " logits");
  }
  model->layers_ = std::move(layers);
  model->parameters_.assign(model->layout_.size(), 0.0f);
  model->gradients_.assign(model->layout_.size(), 0.0f);
  model->Reserve(kInitialBatchCapacity);
  return model;
}

void SequentialModel::InitializeParameters(uint64_t seed) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    Rng rng(DeriveSeed(seed, i));
    layers_[i]->InitializeParameters(parameters_, rng);
  }
}

void SequentialModel::Reserve(size_t max_batch_size) {
  ReserveForward(max_batch_size);
  ReserveBackward(max_batch_size);
}

void SequentialModel::ReserveForward(size_t batch_size) {
  if (batch_size <= forward_capacity_) return;
  activation_offsets_.clear();
  scratch_offsets_.clear();
  size_t total = 0;
  for (size_t size : output_sizes_) {
    activation_offsets_.push_back(total);
    total += size * batch_size;
  }
  for (size_t size : scratch_sizes_) {
    scratch_offsets_.push_back(total);
    total += size * batch_size;
  }
  activations_.assign(total, 0.0f);
  forward_capacity_ = batch_size;
}

void SequentialModel::ReserveBackward(size_t batch_size) {
  if (batch_size <= backward_capacity_) return;
  for (std::vector<float>& buffer : activation_gradients_) {
    buffer.assign(max_width_ * batch_size, 0.0f);
  }
  backward_capacity_ = batch_size;
}

void SequentialModel::RunForward(const float* inputs, size_t batch_size,
                                 std::span<float> logits) {
  std::span<const float> in(inputs, batch_size * input_size_);
  for (size_t i = 0; i < layers_.size(); ++i) {
    const PassContext pass{
        .batch_size = batch_size,
        .parameters = parameters_,
        .gradients = {},
        .parallel = internal::ShouldParallelize(batch_size, layers_[i]->min_parallel_batch())};
    const bool last = i + 1 == layers_.size();
    std::span<float> out =
        last ? logits
             : std::span<float>(activations_)
                   .subspan(activation_offsets_[i], batch_size * output_sizes_[i]);
    std::span<float> scratch =
        std::span<float>(activations_).subspan(scratch_offsets_[i], batch_size * scratch_sizes_[i]);
    layers_[i]->Forward(pass, in, out, scratch);
    in = out;
  }
}

void SequentialModel::Forward(std::span<const float> inputs, size_t batch_size,
                              std::span<float> logits) {
  EDGEFL_CHECK(batch_size > 0);
  EDGEFL_CHECK_EQ(inputs.size(), batch_size * input_size_);
  EDGEFL_CHECK_EQ(logits.size(), batch_size * num_classes_);
  ReserveForward(batch_size);
  RunForward(inputs.data(), batch_size, logits);
}

float SequentialModel::ForwardBackward(const Batch& batch) {
  const size_t batch_size = batch.batch_size;
  EDGEFL_CHECK(batch_size > 0);
  EDGEFL_CHECK_EQ(batch.inputs.size(), batch_size * input_size_);
  EDGEFL_CHECK_EQ(batch.labels.size(), batch_size);
  ReserveForward(batch_size);
  ReserveBackward(batch_size);
  const size_t last = layers_.size() - 1;
  std::span<float> logits =
      std::span<float>(activations_).subspan(activation_offsets_[last], batch_size * num_classes_);
  RunForward(batch.inputs.data(), batch_size, logits);

  std::span<float> d_out(activation_gradients_[0].data(), batch_size * num_classes_);
  const float loss = SoftmaxCrossEntropy(logits, batch.labels, num_classes_, d_out);

  int current = 0;
  for (size_t i = layers_.size(); i-- > 0;) {
    const PassContext pass{
        .batch_size = batch_size,
        .parameters = parameters_,
        .gradients = gradients_,
        .parallel = internal::ShouldParallelize(batch_size, layers_[i]->min_parallel_batch())};
    const size_t in_size = i == 0 ? input_size_ : output_sizes_[i - 1];
    std::span<const float> in =
        i == 0 ? batch.inputs
               : std::span<const float>(activations_)
                     .subspan(activation_offsets_[i - 1], batch_size * in_size);
    std::span<const float> out =
        std::span<const float>(activations_)
            .subspan(activation_offsets_[i], batch_size * output_sizes_[i]);
    std::span<float> d_in =
        i == 0 ? std::span<float>()
               : std::span<float>(activation_gradients_[1 - current].data(), batch_size * in_size);
    std::span<float> scratch =
        std::span<float>(activations_).subspan(scratch_offsets_[i], batch_size * scratch_sizes_[i]);
    layers_[i]->Backward(pass, in, out, d_out, d_in, scratch);
    d_out = d_in;
    current = 1 - current;
  }
  return loss;
}

}  // namespace edgefl::models

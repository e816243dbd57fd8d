// SequentialModel: a Model made of Layers applied one after the other, ending in logits that
// softmax cross-entropy turns into a loss (layers.h).
//
// The model owns the flat parameter and gradient buffers (one ParameterLayout covers every
// layer's tensors, in layer order) and every activation, activation-gradient and scratch
// buffer. Those are sized for a maximum batch size, grown when a larger batch arrives and never
// shrunk, so a training step does not allocate. Not thread-safe: one model per thread.
//
//   std::vector<std::unique_ptr<Layer>> layers;
//   layers.push_back(MakeDense("fc1", 10));
//   EDGEFL_ASSIGN_OR_RETURN(auto model, SequentialModel::Create("logreg", {1, 28, 28}, 10,
//                                                               std::move(layers)));
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/models/layers.h"
#include "edgefl/models/layout.h"
#include "edgefl/models/model.h"

namespace edgefl::models {

class SequentialModel final : public Model {
 public:
  // Builds `layers` in order from the per-example `input_shape`, registers their parameters
  // and zero-fills the parameter buffer (call InitializeParameters next). kInvalidArgument
  // when `layers` is empty, a layer name repeats, a layer rejects its input shape, or the last
  // output does not have exactly `num_classes` elements.
  //
  // A relu directly before a maxpool2d is moved after it (layer(i) shows the order that runs):
  // max-pooling commutes with ReLU, outputs and gradients bit for bit (a window whose maximum
  // is not positive passes no gradient either way; only NaN inputs can differ), and the ReLU
  // then touches a quarter of the values (2x2 windows).
  static Result<std::unique_ptr<SequentialModel>> Create(
      std::string name, Shape input_shape, size_t num_classes,
      std::vector<std::unique_ptr<Layer>> layers);

  const std::string& name() const override { return name_; }
  const ParameterLayout& layout() const override { return layout_; }
  size_t input_size() const override { return input_size_; }
  size_t num_classes() const override { return num_classes_; }
  std::span<float> parameters() override { return parameters_; }
  std::span<const float> parameters() const override { return parameters_; }
  std::span<float> gradients() override { return gradients_; }

  // Layer i draws from its own stream Rng(DeriveSeed(seed, i)), so adding a layer does not
  // change the initial values of the others.
  void InitializeParameters(uint64_t seed) override;
  float ForwardBackward(const Batch& batch) override;
  void Forward(std::span<const float> inputs, size_t batch_size, std::span<float> logits) override;

  const Shape& input_shape() const { return input_shape_; }
  size_t num_layers() const { return layers_.size(); }
  const Layer& layer(size_t i) const { return *layers_.at(i); }
  // Per-example output shape of layer i.
  const Shape& output_shape(size_t i) const { return output_shapes_.at(i); }

  // Sizes the forward and backward buffers for batches of up to `max_batch_size` examples
  // now, so that the first steps do not allocate. Larger batches still work: they grow the
  // buffers once.
  void Reserve(size_t max_batch_size);

 private:
  SequentialModel() = default;
  void ReserveForward(size_t batch_size);
  void ReserveBackward(size_t batch_size);
  // Runs every layer; the last one writes into `logits`.
  void RunForward(const float* inputs, size_t batch_size, std::span<float> logits);

  std::string name_;
  Shape input_shape_;
  size_t input_size_ = 0;
  size_t num_classes_ = 0;
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<Shape> output_shapes_;
  std::vector<size_t> output_sizes_;   // floats per example after layer i
  std::vector<size_t> scratch_sizes_;  // scratch floats per example of layer i
  ParameterLayout layout_;
  std::vector<float> parameters_;
  std::vector<float> gradients_;

  // Activations of every layer, then the layers' scratch, for forward_capacity_ examples.
  std::vector<float> activations_;
  std::vector<size_t> activation_offsets_;  // layer i's output, in floats into activations_
  std::vector<size_t> scratch_offsets_;     // layer i's scratch, in floats into activations_
  size_t forward_capacity_ = 0;
  // Two ping-pong buffers for dL/d(activation), each max width x backward_capacity_ floats.
  std::vector<float> activation_gradients_[2];
  size_t max_width_ = 0;
  size_t backward_capacity_ = 0;
};

}  // namespace edgefl::models

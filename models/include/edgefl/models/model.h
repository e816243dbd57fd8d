// Model: a trainable network whose parameters and gradients are each one contiguous float
// buffer described by a ParameterLayout.
//
// A Model object is scratch space: parameters, gradients and activations for one thread.
// Clients do not own models; a pool of threads each holds one Model and loads a client's
// weights into it (DESIGN.md). Not thread-safe; each thread uses its own instance, and
// internal kernels may use OpenMP up to the threads set by SetNumThreads (models/threading.h).
//
//   EDGEFL_ASSIGN_OR_RETURN(auto model, CreateModel(ModelSpec{.name = "mlp"}));
//   model->InitializeParameters(/*seed=*/1);
//   float loss = model->ForwardBackward(batch);  // gradients() now hold d loss / d params
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/models/layout.h"

namespace edgefl::models {

// A batch of examples laid out contiguously: inputs[batch_size * input_size],
// labels[batch_size * targets_per_example] (one label per example for classifiers; one per
// position for sequence models such as charlm, example-major).
struct Batch {
  std::span<const float> inputs;
  std::span<const uint8_t> labels;
  size_t batch_size = 0;
};

class Model {
 public:
  virtual ~Model() = default;

  // "mlp", "logreg", ...
  virtual const std::string& name() const = 0;
  virtual const ParameterLayout& layout() const = 0;
  size_t num_parameters() const { return layout().size(); }
  // Floats per example, and the number of output classes.
  virtual size_t input_size() const = 0;
  virtual size_t num_classes() const = 0;
  // Labels (and rows of num_classes logits) per example: 1 for classifiers, T for a sequence
  // model that predicts the next token at each of its T positions.
  virtual size_t targets_per_example() const { return 1; }

  // The trainable parameters and their gradients, each layout().size() floats.
  virtual std::span<float> parameters() = 0;
  virtual std::span<const float> parameters() const = 0;
  virtual std::span<float> gradients() = 0;

  // Fills parameters() with the model's standard initialisation, deterministic given `seed`:
  // dense weights He-uniform before a ReLU and LeCun-uniform otherwise, zero biases
  // (layers.h, DenseInit).
  virtual void InitializeParameters(uint64_t seed) = 0;

  // Mean softmax cross-entropy over the batch (over every target of it); overwrites
  // gradients() with its gradient. Preconditions (checked): inputs.size() == batch_size *
  // input_size(), labels.size() == batch_size * targets_per_example(), every label <
  // num_classes().
  virtual float ForwardBackward(const Batch& batch) = 0;

  // Writes logits[batch_size * targets_per_example() * num_classes()]. Same preconditions on
  // inputs.
  virtual void Forward(std::span<const float> inputs, size_t batch_size,
                       std::span<float> logits) = 0;
};

// What to build. Built-in names: "logreg" (784 -> 10 softmax regression, 7,850 parameters),
// "mlp" (the 2NN of McMahan et al. 2017: 784-200-200-10 with ReLU, 199,210 parameters),
// "cnn" (the CNN of McMahan et al. 2017 on 1x28x28 inputs, 1,663,370 parameters),
// "charlm" (the byte-level transformer of charlm.h in its default CharLmConfig, 478,976
// parameters; it ignores input_size and num_classes: its input is 128 byte ids, its output 256
// logits per position).
struct ModelSpec {
  std::string name = "mlp";  // a built-in name, or the path of a model file ending in ".toml"
  size_t input_size = 784;   // floats per example
  size_t num_classes = 10;
  // Per-example shape of the input, e.g. {3, 32, 32}; its product must be input_size. Empty:
  // the model file's input_shape when it has one ("cnn": [1, 28, 28]), else {input_size}.
  std::vector<int64_t> input_shape = {};
  // charlm only: a checkpoint to build on, fp32 (SaveModel) or q8 / q4 (`edgefl quantize`).
  // With lora_rank > 0 the base is frozen and the model's parameters are LoRA adapters over it
  // (charlm.h, CreateCharLmLora); with lora_rank == 0 the model is a trainable charlm holding
  // the checkpoint's values (fp32 only). Empty: no base. Default "".
  std::string base = {};
  size_t lora_rank = 0;                   // adapter rank r; 0 = no adapters. Default 0.
  float lora_alpha = 16.0f;               // adapter scale alpha / r; > 0. Default 16.
  std::vector<std::string> lora_targets = {};  // projections to adapt; empty = all (charlm.h)
};

// kInvalidArgument listing the known names when `spec.name` is unknown; for a model file
// (".toml"), kNotFound when it cannot be read and kInvalidArgument when it is malformed or its
// layers do not fit the input (model_file.h).
Result<std::unique_ptr<Model>> CreateModel(const ModelSpec& spec);

// Names CreateModel accepts, for --help and error messages.
std::vector<std::string> BuiltinModelNames();

}  // namespace edgefl::models

// charlm: a tiny byte-level decoder-only transformer language model (GPT-2 layout, pre-norm).
//
// Input: T byte ids (stored as floats, Dataset convention); output: 256 logits at each of the T
// positions, predicting the next byte; loss: mean softmax cross-entropy over all positions.
//   x = Embedding(bytes) + position
//   per block:  x += Attn(LN1(x));  x += MLP(LN2(x)),  MLP = Dense(d -> 4d), GELU, Dense(4d -> d)
//   logits = Head(LN(x))
// GELU is the tanh approximation. A SequentialModel cannot express the residual adds, so CharLm
// is its own Model subclass that composes the sequence layers of layers.h and owns the residual
// stream. Like every Model it owns one flat parameter buffer, one gradient buffer and all
// activations, sized for the largest batch seen (no allocation per step once warmed up). Not
// thread-safe: one per thread.
//
//   EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<Model> lm, CreateCharLm(CharLmConfig{}));
//   lm->InitializeParameters(/*seed=*/1);
//   float loss = lm->ForwardBackward({.inputs = x, .labels = y, .batch_size = 16});  // y: 16*128
#pragma once

#include <cstddef>
#include <memory>

#include "edgefl/common/status.h"
#include "edgefl/models/model.h"

namespace edgefl::models {

struct CharLmConfig {
  size_t context = 128;     // T, bytes per example; in [1, 4096]
  size_t d_model = 128;     // width of the residual stream; a multiple of num_heads
  size_t num_heads = 4;     // attention heads; >= 1
  size_t num_layers = 2;    // transformer blocks; in [1, 64]
  size_t vocab_size = 256;  // bytes; in [2, 256] (labels are uint8)
  // kInvalidArgument naming the field and value when out of range.
  Status Validate() const;
};

// Parameters of a CharLm built from `config` (478,976 for the default), without
// building it: embeddings (V + T) d; per block 2 layer norms 4d, attention 4d^2
// + 4d, MLP 8d^2 + 5d; final norm 2d; head V d + V.
size_t CharLmParameterCount(const CharLmConfig& config);

// Builds the model with zeroed parameters (call InitializeParameters). Its
// name() is "charlm", input_size() = context, num_classes() = vocab_size,
// targets_per_example() = context. kInvalidArgument when the config does not
// validate.
Result<std::unique_ptr<Model>> CreateCharLm(const CharLmConfig& config);

}  // namespace edgefl::models

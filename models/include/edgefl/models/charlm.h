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
// Each block's attention runs as three layers: the QKV projection, the parameter-free attention
// core and the output projection. So every weight matrix of charlm is a dense projection
// (CharLmDenseLayers), which is what lets a charlm be frozen over quantized weights (int8 / int4,
// quantized.h) and fine-tuned with LoRA adapters on any of them (CreateCharLmLora): the federated
// scenario of a small quantized language model whose devices train and send only the adapters.
//
//   EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<Model> lm, CreateCharLm(CharLmConfig{}));
//   lm->InitializeParameters(/*seed=*/1);
//   float loss = lm->ForwardBackward({.inputs = x, .labels = y, .batch_size = 16});  // y: 16*128
//
//   EDGEFL_ASSIGN_OR_RETURN(Safetensors q4, LoadSafetensors("charlm-q4.safetensors"));
//   EDGEFL_ASSIGN_OR_RETURN(auto lora, CreateCharLmLora({}, q4.tensors, {.rank = 8,
//       .target_layers = {"qkv", "proj", "fc2"}}));  // lora->parameters(): the adapters only
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/models/checkpoint.h"
#include "edgefl/models/lora.h"
#include "edgefl/models/model.h"
#include "edgefl/models/quantized.h"

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

// The dense projections of a charlm, in build order: per block i "block<i>.attn.qkv" [3d, d],
// "block<i>.attn.proj" [d, d], "block<i>.fc1" [4d, d], "block<i>.fc2" [d, 4d]; then "head" [V, d].
// Each has the tensors "<name>.weight" and "<name>.bias" in a CreateCharLm model.
std::vector<std::string> CharLmDenseLayers(const CharLmConfig& config);

// LoRA targets of charlm that edgefl simulate uses by default: every attention projection and the
// MLP's down projection. At rank 8 in the default config the adapters are 22,528 floats, 4.70% of
// the model's 478,976 parameters.
inline constexpr const char* kDefaultCharLmLoraTargets = "qkv,proj,fc2";

// A charlm whose dense projections are frozen FrozenDense layers built from `base` (quantized.h
// names its tensors: an fp32 checkpoint of SaveModel, or a q8 / q4 one of QuantizeCharLm, so the
// forward pass runs on the int8 / int4 kernels), whose embeddings and layer norms are frozen fp32
// from `base` too, and which carries LoRA adapters (lora.h) on the projections that
// lora.target_layers names: a full name ("block1.fc2") or a short one ("qkv", "proj", "fc1",
// "fc2", "head") that adapts that projection in every block; empty adapts all of them. Its
// layout, parameters() and gradients() hold only the adapters ("<layer>.lora_A" [r, in],
// "<layer>.lora_B" [out, r], in build order); InitializeParameters draws A and zeroes B, so it
// starts computing exactly what the frozen base computes. Errors: kInvalidArgument for invalid
// options, an unknown target, or a base tensor of the wrong shape or dtype (named); kNotFound
// naming a missing tensor.
Result<std::unique_ptr<Model>> CreateCharLmLora(const CharLmConfig& config, const TensorMap& base,
                                                const LoraOptions& lora);

// The same frozen charlm without adapters: an empty layout, for evaluating a quantized base.
Result<std::unique_ptr<Model>> CreateFrozenCharLm(const CharLmConfig& config,
                                                  const TensorMap& base);

// CreateModel's charlm (model.h): the default config; with spec.base, the checkpoint at that path
// loaded (LoadSafetensors) and frozen under adapters (spec.lora_rank > 0, CreateCharLmLora) or
// loaded into a trainable charlm (lora_rank == 0; kInvalidArgument for a quantized checkpoint).
// Errors of LoadSafetensors and of the builders above, prefixed with the path.
Result<std::unique_ptr<Model>> CreateCharLmForSpec(const ModelSpec& spec);

// Quantizes every dense projection of `charlm` (a CreateCharLm(config) model holding trained
// weights) to `format` and returns the checkpoint CreateCharLmLora reads: each projection's
// FrozenDense tensors and every other parameter as F32. `report`, when not null, receives one
// row per weight. kInvalidArgument when `charlm` does not have config's layout.
Result<TensorMap> QuantizeCharLm(const Model& charlm, WeightFormat format,
                                 std::vector<QuantizedTensorReport>* report = nullptr,
                                 const CharLmConfig& config = {});

}  // namespace edgefl::models

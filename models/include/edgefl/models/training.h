// Training and evaluation loops over a Model and a Dataset (or a client's indices into one).
//
// Shared by the device runtime (local epochs of a round) and centralized training, so there is
// one loop to optimise and test. Uses the calling thread and the model's own scratch.
//
//   Rng rng(seed);
//   float loss = TrainEpochs(model, sgd, train, my_indices, {.epochs = 1, .batch_size = 10}, rng);
//   Evaluation e = Evaluate(model, test);
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "edgefl/common/random.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "edgefl/models/optimizer.h"

namespace edgefl::models {

struct TrainingOptions {
  size_t epochs = 1;      // full passes over the examples, when max_steps == 0
  size_t batch_size = 10; // > 0; the last batch of an epoch may be smaller
  size_t max_steps = 0;   // when > 0: stop after this many optimizer steps instead
};

struct TrainingResult {
  double mean_loss = 0.0;  // mean of the batch losses
  size_t num_steps = 0;
  size_t num_examples_seen = 0;
};

// Shuffles `indices` (a copy) each epoch with `rng`, gathers each batch into contiguous
// scratch, and takes one optimizer step per batch. Empty `indices` trains nothing.
TrainingResult TrainEpochs(Model& model, Sgd& optimizer, const Dataset& data,
                           std::span<const uint32_t> indices, const TrainingOptions& options,
                           Rng& rng);
// The same loop with AdamW steps.
TrainingResult TrainEpochs(Model& model, AdamW& optimizer, const Dataset& data,
                           std::span<const uint32_t> indices, const TrainingOptions& options,
                           Rng& rng);

// For sequence models (targets_per_example > 1) the loss and accuracy are over every target
// (per-token), each example weighing the same.
struct Evaluation {
  double loss = 0.0;      // mean cross-entropy, in nats
  double accuracy = 0.0;  // fraction of argmax(logits) == label
  size_t num_examples = 0;
};

// exp(mean cross-entropy in nats): a language model's perplexity (e.g. Perplexity(e.loss)).
double Perplexity(double mean_loss);

// Evaluates the model's current parameters on every example of `data` (or on `indices` when
// not empty), in batches of `batch_size`. Both loops check that the dataset's
// targets_per_example equals the model's.
Evaluation Evaluate(Model& model, const Dataset& data, std::span<const uint32_t> indices = {},
                    size_t batch_size = 500);

}  // namespace edgefl::models

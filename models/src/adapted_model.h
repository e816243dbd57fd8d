// AdaptedModel (private to models/): a SequentialModel rebuilt from another model's layers,
// some replaced (FrozenDense by QuantizeModel, LoraDense by CreateLoraModel) and the others
// borrowed: a borrowed layer runs the original layer object with the original model's
// parameter and gradient buffers, so any layer kind (conv, attention, ...) can be carried over
// without a Clone method. The model that owns borrowed layers is kept alive inside.
// Not thread-safe, like every Model.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "edgefl/models/layers.h"
#include "edgefl/models/model.h"
#include "edgefl/models/sequential.h"

namespace edgefl::models::internal {

class AdaptedModel final : public Model {
 public:
  // `keep_alive` owns the layers that `model` borrows (may be null when it borrows none).
  AdaptedModel(std::unique_ptr<Model> keep_alive, std::unique_ptr<SequentialModel> model)
      : keep_alive_(std::move(keep_alive)), model_(std::move(model)) {}

  const std::string& name() const override { return model_->name(); }
  const ParameterLayout& layout() const override { return model_->layout(); }
  size_t input_size() const override { return model_->input_size(); }
  size_t num_classes() const override { return model_->num_classes(); }
  std::span<float> parameters() override { return model_->parameters(); }
  std::span<const float> parameters() const override {
    return std::as_const(*model_).parameters();
  }
  std::span<float> gradients() override { return model_->gradients(); }
  void InitializeParameters(uint64_t seed) override { model_->InitializeParameters(seed); }
  float ForwardBackward(const Batch& batch) override { return model_->ForwardBackward(batch); }
  void Forward(std::span<const float> inputs, size_t batch_size,
               std::span<float> logits) override {
    model_->Forward(inputs, batch_size, logits);
  }

  SequentialModel& sequential() { return *model_; }
  const SequentialModel& sequential() const { return *model_; }

 private:
  std::unique_ptr<Model> keep_alive_;
  std::unique_ptr<SequentialModel> model_;
};

// A LoRA model that is not sequential (charlm) and merges its adapters itself: MergeLora (lora.h)
// calls MergeInto with the same contract.
class MergeableLora {
 public:
  virtual ~MergeableLora() = default;
  [[nodiscard]] virtual Status MergeInto(Model& dense) const = 0;
};

// The SequentialModel a model runs on: itself, or an AdaptedModel's; null for other models.
SequentialModel* AsSequential(Model& model);
const SequentialModel* AsSequential(const Model& model);

// A layer that runs layer `index` of `source` with `source`'s own buffers. `source` must
// outlive it (keep its owner alive in the AdaptedModel).
std::unique_ptr<Layer> BorrowLayer(SequentialModel& source, size_t index);

// The layer that does the work behind `layer` (following borrowed layers) and the model
// whose parameter buffer holds its parameters (`owner` itself when `layer` is not borrowed).
struct ResolvedLayer {
  const Layer* layer = nullptr;
  const SequentialModel* owner = nullptr;
};
ResolvedLayer ResolveLayer(const Layer& layer, const SequentialModel& owner);

}  // namespace edgefl::models::internal

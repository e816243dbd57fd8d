#include "edgefl/models/model.h"

#include <utility>

#include "edgefl/common/strings.h"
#include "edgefl/models/layers.h"
#include "edgefl/models/sequential.h"

namespace edgefl::models {
namespace {

// The layers of a built-in model. Dense layers followed by a ReLU start He-uniform, the
// logits layer LeCun-uniform (layers.h, DenseInit).
std::vector<std::unique_ptr<Layer>> BuiltinLayers(const std::string& name, size_t num_classes) {
  std::vector<std::unique_ptr<Layer>> layers;
  if (name == "logreg") {
    layers.push_back(MakeDense("fc1", num_classes, DenseInit::kLeCunUniform));
  } else if (name == "mlp") {
    // The "2NN" of McMahan et al. 2017, section 3: two hidden layers of 200 units with ReLU.
    layers.push_back(MakeDense("fc1", 200, DenseInit::kHeUniform));
    layers.push_back(MakeRelu("relu1"));
    layers.push_back(MakeDense("fc2", 200, DenseInit::kHeUniform));
    layers.push_back(MakeRelu("relu2"));
    layers.push_back(MakeDense("fc3", num_classes, DenseInit::kLeCunUniform));
  }
  return layers;
}

}  // namespace

std::vector<std::string> BuiltinModelNames() { return {"logreg", "mlp"}; }

Result<std::unique_ptr<Model>> CreateModel(const ModelSpec& spec) {
  if (spec.input_size == 0 || spec.num_classes == 0 || spec.num_classes > 256) {
    return InvalidArgumentError(
        "model '" + spec.name + "' needs input_size > 0 and num_classes in [1, 256], got " +
        std::to_string(spec.input_size) + " and " + std::to_string(spec.num_classes));
  }
  std::vector<std::unique_ptr<Layer>> layers = BuiltinLayers(spec.name, spec.num_classes);
  if (layers.empty()) {
    const std::vector<std::string> names = BuiltinModelNames();
    return InvalidArgumentError("unknown model '" + spec.name + "'" + DidYouMean(spec.name, names) +
                                "; known models: " + JoinNames(names));
  }
  EDGEFL_ASSIGN_OR_RETURN(
      std::unique_ptr<SequentialModel> model,
      SequentialModel::Create(spec.name, Shape{static_cast<int64_t>(spec.input_size)},
                              spec.num_classes, std::move(layers)));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace edgefl::models

#include "edgefl/models/model.h"

#include <utility>

#include "edgefl/common/strings.h"
#include "edgefl/models/charlm.h"
#include "edgefl/models/layers.h"
#include "edgefl/models/model_file.h"
#include "edgefl/models/sequential.h"

namespace edgefl::models {

std::vector<std::string> BuiltinModelNames() { return {"logreg", "mlp", "cnn", "charlm"}; }

Result<std::unique_ptr<Model>> CreateModel(const ModelSpec& spec) {
  // A sequence model with its own shapes (model.h): input_size and num_classes do not apply.
  if (spec.name == "charlm") return CreateCharLmForSpec(spec);
  if (!spec.base.empty() || spec.lora_rank > 0) {
    return InvalidArgumentError("model '" + spec.name + "': a base checkpoint and LoRA adapters "
                                "are supported for charlm only");
  }
  if (spec.input_size == 0 || spec.num_classes == 0 || spec.num_classes > 256) {
    return InvalidArgumentError(
        "model '" + spec.name + "' needs input_size > 0 and num_classes in [1, 256], got " +
        std::to_string(spec.input_size) + " and " + std::to_string(spec.num_classes));
  }
  // logreg, mlp and cnn are model files compiled into the library (models/builtin/).
  const Result<std::string_view> builtin = BuiltinModelFile(spec.name);
  if (!builtin.ok() && !IsModelFilePath(spec.name)) {
    const std::vector<std::string> names = BuiltinModelNames();
    return InvalidArgumentError("unknown model '" + spec.name + "'" + DidYouMean(spec.name, names) +
                                "; known models: " + JoinNames(names) +
                                ", or the path of a model file ending in .toml");
  }
  EDGEFL_ASSIGN_OR_RETURN(
      std::unique_ptr<SequentialModel> model,
      builtin.ok() ? CreateModelFromToml(*builtin, "builtin/" + spec.name + ".toml", spec)
                   : LoadModelFile(spec.name, spec));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace edgefl::models

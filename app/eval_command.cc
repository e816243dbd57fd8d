// `edgefl eval`: flags, checkpoint (fp32 or quantized), held-out data, one evaluation pass.
#include "eval_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "edgefl/models/charlm.h"
#include "edgefl/models/checkpoint.h"
#include "edgefl/models/model.h"
#include "edgefl/models/quantized.h"
#include "edgefl/models/threading.h"
#include "edgefl/models/training.h"
#include "train_command.h"

namespace edgefl::app {
namespace {

struct EvalFlags {
  std::string model;  // empty: the one the checkpoint's metadata names, else charlm
  std::string checkpoint;
  DataSource source;
  int threads = 0;
};

// Data and categories not given on the command line come from the checkpoint's metadata, as
// `edgefl train` wrote them (and `edgefl quantize` kept them): by default a model is scored on
// the held-out part of what it was trained on.
void UseTrainingDataUnlessGiven(const models::Metadata& metadata, DataSource& source) {
  const auto data = metadata.find("data");
  if (!source.data.empty() || data == metadata.end() || data->second.empty()) return;
  source.data = data->second;
  const auto categories = metadata.find("categories");
  if (!source.categories.empty() || categories == metadata.end()) return;
  std::stringstream list(categories->second);
  for (std::string category; std::getline(list, category, ',');) {
    if (!category.empty()) source.categories.push_back(category);
  }
}

// The checkpoint's "format" metadata (quantized.h); without it (a file written by another
// tool), the names of its quantized weights; else f32.
models::WeightFormat CheckpointWeightFormat(const models::Safetensors& checkpoint) {
  const auto format = checkpoint.metadata.find("format");
  for (models::WeightFormat quantized :
       {models::WeightFormat::kInt8, models::WeightFormat::kInt4}) {
    if (format != checkpoint.metadata.end() &&
        format->second == models::QuantizedMetadataFormat(quantized)) {
      return quantized;
    }
  }
  for (const auto& [name, tensor] : checkpoint.tensors) {
    if (name.ends_with(".weight.q8")) return models::WeightFormat::kInt8;
    if (name.ends_with(".weight.q4")) return models::WeightFormat::kInt4;
  }
  return models::WeightFormat::kF32;
}

// The model of `spec` holding `checkpoint`'s weights: trainable for f32 (`edgefl train`), frozen
// over the int8 / int4 weights for q8 / q4 (`edgefl quantize`). kInvalidArgument naming the
// model and the format read when the tensors are not such a checkpoint of that model.
Result<std::unique_ptr<models::Model>> LoadCheckpointModel(const models::ModelSpec& spec,
                                                           const models::Safetensors& checkpoint,
                                                           models::WeightFormat format) {
  Result<std::unique_ptr<models::Model>> model = models::CreateModel(spec);
  if (!model.ok()) return model.status();
  Status loaded;
  if (format == models::WeightFormat::kF32) {
    loaded = models::SetModelParameters(checkpoint.tensors, **model);
  } else if ((*model)->name() == "charlm") {
    // charlm is not a SequentialModel: it builds its own frozen form (charlm.h).
    model = models::CreateFrozenCharLm(models::CharLmConfig{}, checkpoint.tensors);
    loaded = model.status();
  } else {
    model = models::LoadQuantizedModel(checkpoint.tensors, std::move(model).value());
    loaded = model.status();
  }
  if (!loaded.ok()) {
    const std::string read_as(models::WeightFormatName(format));
    return InvalidArgumentError(
        "not an f32 (`edgefl train`) or q8 / q4 (`edgefl quantize`) checkpoint of model '" +
        spec.name + "'; read as " + read_as + ": " + loaded.message());
  }
  return model;
}

int RunEval(const EvalFlags& flags) {
  auto fail = [](const Status& status) {
    std::cerr << "edgefl eval: " << status.ToString() << "\n";
    return 1;
  };
  EvalFlags f = flags;
  if (f.threads > 0) models::SetNumThreads(f.threads);
  Result<models::Safetensors> checkpoint = models::LoadSafetensors(f.checkpoint);
  if (!checkpoint.ok()) return fail(checkpoint.status());
  const auto saved_model = checkpoint->metadata.find("model");
  const bool names_model = saved_model != checkpoint->metadata.end();
  if (f.model.empty()) f.model = names_model ? saved_model->second : "charlm";
  UseTrainingDataUnlessGiven(checkpoint->metadata, f.source);
  if (f.source.data.empty()) f.source.data = DefaultDataFor(f.model);

  const models::WeightFormat format = CheckpointWeightFormat(*checkpoint);
  auto other_model = [&](const std::string& model) {
    return fail(InvalidArgumentError("'" + f.checkpoint + "' holds model '" + saved_model->second +
                                     "' (its metadata), not '" + model + "'; pass --model " +
                                     saved_model->second));
  };
  Result<std::unique_ptr<models::Model>> loaded =
      LoadCheckpointModel(ModelSpecForData(f.model, f.source.data), *checkpoint, format);
  if (!loaded.ok()) {
    if (names_model && saved_model->second != f.model) return other_model(f.model);
    return fail(loaded.status().WithContext("'" + f.checkpoint + "'"));
  }
  models::Model& model = **loaded;
  if (names_model && saved_model->second != model.name()) return other_model(model.name());
  Result<TrainEvalData> data = LoadTrainEvalData(f.source, model.input_size(), Splits::kTestOnly);
  if (!data.ok()) return fail(data.status());
  const models::Dataset& test = data->test;
  if (Status fits = CheckModelFitsData(model, test); !fits.ok()) return fail(fits);
  const models::Evaluation e = models::Evaluate(model, test);
  std::cout << f.checkpoint << " (" << model.name() << ", " << models::WeightFormatName(format)
            << ") on " << test.name << ": " << DescribeEvaluation(e, model.targets_per_example())
            << "\n";
  return 0;
}

}  // namespace

void AddEvalCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<EvalFlags>();
  EvalFlags& f = *flags;
  CLI::App* command = app.add_subcommand(
      "eval",
      "Evaluate a checkpoint of `edgefl train` (f32) or of `edgefl quantize` (q8, q4: the\n"
      "forward pass runs on the int8 / int4 kernels): perplexity on the held-out 10% of each\n"
      "fortunes category (charlm), or accuracy on the Fashion-MNIST test set (logreg, mlp, cnn).");
  command->add_option("--model", f.model,
                      "Model the checkpoint holds (default: the one its metadata names, else "
                      "charlm)");
  command->add_option("--checkpoint", f.checkpoint, "Checkpoint (safetensors)")->required();
  AddDataSourceOptions(*command, f.source,
                       "Fortune files, comma-separated (default: those the checkpoint was "
                       "trained on, from its metadata, else all)");
  command->add_option("--threads", f.threads, "OpenMP threads (0 = all cores)")
      ->capture_default_str();
  command->callback([flags, &exit_code] { exit_code = RunEval(*flags); });
}

}  // namespace edgefl::app

// `edgefl eval`: flags, data, checkpoint, one evaluation pass.
#include "eval_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>

#include "edgefl/models/checkpoint.h"
#include "edgefl/models/model.h"
#include "edgefl/models/threading.h"
#include "edgefl/models/training.h"
#include "train_command.h"

namespace edgefl::app {
namespace {

struct EvalFlags {
  std::string model = "charlm";
  std::string checkpoint;
  DataSource source;
  int threads = 0;
};

int RunEval(const EvalFlags& f) {
  auto fail = [](const Status& status) {
    std::cerr << "edgefl eval: " << status.ToString() << "\n";
    return 1;
  };
  if (f.threads > 0) models::SetNumThreads(f.threads);
  const bool text = f.source.data == "fortunes";
  Result<std::unique_ptr<models::Model>> created =
      models::CreateModel(models::ModelSpec{.name = f.model,
                                            .input_size = text ? size_t{128} : size_t{784},
                                            .num_classes = text ? size_t{256} : size_t{10}});
  if (!created.ok()) return fail(created.status());
  models::Model& model = **created;
  if (Status s = models::LoadModelParameters(f.checkpoint, model); !s.ok()) return fail(s);
  Result<TrainEvalData> loaded = LoadTrainEvalData(f.source, model.input_size());
  if (!loaded.ok()) return fail(loaded.status());
  const models::Dataset& test = loaded->test;
  if (test.example_size != model.input_size() ||
      test.targets_per_example != model.targets_per_example()) {
    return fail(
        InvalidArgumentError("model '" + f.model + "' does not fit data '" + f.source.data + "'"));
  }
  const size_t targets = model.targets_per_example();
  const models::Evaluation e = models::Evaluate(model, test, {}, targets > 1 ? 16 : 500);
  char line[200];
  if (targets > 1) {
    std::snprintf(line, sizeof line,
                  "%s on %s: loss %.4f nats/byte, perplexity %.3f, next-byte "
                  "accuracy %.4f "
                  "(%zu windows)\n",
                  f.checkpoint.c_str(), test.name.c_str(), e.loss, models::Perplexity(e.loss),
                  e.accuracy, e.num_examples);
  } else {
    std::snprintf(line, sizeof line, "%s on %s: loss %.4f, accuracy %.4f (%zu examples)\n",
                  f.checkpoint.c_str(), test.name.c_str(), e.loss, e.accuracy, e.num_examples);
  }
  std::cout << line;
  return 0;
}

}  // namespace

void AddEvalCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<EvalFlags>();
  EvalFlags& f = *flags;
  CLI::App* command =
      app.add_subcommand("eval",
                         "Evaluate a checkpoint of `edgefl train`: perplexity on the "
                         "held-out 10% of each fortunes\n"
                         "category (charlm), or accuracy on the Fashion-MNIST test set.");
  command->add_option("--model", f.model, "Model the checkpoint holds")->capture_default_str();
  command->add_option("--checkpoint", f.checkpoint, "Checkpoint (safetensors)")->required();
  command->add_option("--data", f.source.data, "Data: fortunes or fashion-mnist")
      ->capture_default_str();
  command->add_option("--data-dir", f.source.data_dir,
                      "Data folder (default: the Debian package's folder)");
  command
      ->add_option("--categories", f.source.categories,
                   "Fortune files, comma-separated (default: all); use those "
                   "of training")
      ->delimiter(',');
  command->add_option("--threads", f.threads, "OpenMP threads (0 = all cores)")
      ->capture_default_str();
  command->callback([flags, &exit_code] { exit_code = RunEval(*flags); });
}

}  // namespace edgefl::app

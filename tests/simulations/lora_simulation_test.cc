// The flagship scenario end to end, in miniature: pretrain charlm centrally on one fortunes
// category, quantize it to int4, then fine-tune LoRA adapters federatedly on two held-out
// categories through RunSimulation (the real round engine), and check that held-out perplexity
// falls while each update stays under 5% of the model.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/models/charlm.h"
#include "edgefl/models/checkpoint.h"
#include "edgefl/models/optimizer.h"
#include "edgefl/models/quantized.h"
#include "edgefl/models/text_data.h"
#include "edgefl/models/training.h"
#include "edgefl/simulations/config.h"
#include "edgefl/simulations/partition.h"
#include "edgefl/simulations/simulation.h"

namespace edgefl::simulations {
namespace {

// An int4 charlm checkpoint pretrained for a few AdamW steps on "science": enough to know
// English bytes, not the held-out categories' style.
std::filesystem::path PretrainQ4Base(const std::filesystem::path& dir) {
  auto texts = models::LoadTextCategories(models::kDefaultFortunesDir, std::vector<std::string>{"science"});
  REQUIRE_MESSAGE(texts.ok(), texts.status().ToString());
  const models::Dataset train = models::MakeSequenceDataset((*texts)[0].bytes, 128);
  std::unique_ptr<models::Model> model = models::CreateCharLm({}).value();
  model->InitializeParameters(1);
  models::AdamW adamw(models::AdamWOptions{.learning_rate = 3e-3f}, model->num_parameters());
  std::vector<uint32_t> all(train.num_examples);
  std::iota(all.begin(), all.end(), 0u);
  Rng rng(2);
  const models::TrainingResult trained =
      models::TrainEpochs(*model, adamw, train, all, {.batch_size = 8, .max_steps = 40}, rng);
  MESSAGE("pretraining loss ", trained.mean_loss);
  const models::TensorMap q4 = models::QuantizeCharLm(*model, models::WeightFormat::kInt4).value();
  const std::filesystem::path path = dir / "base-q4.safetensors";
  REQUIRE(models::SaveSafetensors(path, q4, {{"format", "edgefl-q4"}}).ok());
  return path;
}

TEST_CASE("Federated LoRA over an int4 charlm lowers held-out perplexity with updates under 5%" *
          doctest::test_suite("slow")) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("edgefl_lora_sim_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  SimulationConfig config;
  config.model = "charlm";
  config.data = "fortunes";
  config.categories = "startrek,zippy";
  config.base = PretrainQ4Base(dir).string();
  config.lora_rank = 8;
  config.clients = 2;
  config.clients_per_round = 2;
  config.rounds = 3;
  config.local_steps = 8;
  config.batch_size = 8;
  config.lr = 0.5;
  config.momentum = 0.9;
  config.threads = 2;
  config.out = (dir / "run").string();
  Result<SimulationResult> result = RunSimulation(config);
  REQUIRE_MESSAGE(result.ok(), result.status().ToString());
  REQUIRE(result->initial.has_value());
  REQUIRE(result->rounds.size() == 3);
  const double before = result->initial->test_perplexity;
  const double after = result->rounds.back().test_perplexity;
  MESSAGE("held-out perplexity ", before, " -> ", after, "; update ", result->num_parameters,
          " of ", result->model_parameters);
  CHECK(std::isfinite(before));
  CHECK(after < 0.97 * before);
  CHECK(result->rounds.back().num_clients_reported == 2);
  // qkv, proj, fc2 at rank 8: 22,528 adapter floats of charlm's 478,976 parameters.
  CHECK(result->num_parameters == 22528);
  CHECK(result->model_parameters == 478976);
  CHECK(static_cast<double>(result->num_parameters) / result->model_parameters < 0.05);
  std::filesystem::remove_all(dir);
}

TEST_CASE("PartitionGroups gives each client one group and deals a group over its clients") {
  const std::vector<std::vector<uint32_t>> groups = {{0, 1, 2, 3, 4}, {5, 6, 7}};
  const ClientPartition one = PartitionGroups(groups, 2).value();
  CHECK(one == ClientPartition{{0, 1, 2, 3, 4}, {5, 6, 7}});
  // Five clients over two groups: clients 0, 2, 4 share group 0, clients 1, 3 group 1.
  const ClientPartition five = PartitionGroups(groups, 5).value();
  CHECK(five == ClientPartition{{0, 3}, {5, 7}, {1, 4}, {6}, {2}});
  CHECK(PartitionGroups(groups, 1).status().code() == StatusCode::kInvalidArgument);
  // Nine clients: group 1 would need 4 clients from its 3 examples.
  CHECK(PartitionGroups(groups, 9).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("charlm simulations validate data, base and LoRA settings") {
  SimulationConfig config;
  config.model = "charlm";
  CHECK(config.Validate().code() == StatusCode::kInvalidArgument);  // needs data = fortunes
  config.data = "fortunes";
  CHECK(config.Validate().ok());
  config.lora_rank = 8;
  const Status no_base = config.Validate();
  CHECK(no_base.code() == StatusCode::kInvalidArgument);
  CHECK(no_base.message().find("base") != std::string::npos);
  config.base = "/nonexistent/base.safetensors";
  config.lora_alpha = 0;
  CHECK(config.Validate().code() == StatusCode::kInvalidArgument);
  config.lora_alpha = 16;
  config.clients = 2;
  config.clients_per_round = 1;
  config.rounds = 1;
  config.categories = "startrek";
  CHECK(RunSimulation(config).status().code() == StatusCode::kNotFound);
  SimulationConfig mlp;
  mlp.data = "fortunes";
  CHECK(mlp.Validate().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edgefl::simulations

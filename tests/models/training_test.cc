#include "edgefl/models/training.h"

#include <doctest/doctest.h>

#include <memory>
#include <numeric>
#include <vector>

#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"

namespace edgefl::models {
namespace {

// A tiny separable problem: 2 features, class = which feature is larger.
Dataset TinyDataset(size_t n) {
  Dataset data;
  data.name = "tiny";
  data.num_examples = n;
  data.example_shape = {2};
  data.example_size = 2;
  data.num_classes = 2;
  Rng rng(1);
  for (size_t i = 0; i < n; ++i) {
    const float a = static_cast<float>(rng.Uniform01());
    const float b = static_cast<float>(rng.Uniform01());
    data.features.push_back(a);
    data.features.push_back(b);
    data.labels.push_back(a > b ? 1 : 0);
  }
  return data;
}

std::unique_ptr<Model> TinyModel() {
  Result<std::unique_ptr<Model>> model =
      CreateModel(ModelSpec{.name = "logreg", .input_size = 2, .num_classes = 2});
  REQUIRE(model.ok());
  (*model)->InitializeParameters(1);
  return std::move(model).value();
}

TEST_CASE("TrainEpochs counts steps and examples, with a smaller last batch") {
  const Dataset data = TinyDataset(25);
  std::unique_ptr<Model> model = TinyModel();
  Sgd sgd(SgdOptions{.learning_rate = 0.1f}, model->num_parameters());
  std::vector<uint32_t> indices(23);
  std::iota(indices.begin(), indices.end(), 2);
  Rng rng(3);
  const TrainingResult result =
      TrainEpochs(*model, sgd, data, indices, TrainingOptions{.epochs = 2, .batch_size = 10}, rng);
  CHECK(result.num_steps == 6);  // 10 + 10 + 3 per epoch
  CHECK(result.num_examples_seen == 46);
  CHECK(result.mean_loss > 0.0);

  const TrainingResult capped =
      TrainEpochs(*model, sgd, data, indices,
                  TrainingOptions{.epochs = 1, .batch_size = 10, .max_steps = 7}, rng);
  CHECK(capped.num_steps == 7);  // max_steps overrides epochs and crosses epoch boundaries
  CHECK(capped.num_examples_seen == 10 + 10 + 3 + 10 + 10 + 3 + 10);

  const TrainingResult none = TrainEpochs(*model, sgd, data, {}, TrainingOptions{}, rng);
  CHECK(none.num_steps == 0);
  CHECK(none.mean_loss == 0.0);
}

TEST_CASE("TrainEpochs is deterministic given the seed") {
  const Dataset data = TinyDataset(40);
  std::vector<uint32_t> indices(40);
  std::iota(indices.begin(), indices.end(), 0);
  std::vector<std::vector<float>> finals;
  for (int run = 0; run < 2; ++run) {
    std::unique_ptr<Model> model = TinyModel();
    Sgd sgd(SgdOptions{.learning_rate = 0.5f, .momentum = 0.9f}, model->num_parameters());
    Rng rng(7);
    TrainEpochs(*model, sgd, data, indices, TrainingOptions{.epochs = 3, .batch_size = 4}, rng);
    finals.emplace_back(model->parameters().begin(), model->parameters().end());
  }
  CHECK(finals[0] == finals[1]);
}

TEST_CASE("Evaluate reports loss and accuracy over all examples or the given indices") {
  const Dataset data = TinyDataset(100);
  std::unique_ptr<Model> model = TinyModel();
  // Logits (x1 - x0) * 10 for class 1 and 0 for class 0: always right.
  std::span<float> w = model->parameters();
  std::fill(w.begin(), w.end(), 0.0f);
  w[2] = -10.0f;  // fc1.weight [2, 2]: row 1 = class 1
  w[3] = 10.0f;
  // The labels say class 1 when a > b, i.e. x0 > x1: flip the sign for a perfect model.
  w[2] = 10.0f;
  w[3] = -10.0f;
  const Evaluation all = Evaluate(*model, data, {}, /*batch_size=*/32);
  CHECK(all.num_examples == 100);
  CHECK(all.accuracy == 1.0);
  CHECK(all.loss > 0.0);
  CHECK(all.loss < 0.7);

  const std::vector<uint32_t> some = {5, 9, 3};
  const Evaluation subset = Evaluate(*model, data, some);
  CHECK(subset.num_examples == 3);
  CHECK(subset.accuracy == 1.0);
}

TEST_CASE("logreg trained on 2,000 Fashion-MNIST images beats chance clearly") {
  Result<Dataset> train = LoadFashionMnist(kDefaultFashionMnistDir, Split::kTrain);
  Result<Dataset> test = LoadFashionMnist(kDefaultFashionMnistDir, Split::kTest);
  REQUIRE_MESSAGE(train.ok(), train.status().ToString());
  REQUIRE_MESSAGE(test.ok(), test.status().ToString());
  Result<std::unique_ptr<Model>> created = CreateModel(ModelSpec{.name = "logreg"});
  REQUIRE(created.ok());
  Model& model = **created;
  model.InitializeParameters(1);

  std::vector<uint32_t> train_indices(2000);
  std::iota(train_indices.begin(), train_indices.end(), 0);
  std::vector<uint32_t> test_indices(1000);
  std::iota(test_indices.begin(), test_indices.end(), 0);

  const Evaluation before = Evaluate(model, *test, test_indices);
  Sgd sgd(SgdOptions{.learning_rate = 0.05f}, model.num_parameters());
  Rng rng(2);
  const TrainingResult result = TrainEpochs(model, sgd, *train, train_indices,
                                            TrainingOptions{.epochs = 3, .batch_size = 10}, rng);
  const Evaluation after = Evaluate(model, *test, test_indices);
  MESSAGE("logreg: test accuracy " << before.accuracy << " -> " << after.accuracy << ", loss "
                                   << before.loss << " -> " << after.loss << ", train loss "
                                   << result.mean_loss);
  CHECK(result.num_steps == 600);
  CHECK(after.accuracy >= 0.6);
  CHECK(after.loss < before.loss);
}

}  // namespace
}  // namespace edgefl::models

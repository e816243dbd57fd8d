#include "edgefl/client/device.h"

#include <doctest/doctest.h>

#include <cmath>
#include <numeric>

#include "edgefl/common/random.h"
#include "edgefl/models/dataset.h"

namespace edgefl::client {
namespace {

using transport::Message;

// A small synthetic, linearly separable dataset: the label is the index of the largest input.
models::Dataset MakeDataset(size_t n, size_t dim, size_t classes) {
  models::Dataset data;
  data.name = "synthetic";
  data.num_examples = n;
  data.example_shape = {static_cast<int64_t>(dim)};
  data.example_size = dim;
  data.num_classes = classes;
  Rng rng(11);
  for (size_t i = 0; i < n; ++i) {
    const size_t label = i % classes;
    for (size_t j = 0; j < dim; ++j) {
      data.features.push_back(static_cast<float>(rng.Uniform01() + (j == label ? 1.0 : 0.0)));
    }
    data.labels.push_back(static_cast<uint8_t>(label));
  }
  return data;
}

Workspace MakeWorkspace(size_t dim, size_t classes) {
  return Workspace(
      models::CreateModel({.name = "logreg", .input_size = dim, .num_classes = classes}).value());
}

Message RoundStartWith(std::vector<float> weights, uint32_t epochs = 1) {
  return Message{.sender = ClientId{0},
                 .round = RoundId{1},
                 .body = transport::RoundStart{
                     .training = {.local_epochs = epochs, .batch_size = 8, .learning_rate = 0.5f,
                                  .seed = 3},
                     .global_weights =
                         std::make_shared<const std::vector<float>>(std::move(weights))}};
}

TEST_CASE("A device answers RoundStart with an update that lowers its loss") {
  const models::Dataset data = MakeDataset(64, 6, 3);
  std::vector<uint32_t> indices(64);
  std::iota(indices.begin(), indices.end(), 0u);
  Workspace workspace = MakeWorkspace(6, 3);
  const size_t n = workspace.model().num_parameters();
  Device device(ClientId{5}, LocalData{&data, indices});

  const Message hello = device.MakeHello("unit");
  CHECK(std::get<transport::Hello>(hello.body).num_examples == 64);

  std::vector<Message> first = device.Handle(RoundStartWith(std::vector<float>(n, 0.0f), 3), workspace);
  REQUIRE(first.size() == 1);
  CHECK(first[0].sender == ClientId{5});
  CHECK(first[0].round == RoundId{1});
  const auto& update = std::get<transport::Update>(first[0].body);
  CHECK(update.num_examples == 64);
  CHECK(update.delta.size() == n);
  CHECK(std::any_of(update.delta.begin(), update.delta.end(), [](float x) { return x != 0.0f; }));

  // Training again from the trained weights starts from a lower loss than from zero.
  std::vector<float> trained(update.delta.begin(), update.delta.end());
  std::vector<Message> second = device.Handle(RoundStartWith(trained), workspace);
  CHECK(std::get<transport::Update>(second[0].body).train_loss < update.train_loss);

  // Same round, same seed: the same update, whoever's thread runs it.
  Workspace other = MakeWorkspace(6, 3);
  std::vector<Message> again = device.Handle(RoundStartWith(std::vector<float>(n, 0.0f), 3), other);
  CHECK(std::get<transport::Update>(again[0].body).delta == update.delta);
}

TEST_CASE("A device refuses weights of the wrong size and says why") {
  const models::Dataset data = MakeDataset(8, 6, 3);
  std::vector<uint32_t> indices = {0, 1, 2};
  Workspace workspace = MakeWorkspace(6, 3);
  Device device(ClientId{2}, LocalData{&data, indices});
  std::vector<Message> replies = device.Handle(RoundStartWith(std::vector<float>(5, 0.0f)), workspace);
  REQUIRE(replies.size() == 1);
  const auto& error = std::get<transport::ErrorReply>(replies[0].body);
  CHECK(error.code == StatusCode::kInvalidArgument);
  CHECK(error.message.find("5 values") != std::string::npos);
}

TEST_CASE("A device with no examples fails the round instead of sending an empty update") {
  const models::Dataset data = MakeDataset(8, 6, 3);
  Workspace workspace = MakeWorkspace(6, 3);
  Device device(ClientId{2}, LocalData{&data, {}});
  const size_t n = workspace.model().num_parameters();
  std::vector<Message> replies = device.Handle(RoundStartWith(std::vector<float>(n, 0.0f)), workspace);
  CHECK(std::get<transport::ErrorReply>(replies[0].body).code == StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace edgefl::client

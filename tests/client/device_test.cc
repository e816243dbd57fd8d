#include "edgefl/client/device.h"

#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <stdexcept>

#include "edgefl/common/random.h"
#include "edgefl/models/dataset.h"
#include "edgefl/transport/codec.h"
#include "edgefl/transport/limits.h"

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

// A host trainer that returns a fixed update and counts its calls.
HostTrainer FixedTrainer(std::vector<float> delta, int& calls, uint64_t num_parameters = 0) {
  return HostTrainer{.train = [delta = std::move(delta), &calls](const TrainingRound& round)
                         -> Result<LocalUpdate> {
                       ++calls;
                       CHECK(round.round == RoundId{1});
                       CHECK(round.client == ClientId{4});
                       CHECK(round.config.learning_rate == 0.5f);
                       return LocalUpdate{.delta = delta, .num_examples = 3, .train_loss = 0.5f};
                     },
                     .num_parameters = num_parameters,
                     .num_examples = 3};
}

TEST_CASE("A host trainer's update goes through the same clipping as the built-in trainer's") {
  int calls = 0;
  Device device(ClientId{4}, FixedTrainer({3.0f, 4.0f}, calls, 2));
  CHECK(std::get<transport::Hello>(device.MakeHello("host").body).num_examples == 3);
  Message start = RoundStartWith({1.0f, 1.0f});
  std::get<transport::RoundStart>(start.body).privacy.clip_norm = 1.0f;
  std::vector<Message> replies = device.Handle(start);
  REQUIRE(replies.size() == 1);
  CHECK(calls == 1);
  const auto& update = std::get<transport::Update>(replies[0].body);
  CHECK(update.num_examples == 3);
  CHECK(update.train_loss == 0.5f);
  REQUIRE(update.delta.size() == 2);
  CHECK(update.delta[0] == doctest::Approx(0.6f));
  CHECK(update.delta[1] == doctest::Approx(0.8f));
  // A lent Workspace is not needed and not used.
  Workspace unused = MakeWorkspace(6, 3);
  CHECK(std::holds_alternative<transport::Update>(device.Handle(start, unused)[0].body));
}

TEST_CASE("A host trainer's errors, exceptions and invalid updates become ErrorReplies") {
  auto error_of = [](Device& device, std::vector<float> weights) {
    std::vector<Message> replies = device.Handle(RoundStartWith(std::move(weights)));
    REQUIRE(replies.size() == 1);
    REQUIRE(std::holds_alternative<transport::ErrorReply>(replies[0].body));
    return std::get<transport::ErrorReply>(replies[0].body);
  };
  int calls = 0;
  Device wrong_size(ClientId{4}, FixedTrainer({1.0f}, calls));
  CHECK(error_of(wrong_size, {0.0f, 0.0f}).message.find("1 values for 2") != std::string::npos);
  Device not_finite(ClientId{4}, FixedTrainer({1.0f, std::nanf("")}, calls));
  const transport::ErrorReply nan_error = error_of(not_finite, {0.0f, 0.0f});
  CHECK(nan_error.code == StatusCode::kInvalidArgument);
  CHECK(nan_error.message.find("value 1") != std::string::npos);
  CHECK(calls == 2);
  // The declared parameter count is checked before the trainer is called.
  Device declared(ClientId{4}, FixedTrainer({1.0f, 2.0f}, calls, 2));
  CHECK(error_of(declared, {0.0f, 0.0f, 0.0f}).message.find("3 values") != std::string::npos);
  CHECK(calls == 2);

  Device declines(ClientId{4}, HostTrainer{.train = [](const TrainingRound&) -> Result<LocalUpdate> {
                    return UnavailableError("battery low");
                  }});
  const transport::ErrorReply declined = error_of(declines, {0.0f});
  CHECK(declined.code == StatusCode::kUnavailable);
  CHECK(declined.message.find("battery low") != std::string::npos);

  Device throws(ClientId{4}, HostTrainer{.train = [](const TrainingRound&) -> Result<LocalUpdate> {
                  throw std::runtime_error("out of memory in host model");
                }});
  const transport::ErrorReply thrown = error_of(throws, {0.0f});
  CHECK(thrown.code == StatusCode::kInternal);
  CHECK(thrown.message.find("out of memory in host model") != std::string::npos);
}

TEST_CASE("A host trainer's over-long error is cut to the wire limit so the reply still goes") {
  // 3000 two-byte characters after one one-byte character, so that the byte limit falls
  // inside a character: the cut must not split it.
  std::string long_reason = "x";
  for (int i = 0; i < 3000; ++i) long_reason += "\xc3\xa9";  // U+00E9
  Device device(ClientId{4},
                HostTrainer{.train = [&long_reason](const TrainingRound&) -> Result<LocalUpdate> {
                  return UnavailableError(long_reason);
                }});
  std::vector<Message> replies = device.Handle(RoundStartWith({0.0f}));
  REQUIRE(replies.size() == 1);
  const auto& error = std::get<transport::ErrorReply>(replies[0].body);
  CHECK(error.code == StatusCode::kUnavailable);
  CHECK(error.message.size() <= transport::kMaxErrorTextBytes);
  CHECK(error.message.size() > transport::kMaxErrorTextBytes - 8);
  const std::string_view kCut = " [...]";
  REQUIRE(error.message.size() > kCut.size());
  CHECK(std::string_view(error.message).substr(error.message.size() - kCut.size()) == kCut);
  // The text before the marker ends on a whole character.
  const std::string_view kept =
      std::string_view(error.message).substr(0, error.message.size() - kCut.size());
  CHECK(kept.ends_with("\xc3\xa9"));
  CHECK(kept.find("host trainer: x") == 0);
  CHECK(transport::Encode(replies[0]).ok());
}

TEST_CASE("A built-in-trainer device without a Workspace declines the round") {
  const models::Dataset data = MakeDataset(8, 6, 3);
  std::vector<uint32_t> indices = {0, 1, 2};
  Device device(ClientId{2}, LocalData{&data, indices});
  std::vector<Message> replies = device.Handle(RoundStartWith(std::vector<float>(21, 0.0f)));
  REQUIRE(replies.size() == 1);
  CHECK(std::get<transport::ErrorReply>(replies[0].body).code == StatusCode::kFailedPrecondition);
}

TEST_CASE("TrainOnLocalData is the built-in trainer a Device runs") {
  const models::Dataset data = MakeDataset(32, 6, 3);
  std::vector<uint32_t> indices(32);
  std::iota(indices.begin(), indices.end(), 0u);
  Workspace workspace = MakeWorkspace(6, 3);
  const std::vector<float> global(workspace.model().num_parameters(), 0.0f);
  const Message start = RoundStartWith(global);
  Result<LocalUpdate> direct = TrainOnLocalData(
      TrainingRound{.round = RoundId{1},
                    .client = ClientId{9},
                    .config = std::get<transport::RoundStart>(start.body).training,
                    .global_weights = global},
      LocalData{&data, indices}, workspace.model());
  REQUIRE(direct.ok());
  Device device(ClientId{9}, LocalData{&data, indices});
  const std::vector<Message> replies = device.Handle(start, workspace);
  REQUIRE(replies.size() == 1);
  const auto& update = std::get<transport::Update>(replies[0].body);
  CHECK(update.delta == direct->delta);
  CHECK(update.num_examples == direct->num_examples);
  CHECK(update.train_loss == direct->train_loss);
}

}  // namespace
}  // namespace edgefl::client

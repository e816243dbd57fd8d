#include "edgefl/client.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "edgefl/aggregation/strategy.h"
#include "edgefl/common/clock.h"
#include "edgefl/coordinator/registry.h"
#include "edgefl/coordinator/round_engine.h"
#include "edgefl/transport/zmq_channel.h"

namespace {

using edgefl::ClientId;
using edgefl::coordinator::ClientOutcome;
using edgefl::coordinator::ClientOutcomeKind;
using edgefl::coordinator::RoundReport;

TEST_CASE("the C API status values are stable") {
  CHECK(EDGEFL_OK == 0);
  CHECK(EDGEFL_INVALID_ARGUMENT == 1);
  CHECK(EDGEFL_NOT_FOUND == 2);
  CHECK(EDGEFL_FAILED_PRECONDITION == 3);
  CHECK(EDGEFL_UNAVAILABLE == 4);
  CHECK(EDGEFL_DEADLINE_EXCEEDED == 5);
  CHECK(EDGEFL_INTERNAL == 6);
  CHECK(EDGEFL_UNKNOWN == 7);
}

TEST_CASE("creating a client with bad arguments fails with a reason and no client") {
  edgefl_client_t* client = reinterpret_cast<edgefl_client_t*>(0x1);
  CHECK(edgefl_client_create(nullptr, &client) == EDGEFL_INVALID_ARGUMENT);
  edgefl_client_config config = edgefl_client_default_config();
  CHECK(edgefl_client_create(&config, &client) == EDGEFL_INVALID_ARGUMENT);
  CHECK(client == nullptr);
  CHECK(std::string(edgefl_client_last_error(nullptr)).find("endpoint") != std::string::npos);
  config.endpoint = "tcp://127.0.0.1:1";
  config.insecure_plaintext = 1;
  config.model = "no-such-model";
  CHECK(edgefl_client_create(&config, &client) == EDGEFL_INVALID_ARGUMENT);
  CHECK(client == nullptr);
  config.model = "logreg";
  config.insecure_plaintext = 0;  // CURVE without key files
  CHECK(edgefl_client_create(&config, &client) == EDGEFL_INVALID_ARGUMENT);
  CHECK(client == nullptr);
}

TEST_CASE("a client validates its data and refuses to run without it") {
  edgefl_client_config config = edgefl_client_default_config();
  config.endpoint = "tcp://127.0.0.1:1";
  config.insecure_plaintext = 1;
  config.model = "logreg";
  config.input_size = 2;
  config.num_classes = 2;
  edgefl_client_t* client = nullptr;
  REQUIRE(edgefl_client_create(&config, &client) == EDGEFL_OK);
  REQUIRE(client != nullptr);
  CHECK(std::strlen(edgefl_client_last_error(client)) == 0);
  uint64_t rounds = 99;
  CHECK(edgefl_client_run(client, 1, &rounds) == EDGEFL_FAILED_PRECONDITION);
  CHECK(rounds == 0);
  CHECK(std::string(edgefl_client_last_error(client)).find("set_data") != std::string::npos);
  const std::vector<float> features = {1, 0, 0, 1};
  const std::vector<uint8_t> bad_labels = {0, 2};
  CHECK(edgefl_client_set_data(client, features.data(), bad_labels.data(), 2) ==
        EDGEFL_INVALID_ARGUMENT);
  CHECK(edgefl_client_set_data(client, nullptr, bad_labels.data(), 2) == EDGEFL_INVALID_ARGUMENT);
  const std::vector<uint8_t> labels = {0, 1};
  CHECK(edgefl_client_set_data(client, features.data(), labels.data(), 2) == EDGEFL_OK);
  edgefl_client_stop(client);
  edgefl_client_free(client);
  edgefl_client_free(nullptr);
  CHECK(edgefl_client_run(nullptr, 1, nullptr) == EDGEFL_INVALID_ARGUMENT);
}

TEST_CASE("a training callback is validated when set and lets a client run without data") {
  edgefl_client_config config = edgefl_client_default_config();
  config.endpoint = "tcp://127.0.0.1:1";
  config.insecure_plaintext = 1;
  edgefl_client_t* client = nullptr;
  REQUIRE(edgefl_client_create(&config, &client) == EDGEFL_OK);
  const edgefl_train_fn train = [](void*, const edgefl_round_info*, const float*, size_t, float*,
                                   uint64_t*, float*) { return 0; };
  CHECK(edgefl_client_set_train_callback(nullptr, train, nullptr, 4, 1) == EDGEFL_INVALID_ARGUMENT);
  CHECK(edgefl_client_set_train_callback(client, nullptr, nullptr, 4, 1) ==
        EDGEFL_INVALID_ARGUMENT);
  CHECK(std::string(edgefl_client_last_error(client)).find("train") != std::string::npos);
  CHECK(edgefl_client_set_train_callback(client, train, nullptr, 0, 1) == EDGEFL_INVALID_ARGUMENT);
  CHECK(edgefl_client_set_train_callback(client, train, nullptr, 4, 1) == EDGEFL_OK);
  // With a callback, run no longer asks for data: it gets as far as running (and returns at
  // once because the client was asked to stop).
  edgefl_client_stop(client);
  uint64_t rounds = 99;
  CHECK(edgefl_client_run(client, 1, &rounds) == EDGEFL_OK);
  CHECK(rounds == 0);
  edgefl_client_free(client);
}

TEST_CASE("edgefl_train_set_error outside a training callback fails and says why") {
  const edgefl_round_info round{};
  CHECK(edgefl_train_set_error(&round, "too late") == EDGEFL_FAILED_PRECONDITION);
  CHECK(std::string(edgefl_client_last_error(nullptr)).find("inside the training callback") !=
        std::string::npos);
  CHECK(edgefl_train_set_error(nullptr, "no round") == EDGEFL_FAILED_PRECONDITION);
  CHECK(edgefl_train_set_error(&round, nullptr) == EDGEFL_INVALID_ARGUMENT);
  CHECK(std::string(edgefl_client_last_error(nullptr)).find("NULL") != std::string::npos);
}

// The integration tests below run a real round engine on a ZeroMQ coordinator channel on
// loopback and devices driven only through the C API, each with a training callback.

// One host device's "model": a fixed delta per call, optionally failing on some calls. What the
// callback saw is recorded for the test to check.
struct HostModel {
  std::vector<float> delta;
  uint64_t num_examples = 1;
  float train_loss = 0.5f;
  int fail_first_calls = 0;  // return 7 on the first this-many calls
  bool write_nan = false;    // write a NaN into the delta (a diverged host model)
  // Non-empty: report it with edgefl_train_set_error and return `error_return`.
  std::string error_message;
  int error_return = 1;
  edgefl_status set_error_status = EDGEFL_UNKNOWN;
  // edgefl_train_set_error given a copy of the round, not the callback's own pointer.
  edgefl_status copy_set_error_status = EDGEFL_UNKNOWN;
  int calls = 0;
  std::vector<float> global_seen;
  edgefl_round_info round_seen{};
};

int TrainHostModel(void* user, const edgefl_round_info* round, const float* global_weights,
                   size_t num_weights, float* delta_out, uint64_t* num_examples_out,
                   float* train_loss_out) {
  HostModel& model = *static_cast<HostModel*>(user);
  ++model.calls;
  model.global_seen.assign(global_weights, global_weights + num_weights);
  model.round_seen = *round;
  if (model.calls <= model.fail_first_calls) return 7;
  if (!model.error_message.empty()) {
    const edgefl_round_info copy = *round;
    model.copy_set_error_status = edgefl_train_set_error(&copy, "not this round");
    // The library must copy the message: this buffer is gone once the callback returns.
    std::string message = model.error_message;
    model.set_error_status = edgefl_train_set_error(round, message.c_str());
    return model.error_return;
  }
  for (size_t i = 0; i < num_weights; ++i) delta_out[i] = model.delta[i];
  if (model.write_nan) delta_out[num_weights / 2] = std::numeric_limits<float>::quiet_NaN();
  *num_examples_out = model.num_examples;
  *train_loss_out = model.train_loss;
  return 0;
}

// A coordinator: the one RoundEngine on a real ZeroMQ channel, bound to a free loopback port.
struct Coordinator {
  edgefl::WallClock clock;
  std::unique_ptr<edgefl::transport::ZmqCoordinatorChannel> channel;
  edgefl::coordinator::ClientRegistry registry;
  std::unique_ptr<edgefl::coordinator::RoundEngine> engine;

  Coordinator(edgefl::coordinator::EngineOptions options, std::vector<float> initial) {
    auto created = edgefl::transport::ZmqCoordinatorChannel::Create(
        {.endpoint = "tcp://127.0.0.1:*", .insecure_plaintext = true}, clock);
    REQUIRE(created.ok());
    channel = std::move(created).value();
    auto strategy = edgefl::aggregation::CreateStrategy({.name = "fedavg"}, initial.size());
    REQUIRE(strategy.ok());
    engine = std::make_unique<edgefl::coordinator::RoundEngine>(
        std::move(options), std::move(initial), std::move(strategy).value(), *channel, registry);
  }

  // Registers devices until `n` are known; gives up after 10 s (the devices connect within
  // milliseconds on loopback).
  void WaitForClients(size_t n) {
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (registry.Available().size() < n && std::chrono::steady_clock::now() < give_up) {
      if (engine->AcceptRegistrations() == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    }
    REQUIRE(registry.Available().size() == n);
  }

  // Runs one round, which must complete (the devices' outcomes are in the report).
  RoundReport RunRound() {
    edgefl::Result<RoundReport> report = engine->RunRound();
    REQUIRE(report.ok());
    CHECK(report->status.ok());
    return std::move(report).value();
  }

  std::vector<float> weights() const {
    return {engine->global_weights().begin(), engine->global_weights().end()};
  }
};

edgefl::coordinator::EngineOptions EngineOptionsFor(size_t clients_per_round) {
  edgefl::coordinator::EngineOptions options;
  options.clients_per_round = clients_per_round;
  options.round_deadline = std::chrono::seconds(20);  // only a failing test waits for it
  options.training.learning_rate = 0.125f;
  options.training.seed = 42;
  return options;
}

// Host devices on their own threads, each an edgefl_client_t with a training callback, running
// `max_rounds` rounds.
class HostDevices {
 public:
  HostDevices(const std::string& endpoint, std::vector<HostModel>& models, uint64_t max_rounds)
      : statuses_(models.size(), EDGEFL_UNKNOWN), rounds_(models.size(), 0) {
    for (HostModel& model : models) {
      edgefl_client_config config = edgefl_client_default_config();
      config.endpoint = endpoint.c_str();
      config.insecure_plaintext = 1;
      config.device_name = "host-callback";
      config.heartbeat_seconds = 0.2;
      edgefl_client_t* client = nullptr;
      REQUIRE(edgefl_client_create(&config, &client) == EDGEFL_OK);
      REQUIRE(edgefl_client_set_train_callback(client, TrainHostModel, &model, model.delta.size(),
                                               model.num_examples) == EDGEFL_OK);
      clients_.push_back(client);
    }
    for (size_t i = 0; i < clients_.size(); ++i) {
      threads_.emplace_back([this, i, max_rounds] {
        statuses_[i] = edgefl_client_run(clients_[i], max_rounds, &rounds_[i]);
      });
    }
  }
  ~HostDevices() { Join(); }

  // Stops the devices still running and waits for them.
  void Join() {
    for (edgefl_client_t* client : clients_) edgefl_client_stop(client);
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
    for (edgefl_client_t* client : clients_) edgefl_client_free(client);
    clients_.clear();
  }
  edgefl_status status(size_t i) const { return statuses_[i]; }
  uint64_t rounds(size_t i) const { return rounds_[i]; }

 private:
  std::vector<edgefl_client_t*> clients_;
  std::vector<edgefl_status> statuses_;
  std::vector<uint64_t> rounds_;
  std::vector<std::thread> threads_;
};

// Float sums of a few values: the engine accumulates in double and rounds once.
constexpr double kFloatTolerance = 1e-6;

void CheckWeights(const std::vector<float>& actual, const std::vector<float>& expected,
                  double tolerance) {
  REQUIRE(actual.size() == expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(std::abs(static_cast<double>(actual[i]) - expected[i]) <= tolerance);
  }
}

const ClientOutcome* OutcomeOf(const RoundReport& report, ClientOutcomeKind kind) {
  for (const ClientOutcome& outcome : report.outcomes) {
    if (outcome.kind == kind) return &outcome;
  }
  return nullptr;
}

TEST_CASE("the coordinator averages what two training callbacks return, weighted by examples" *
          doctest::test_suite("integration")) {
  const std::vector<float> initial = {0.5f, -1.0f, 2.0f, 0.0f};
  Coordinator coordinator(EngineOptionsFor(2), initial);
  std::vector<HostModel> models(2);
  models[0].delta = {1.0f, 2.0f, 3.0f, 4.0f};
  models[0].num_examples = 1;
  models[0].train_loss = 0.5f;
  models[1].delta = {-1.0f, 0.0f, 1.0f, 2.0f};
  models[1].num_examples = 3;
  models[1].train_loss = 0.25f;
  HostDevices devices(coordinator.channel->endpoint(), models, 1);
  coordinator.WaitForClients(2);

  const RoundReport report = coordinator.RunRound();
  CHECK(report.num_clients_reported == 2);
  CHECK(report.num_examples_reported == 4);
  CHECK(report.train_loss == doctest::Approx((1 * 0.5 + 3 * 0.25) / 4));
  // FedAvg: global += (1 * delta_0 + 3 * delta_1) / 4.
  CheckWeights(coordinator.weights(), {0.5f - 0.5f, -1.0f + 0.5f, 2.0f + 1.5f, 0.0f + 2.5f},
               kFloatTolerance);
  devices.Join();
  for (size_t i = 0; i < models.size(); ++i) {
    CAPTURE(i);
    CHECK(devices.status(i) == EDGEFL_OK);
    CHECK(devices.rounds(i) == 1);
    CHECK(models[i].calls == 1);
    CHECK(models[i].global_seen == initial);
    CHECK(models[i].round_seen.round == 1);
    CHECK(models[i].round_seen.learning_rate == 0.125f);
    CHECK(models[i].round_seen.seed == 42);
  }
  CHECK(models[0].round_seen.client_id != models[1].round_seen.client_id);
}

TEST_CASE("a training callback's update is clipped and securely aggregated" *
          doctest::test_suite("integration")) {
  edgefl::coordinator::EngineOptions options = EngineOptionsFor(2);
  options.privacy.secure_aggregation = true;
  options.privacy.clip_norm = 1.0;
  Coordinator coordinator(std::move(options), std::vector<float>(4, 0.0f));
  std::vector<HostModel> models(2);
  models[0].delta = {30.0f, 40.0f, 0.0f, 0.0f};  // norm 50: clipped to (0.6, 0.8, 0, 0)
  models[1].delta = {0.0f, 0.0f, 0.0f, 0.5f};    // norm 0.5: left alone
  HostDevices devices(coordinator.channel->endpoint(), models, 1);
  coordinator.WaitForClients(2);

  const RoundReport report = coordinator.RunRound();
  CHECK(report.num_clients_reported == 2);
  // Secure aggregation weighs the cohort equally (engine: DP-FedAvg): the mean of the clipped
  // updates. The fixed-point encoding adds at most a few steps of 1 / scale (~1e-9 here).
  CheckWeights(coordinator.weights(), {0.3f, 0.4f, 0.0f, 0.25f}, kFloatTolerance);
  double norm = 0.0;
  for (float w : coordinator.weights()) norm += static_cast<double>(w) * w;
  CHECK(std::sqrt(norm) <= 1.0 + kFloatTolerance);
  devices.Join();
  // max_rounds = 1 still lets each device finish its secure-aggregation steps.
  CHECK(devices.status(0) == EDGEFL_OK);
  CHECK(devices.status(1) == EDGEFL_OK);
}

TEST_CASE("a failing or NaN-producing training callback declines the round and the round goes on" *
          doctest::test_suite("integration")) {
  const std::vector<float> initial = {1.0f, 2.0f, 3.0f, 4.0f};
  Coordinator coordinator(EngineOptionsFor(3), initial);
  std::vector<HostModel> models(3);
  models[0].delta = {1.0f, 1.0f, 1.0f, 1.0f};  // healthy
  models[0].num_examples = 2;
  models[1].delta = {3.0f, 3.0f, 3.0f, 3.0f};  // returns 7 in round 1, healthy in round 2
  models[1].num_examples = 2;
  models[1].fail_first_calls = 1;
  models[2].delta = {5.0f, 5.0f, 5.0f, 5.0f};  // always writes a NaN
  models[2].write_nan = true;
  HostDevices devices(coordinator.channel->endpoint(), models, 2);
  coordinator.WaitForClients(3);

  const RoundReport first = coordinator.RunRound();
  CHECK(first.num_clients_reported == 1);
  CHECK(first.num_clients_rejected == 2);
  size_t num_failed = 0;
  bool declined_seen = false;
  bool nan_seen = false;
  for (const ClientOutcome& outcome : first.outcomes) {
    if (outcome.kind != ClientOutcomeKind::kFailed) continue;
    ++num_failed;
    CAPTURE(outcome.reason);
    declined_seen |= outcome.reason.find("declined round 1 (returned 7)") != std::string::npos;
    nan_seen |= outcome.reason.find("not finite") != std::string::npos;
  }
  CHECK(num_failed == 2);
  CHECK(declined_seen);
  CHECK(nan_seen);
  CheckWeights(coordinator.weights(), {2.0f, 3.0f, 4.0f, 5.0f}, kFloatTolerance);

  // The declining device is still connected and takes part again.
  const RoundReport second = coordinator.RunRound();
  CHECK(second.num_clients_reported == 2);
  REQUIRE(OutcomeOf(second, ClientOutcomeKind::kFailed) != nullptr);
  CheckWeights(coordinator.weights(), {4.0f, 5.0f, 6.0f, 7.0f}, kFloatTolerance);
  devices.Join();
  for (size_t i = 0; i < models.size(); ++i) {
    CAPTURE(i);
    CHECK(devices.status(i) == EDGEFL_OK);
    CHECK(devices.rounds(i) == 2);
    CHECK(models[i].calls == 2);
  }
}

TEST_CASE("a training callback's error message reaches the coordinator's round report" *
          doctest::test_suite("integration")) {
  Coordinator coordinator(EngineOptionsFor(3), {1.0f, 2.0f});
  std::vector<HostModel> models = {
      {.delta = {1.0f, 1.0f}},  // healthy
      {.delta = {3.0f, 3.0f}, .error_message = "battery below 20%"},
      // Longer than an error reply may be; and an error set declines even when 0 is returned.
      {.delta = {5.0f, 5.0f}, .error_message = std::string(3000, 'e'), .error_return = 0}};
  HostDevices devices(coordinator.channel->endpoint(), models, 1);
  coordinator.WaitForClients(3);

  const RoundReport report = coordinator.RunRound();
  CHECK(report.num_clients_reported == 1);
  std::vector<std::string> reasons;
  for (const ClientOutcome& outcome : report.outcomes) {
    if (outcome.kind == ClientOutcomeKind::kFailed) reasons.push_back(outcome.reason);
  }
  REQUIRE(reasons.size() == 2);
  if (reasons[0].size() > reasons[1].size()) std::swap(reasons[0], reasons[1]);
  CHECK(reasons[0] ==
        "ABORTED: host trainer: the training callback declined round 1 (returned 1): battery "
        "below 20%");
  CHECK(reasons[1].find("declined round 1 (returned 0): eeee") != std::string::npos);
  CHECK(reasons[1].ends_with("e [...]"));
  // Only the healthy device's update was aggregated.
  CheckWeights(coordinator.weights(), {2.0f, 3.0f}, kFloatTolerance);
  devices.Join();
  for (size_t i = 1; i < models.size(); ++i) {
    CAPTURE(i);
    CHECK(devices.status(i) == EDGEFL_OK);
    CHECK(models[i].set_error_status == EDGEFL_OK);
    CHECK(models[i].copy_set_error_status == EDGEFL_FAILED_PRECONDITION);
  }
}

}  // namespace

// Rounds with secure aggregation and differential privacy, end to end through real devices
// (client::Device) behind the in-process channel.
#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <numeric>

#include "edgefl/aggregation/strategy.h"
#include "edgefl/client/device.h"
#include "edgefl/coordinator/round_engine.h"
#include "edgefl/models/dataset.h"
#include "edgefl/privacy/encoding.h"
#include "edgefl/privacy/secagg_wire.h"
#include "edgefl/transport/in_process_channel.h"

namespace edgefl::coordinator {
namespace {

using transport::Message;

constexpr size_t kDim = 6;
constexpr size_t kClasses = 3;

models::Dataset MakeDataset(size_t n) {
  models::Dataset data;
  data.num_examples = n;
  data.example_shape = {kDim};
  data.example_size = kDim;
  data.num_classes = kClasses;
  Rng rng(4);
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = 0; j < kDim; ++j) {
      data.features.push_back(static_cast<float>(rng.Uniform01() + (j == i % kClasses ? 1 : 0)));
    }
    data.labels.push_back(static_cast<uint8_t>(i % kClasses));
  }
  return data;
}

// Real devices behind the in-process channel; `drop` says whether device `id` vanishes before
// handling a given message; every message the coordinator receives is kept for inspection.
struct Fleet {
  models::Dataset data = MakeDataset(240);
  std::vector<std::vector<uint32_t>> shards;
  std::vector<client::Device> devices;
  client::Workspace workspace{
      models::CreateModel({.name = "logreg", .input_size = kDim, .num_classes = kClasses}).value()};
  VirtualClock clock;
  std::function<bool(ClientId, const Message&)> drop = [](ClientId, const Message&) { return false; };
  std::vector<Message> received_by_coordinator;
  transport::InProcessChannel channel{clock, [this] { return Pump(); }};

  explicit Fleet(size_t n) : shards(n) {
    for (uint32_t i = 0; i < data.num_examples; ++i) shards[i % n].push_back(i);
    for (size_t i = 0; i < n; ++i) {
      devices.emplace_back(ClientId{i + 1}, client::LocalData{&data, shards[i]});
      channel.Deliver(devices.back().MakeHello("d"), Clock::Duration(0));
    }
  }
  size_t num_parameters() { return workspace.model().num_parameters(); }

  bool Pump() {
    auto outgoing = channel.TakeOutgoing();
    if (outgoing.empty()) return false;
    for (auto& sent : outgoing) {
      if (drop(sent.to, sent.message)) continue;
      for (Message& reply : devices[sent.to.value() - 1].Handle(sent.message, workspace)) {
        received_by_coordinator.push_back(reply);
        channel.Deliver(std::move(reply), sent.sent_at + std::chrono::seconds(1));
      }
    }
    return true;
  }

  RoundEngine MakeEngine(PrivacyOptions privacy, coordinator::ClientRegistry& registry) {
    EngineOptions options{.clients_per_round = devices.size(),
                          .training = {.local_epochs = 1, .batch_size = 8, .learning_rate = 0.3f,
                                       .seed = 5},
                          .seed = 3,
                          .privacy = privacy};
    auto strategy = aggregation::CreateStrategy({.name = "fedavg"}, num_parameters()).value();
    return RoundEngine(options, std::vector<float>(num_parameters(), 0.0f), std::move(strategy),
                       channel, registry);
  }
};

std::vector<float> Weights(const RoundEngine& engine) {
  return {engine.global_weights().begin(), engine.global_weights().end()};
}

// The uniform mean of the devices' clipped updates, computed without any protocol.
std::vector<float> PlainMean(Fleet& fleet, std::span<const ClientId> who, double clip) {
  std::vector<double> sum(fleet.num_parameters(), 0.0);
  auto weights = std::make_shared<const std::vector<float>>(fleet.num_parameters(), 0.0f);
  for (ClientId id : who) {
    Message start{.round = RoundId{1},
                  .body = transport::RoundStart{
                      .training = {.local_epochs = 1, .batch_size = 8, .learning_rate = 0.3f, .seed = 5},
                      .global_weights = weights,
                      .privacy = {.clip_norm = static_cast<float>(clip)}}};
    auto replies = fleet.devices[id.value() - 1].Handle(start, fleet.workspace);
    const auto& delta = std::get<transport::Update>(replies.at(0).body).delta;
    for (size_t i = 0; i < sum.size(); ++i) sum[i] += delta[i];
  }
  std::vector<float> mean(sum.size());
  for (size_t i = 0; i < sum.size(); ++i) mean[i] = static_cast<float>(sum[i] / who.size());
  return mean;
}

// Fixed-point error bound per coordinate: each device rounds once (< 1/scale) and the scale
// for 8 devices at clip 100 is about 2^30 / 800, so the mean is off by far less than this.
constexpr float kEncodingTolerance = 1e-4f;

TEST_CASE("A secure-aggregation round gives the plain mean of the updates up to encoding error") {
  Fleet fleet(8);
  ClientRegistry registry;
  RoundEngine engine = fleet.MakeEngine({.secure_aggregation = true}, registry);
  RoundReport report = engine.RunRound().value();
  REQUIRE_MESSAGE(report.status.ok(), report.status.ToString());
  CHECK(report.num_clients_reported == 8);
  std::vector<ClientId> all;
  for (uint64_t i = 1; i <= 8; ++i) all.push_back(ClientId{i});
  const std::vector<float> expected = PlainMean(fleet, all, 100.0);
  const std::vector<float> actual = Weights(engine);
  for (size_t i = 0; i < expected.size(); ++i) CHECK(std::abs(actual[i] - expected[i]) < kEncodingTolerance);
}

TEST_CASE("The coordinator never receives an unmasked update in a secure round") {
  Fleet fleet(6);
  ClientRegistry registry;
  RoundEngine engine = fleet.MakeEngine({.clip_norm = 1.0, .secure_aggregation = true}, registry);
  const RoundReport report = engine.RunRound().value();
  REQUIRE(report.status.ok());
  size_t num_masked = 0;
  for (const Message& message : fleet.received_by_coordinator) {
    CHECK_FALSE(std::holds_alternative<transport::Update>(message.body));
    const auto* payload = std::get_if<transport::SecAggPayload>(&message.body);
    if (payload == nullptr || payload->step != static_cast<uint8_t>(privacy::SecAggStep::kMaskedInput)) {
      continue;
    }
    ++num_masked;
    auto masked = std::get<privacy::secagg::MaskedInputMessage>(
        privacy::DecodeSecAgg(privacy::SecAggStep::kMaskedInput, payload->payload).value());
    // Read as if it were the device's encoded input and compare with the device's true clipped
    // update: an unmasked input would match every coordinate to within 1/scale; a masked value
    // is uniform on the ring and matches with probability ~1e-4.
    const ClientId sender = message.sender;
    const std::vector<float> truth = PlainMean(fleet, std::vector<ClientId>{sender}, 1.0);
    const double scale = privacy::ChooseEncodingScale(1.0, 6, 0.0, 1).value();
    size_t matching = 0;
    for (size_t i = 0; i < truth.size(); ++i) {
      const double as_input = static_cast<int32_t>(masked.masked_input[i]) / scale;
      if (std::abs(as_input - truth[i]) < 1e-3) ++matching;
    }
    CHECK(matching <= 1);
  }
  CHECK(num_masked == 6);
}

TEST_CASE("Devices dropping at every secure-aggregation step leave the survivors' exact sum") {
  for (int drop_step = 0; drop_step < 4; ++drop_step) {
    CAPTURE(drop_step);
    Fleet fleet(8);
    // Devices 2 and 5 vanish before the given step: 0 = RoundStart, 1 = key directory,
    // 2 = relayed shares, 3 = unmask request.
    fleet.drop = [drop_step](ClientId id, const Message& m) {
      if (id.value() != 2 && id.value() != 5) return false;
      int step = 0;
      if (const auto* p = std::get_if<transport::SecAggPayload>(&m.body)) {
        step = p->step == 2 ? 1 : p->step == 4 ? 2 : 3;
      }
      return step >= drop_step;
    };
    ClientRegistry registry;
    RoundEngine engine = fleet.MakeEngine({.secure_aggregation = true}, registry);
    RoundReport report = engine.RunRound().value();
    REQUIRE_MESSAGE(report.status.ok(), report.status.ToString());
    // Dropping before the masked input removes a device from the sum; dropping only before
    // unmasking keeps its (already sent) input in it.
    const bool in_sum = drop_step == 3;
    std::vector<ClientId> contributors;
    for (uint64_t i = 1; i <= 8; ++i) {
      if (in_sum || (i != 2 && i != 5)) contributors.push_back(ClientId{i});
    }
    CHECK(report.num_clients_reported == contributors.size());
    const std::vector<float> expected = PlainMean(fleet, contributors, 100.0);
    const std::vector<float> actual = Weights(engine);
    for (size_t i = 0; i < expected.size(); ++i) CHECK(std::abs(actual[i] - expected[i]) < kEncodingTolerance);
  }
}

TEST_CASE("A secure round aborts cleanly when fewer devices than the threshold remain") {
  Fleet fleet(6);
  fleet.drop = [](ClientId id, const Message& m) {
    return id.value() <= 4 && std::holds_alternative<transport::SecAggPayload>(m.body);
  };
  ClientRegistry registry;
  RoundEngine engine = fleet.MakeEngine({.secure_aggregation = true}, registry);
  RoundReport report = engine.RunRound().value();
  CHECK(report.status.code() == StatusCode::kAborted);
  CHECK(Weights(engine) == std::vector<float>(fleet.num_parameters(), 0.0f));
}

TEST_CASE("A secure round cancelled mid-protocol applies nothing and the next round runs") {
  Fleet fleet(4);
  std::atomic<bool> cancel{false};
  // The flag is set as the key directories go out, so the engine notices it while it waits for
  // the encrypted shares (step 1).
  fleet.drop = [&](ClientId, const Message& m) {
    if (std::holds_alternative<transport::SecAggPayload>(m.body)) cancel.store(true);
    return false;
  };
  ClientRegistry registry;
  RoundEngine engine = fleet.MakeEngine({.secure_aggregation = true}, registry);
  Result<RoundReport> cancelled = engine.RunRound(&cancel);
  REQUIRE(cancelled.ok());
  CHECK(cancelled->status.code() == StatusCode::kCancelled);
  CHECK(cancelled->num_clients_reported == 0);
  CHECK(Weights(engine) == std::vector<float>(fleet.num_parameters(), 0.0f));

  cancel.store(false);
  fleet.drop = [](ClientId, const Message&) { return false; };
  RoundReport next = engine.RunRound(&cancel).value();
  REQUIRE(next.status.ok());
  CHECK(next.num_clients_reported == 4);
  CHECK(Weights(engine) != std::vector<float>(fleet.num_parameters(), 0.0f));
}

TEST_CASE("Central DP clips, adds noise, and reports a growing epsilon") {
  Fleet fleet(8);
  ClientRegistry registry;
  RoundEngine engine =
      fleet.MakeEngine({.dp = DpMode::kCentral, .clip_norm = 0.5, .noise_multiplier = 1.0}, registry);
  const RoundReport first = engine.RunRound().value();
  const RoundReport second = engine.RunRound().value();
  REQUIRE(first.status.ok());
  CHECK(first.epsilon > 0.0);
  CHECK(second.epsilon > first.epsilon);
  // With q = 1 the weights moved by the mean of clipped updates plus noise of std
  // sigma * C / n per coordinate: nonzero and finite.
  for (float w : Weights(engine)) CHECK(std::isfinite(w));
}

TEST_CASE("Distributed DP adds each device's noise share under secure aggregation") {
  Fleet fleet(8);
  ClientRegistry registry;
  RoundEngine engine = fleet.MakeEngine(
      {.dp = DpMode::kDistributed, .clip_norm = 0.5, .noise_multiplier = 0.5, .secure_aggregation = true},
      registry);
  const RoundReport report = engine.RunRound().value();
  REQUIRE_MESSAGE(report.status.ok(), report.status.ToString());
  CHECK(report.epsilon > 0.0);
  std::vector<ClientId> all;
  for (uint64_t i = 1; i <= 8; ++i) all.push_back(ClientId{i});
  const std::vector<float> plain = PlainMean(fleet, all, 0.5);
  double squared_error = 0.0;
  const std::vector<float> actual = Weights(engine);
  for (size_t i = 0; i < plain.size(); ++i) squared_error += std::pow(actual[i] - plain[i], 2);
  // Noise on the mean has std sigma * C / n = 0.03125 per coordinate: clearly present.
  CHECK(std::sqrt(squared_error / plain.size()) > 0.01);
  CHECK(std::sqrt(squared_error / plain.size()) < 0.1);
  CHECK(PrivacyOptions{.dp = DpMode::kDistributed}.Validate().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edgefl::coordinator

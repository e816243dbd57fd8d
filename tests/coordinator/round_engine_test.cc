#include "edgefl/coordinator/round_engine.h"

#include <doctest/doctest.h>

#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "edgefl/aggregation/strategy.h"
#include "edgefl/coordinator/selection.h"
#include "edgefl/transport/in_process_channel.h"
#include "edgefl/transport/zmq_channel.h"
#include "coordinator/loopback_service.h"

namespace edgefl::coordinator {
namespace {

using transport::Message;

constexpr size_t kNumParameters = 3;

// Scripted devices: the fault-injection seam. Each answers a RoundStart with whatever
// `reply` returns (nullopt = stays silent), `delay` after the send.
struct ScriptedDevices {
  VirtualClock clock;
  std::function<std::optional<transport::Body>(ClientId, const transport::RoundStart&)> reply;
  std::function<Clock::Duration(ClientId)> delay = [](ClientId id) {
    return std::chrono::seconds(id.value());
  };
  transport::InProcessChannel channel{clock, [this] { return Pump(); }};

  bool Pump() {
    auto outgoing = channel.TakeOutgoing();
    if (outgoing.empty()) return false;
    for (auto& sent : outgoing) {
      const auto* start = std::get_if<transport::RoundStart>(&sent.message.body);
      if (start == nullptr) continue;
      std::optional<transport::Body> body = reply(sent.to, *start);
      if (body) {
        channel.Deliver(Message{.sender = sent.to, .round = sent.message.round, .body = *body},
                        sent.sent_at + delay(sent.to));
      }
    }
    return true;
  }

  void Register(size_t n) {
    for (size_t i = 1; i <= n; ++i) {
      channel.Deliver(Message{.sender = ClientId{i}, .body = transport::Hello{"d", 10 * i}},
                      Clock::Duration(0));
    }
  }
};

transport::Body MakeUpdate(std::vector<float> delta, uint64_t num_examples, float loss = 1.0f) {
  return transport::Update{.num_examples = num_examples, .train_loss = loss, .delta = std::move(delta)};
}

std::unique_ptr<aggregation::Strategy> FedAvg() {
  return aggregation::CreateStrategy({.name = "fedavg"}, kNumParameters).value();
}

TEST_CASE("A round sends the weights to the cohort and applies the weighted mean of the updates") {
  ScriptedDevices devices;
  devices.Register(4);
  std::map<ClientId, size_t> weights_seen;
  devices.reply = [&](ClientId id, const transport::RoundStart& start) {
    weights_seen[id] = start.global_weights->size();
    const float v = static_cast<float>(id.value());
    return MakeUpdate({v, -v, 0.5f}, id.value(), /*loss=*/v);
  };
  ClientRegistry registry;
  RoundEngine engine({.clients_per_round = 4}, {1.0f, 1.0f, 1.0f}, FedAvg(), devices.channel,
                     registry);
  CHECK(engine.AcceptRegistrations() == 4);
  CHECK(registry.size() == 4);

  RoundReport report = engine.RunRound().value();
  REQUIRE(report.status.ok());
  CHECK(report.round == RoundId{1});
  CHECK(report.num_clients_selected == 4);
  CHECK(report.num_clients_reported == 4);
  CHECK(weights_seen.size() == 4);
  // Weighted by num_examples = id: sum(id^2) / sum(id) = 30 / 10 = 3.
  const std::vector<float> expected = {1.0f + 3.0f, 1.0f - 3.0f, 1.5f};
  for (size_t i = 0; i < kNumParameters; ++i) {
    CHECK(engine.global_weights()[i] == doctest::Approx(expected[i]).epsilon(1e-6));
  }
  CHECK(report.train_loss == doctest::Approx(3.0));
  // The clock followed the slowest device (4 s).
  CHECK(devices.clock.Now() == std::chrono::seconds(4));
}

TEST_CASE("NaN, wrong-size and zero-example updates are rejected and the round goes on") {
  ScriptedDevices devices;
  devices.Register(5);
  devices.reply = [&](ClientId id, const transport::RoundStart&) -> std::optional<transport::Body> {
    switch (id.value()) {
      case 1: return MakeUpdate({std::numeric_limits<float>::quiet_NaN(), 0, 0}, 5);
      case 2: return MakeUpdate({1, 2}, 5);
      case 3: return MakeUpdate({1, 2, 3}, 0);
      case 4: return transport::ErrorReply{StatusCode::kFailedPrecondition, "no data"};
      default: return MakeUpdate({2, 2, 2}, 7);
    }
  };
  ClientRegistry registry;
  RoundEngine engine({.clients_per_round = 5}, {0, 0, 0}, FedAvg(), devices.channel, registry);
  RoundReport report = engine.RunRound().value();
  REQUIRE(report.status.ok());
  CHECK(report.num_clients_reported == 1);
  CHECK(report.num_clients_rejected == 4);
  CHECK(report.outcomes[0].kind == ClientOutcomeKind::kRejected);
  CHECK(report.outcomes[0].reason.find("not finite") != std::string::npos);
  CHECK(report.outcomes[1].reason.find("has 2 values") != std::string::npos);
  CHECK(report.outcomes[3].kind == ClientOutcomeKind::kFailed);
  CHECK(std::vector<float>(engine.global_weights().begin(), engine.global_weights().end()) ==
        std::vector<float>{2, 2, 2});
}

TEST_CASE("Silent clients are dropped at the deadline and the clock stops there") {
  ScriptedDevices devices;
  devices.Register(3);
  devices.reply = [&](ClientId id, const transport::RoundStart&) -> std::optional<transport::Body> {
    if (id.value() == 2) return std::nullopt;
    return MakeUpdate({1, 1, 1}, 1);
  };
  ClientRegistry registry;
  RoundEngine engine({.clients_per_round = 3, .round_deadline = std::chrono::seconds(10)},
                     {0, 0, 0}, FedAvg(), devices.channel, registry);
  RoundReport report = engine.RunRound().value();
  CHECK(report.num_clients_reported == 2);
  CHECK(report.num_clients_dropped == 1);
  CHECK(report.outcomes[1].kind == ClientOutcomeKind::kDropped);
  CHECK(devices.clock.Now() == std::chrono::seconds(10));
}

TEST_CASE("A late device's update arrives after the deadline and is ignored") {
  ScriptedDevices devices;
  devices.Register(2);
  devices.delay = [](ClientId id) { return std::chrono::seconds(id.value() == 2 ? 60 : 1); };
  devices.reply = [&](ClientId id, const transport::RoundStart&) {
    return MakeUpdate({static_cast<float>(id.value()), 0, 0}, 1);
  };
  ClientRegistry registry;
  RoundEngine engine({.clients_per_round = 2, .round_deadline = std::chrono::seconds(30)},
                     {0, 0, 0}, FedAvg(), devices.channel, registry);
  RoundReport first = engine.RunRound().value();
  CHECK(first.num_clients_reported == 1);
  CHECK(engine.global_weights()[0] == 1.0f);
  // Round 2 sees client 2's stale round-1 update as a stray, not as its round-2 answer.
  RoundReport second = engine.RunRound().value();
  CHECK(second.num_stray_messages == 1);
}

TEST_CASE("Over-selection takes the first updates to arrive and calls the rest not needed") {
  ScriptedDevices devices;
  devices.Register(13);
  devices.reply = [&](ClientId id, const transport::RoundStart&) {
    return MakeUpdate({static_cast<float>(id.value()), 0, 0}, 1);
  };
  ClientRegistry registry;
  RoundEngine engine({.clients_per_round = 10, .over_selection = 0.3}, {0, 0, 0}, FedAvg(),
                     devices.channel, registry);
  RoundReport report = engine.RunRound().value();
  CHECK(report.num_clients_selected == 13);
  CHECK(report.num_clients_reported == 10);
  CHECK(report.num_clients_dropped == 3);
  // Devices 1..10 answer first (delay = id seconds): mean of 1..10.
  CHECK(engine.global_weights()[0] == doctest::Approx(5.5));
  CHECK(report.outcomes[12].reason.find("not needed") != std::string::npos);
}

TEST_CASE("A round below the minimum cohort leaves the global weights unchanged") {
  ScriptedDevices devices;
  devices.Register(3);
  devices.reply = [&](ClientId id, const transport::RoundStart&) -> std::optional<transport::Body> {
    if (id.value() == 1) return MakeUpdate({5, 5, 5}, 1);
    return std::nullopt;
  };
  ClientRegistry registry;
  RoundEngine engine({.clients_per_round = 3,
                      .min_clients_reported = 2,
                      .round_deadline = std::chrono::seconds(5)},
                     {1, 1, 1}, FedAvg(), devices.channel, registry);
  RoundReport report = engine.RunRound().value();
  CHECK(report.status.code() == StatusCode::kAborted);
  CHECK(std::vector<float>(engine.global_weights().begin(), engine.global_weights().end()) ==
        std::vector<float>{1, 1, 1});
  // The discarded update does not leak into the next round.
  devices.reply = [&](ClientId, const transport::RoundStart&) -> std::optional<transport::Body> {
    return MakeUpdate({1, 1, 1}, 1);
  };
  RoundReport next = engine.RunRound().value();
  REQUIRE(next.status.ok());
  CHECK(engine.global_weights()[0] == doctest::Approx(2.0));
}

TEST_CASE("A cancelled round applies nothing and the next round sees none of its updates") {
  ScriptedDevices devices;
  devices.Register(2);
  devices.delay = [](ClientId) { return Clock::Duration(0); };
  std::atomic<bool> cancel{false};
  std::vector<uint64_t> versions_sent;
  // Round 1: client 1 answers at once; client 2 never answers, and the flag is set as it is
  // asked, so the engine holds client 1's update when it notices.
  devices.reply = [&](ClientId id,
                      const transport::RoundStart& start) -> std::optional<transport::Body> {
    versions_sent.push_back(start.model_version);
    if (id.value() == 2) {
      cancel.store(true);
      return std::nullopt;
    }
    return MakeUpdate({10, 10, 10}, 1);
  };
  ClientRegistry registry;
  RoundEngine engine({.clients_per_round = 2}, {1, 1, 1}, FedAvg(), devices.channel, registry);
  RoundReport cancelled = engine.RunRound(&cancel).value();
  CHECK(cancelled.status.code() == StatusCode::kCancelled);
  CHECK(cancelled.status.message().find("round 1 cancelled") != std::string::npos);
  CHECK(cancelled.num_clients_reported == 1);
  CHECK(cancelled.outcomes[1].kind == ClientOutcomeKind::kDropped);
  CHECK(cancelled.outcomes[1].reason == "no answer before the round was cancelled");
  CHECK(std::vector<float>(engine.global_weights().begin(), engine.global_weights().end()) ==
        std::vector<float>{1, 1, 1});
  CHECK(engine.last_round() == RoundId{1});

  // Round 2 starts from the same model version, and its mean holds only its own updates.
  cancel.store(false);
  devices.reply = [&](ClientId id,
                      const transport::RoundStart& start) -> std::optional<transport::Body> {
    versions_sent.push_back(start.model_version);
    return MakeUpdate({id.value() == 1 ? 2.0f : 4.0f, 0, 0}, 1);
  };
  RoundReport next = engine.RunRound(&cancel).value();
  REQUIRE(next.status.ok());
  CHECK(next.round == RoundId{2});
  CHECK(std::vector<float>(engine.global_weights().begin(), engine.global_weights().end()) ==
        std::vector<float>{4, 1, 1});
  CHECK(versions_sent == std::vector<uint64_t>{0, 0, 0, 0});
}

TEST_CASE("A flag set from another thread ends a round that would wait forever for a device" *
          doctest::test_suite("integration")) {
  WallClock clock;
  std::unique_ptr<transport::ZmqCoordinatorChannel> channel =
      transport::ZmqCoordinatorChannel::Create(
          {.endpoint = "tcp://127.0.0.1:*", .insecure_plaintext = true}, clock)
          .value();
  std::unique_ptr<transport::ZmqDeviceChannel> answering =
      testing::ConnectBareDevice(channel->endpoint(), clock).value();
  std::unique_ptr<transport::ZmqDeviceChannel> silent =
      testing::ConnectBareDevice(channel->endpoint(), clock).value();
  ClientRegistry registry;
  // No round deadline: without the flag this round would wait for the silent device forever.
  RoundEngine engine({.clients_per_round = 2}, {1, 1, 1}, FedAvg(), *channel, registry);
  while (registry.size() < 2) {
    engine.AcceptRegistrations();
    std::this_thread::yield();
  }

  std::atomic<bool> cancel{false};
  Status devices_status;
  std::thread devices([&] {
    devices_status = [&]() -> Status {
      EDGEFL_ASSIGN_OR_RETURN(Message start,
                              testing::AwaitMessage<transport::RoundStart>(*answering));
      EDGEFL_RETURN_IF_ERROR(
          answering->Send(Message{.round = start.round, .body = MakeUpdate({7, 7, 7}, 1)}));
      EDGEFL_RETURN_IF_ERROR(testing::AwaitMessage<transport::RoundStart>(*silent).status());
      return OkStatus();
    }();
    cancel.store(true);
  });
  Result<RoundReport> report = engine.RunRound(&cancel);
  devices.join();
  REQUIRE(devices_status.ok());
  REQUIRE(report.ok());
  CHECK(report->status.code() == StatusCode::kCancelled);
  CHECK(report->num_clients_selected == 2);
  // The silent device is still awaited when the flag is read (the answering one may or may not
  // have been read first).
  CHECK(report->num_clients_dropped >= 1);
  CHECK(std::vector<float>(engine.global_weights().begin(), engine.global_weights().end()) ==
        std::vector<float>{1, 1, 1});
}

TEST_CASE("Cohort selection is seeded, uniform and without repeats") {
  std::vector<ClientId> candidates;
  for (uint64_t i = 1; i <= 100; ++i) candidates.push_back(ClientId{i});
  const auto a = SelectCohort(candidates, 10, 7, RoundId{3});
  CHECK(a == SelectCohort(candidates, 10, 7, RoundId{3}));
  CHECK(a != SelectCohort(candidates, 10, 7, RoundId{4}));
  CHECK(std::set<ClientId>(a.begin(), a.end()).size() == 10);
  std::vector<int> counts(101, 0);
  for (uint64_t r = 1; r <= 2000; ++r) {
    for (ClientId c : SelectCohort(candidates, 10, 1, RoundId{r})) ++counts[c.value()];
  }
  for (uint64_t i = 1; i <= 100; ++i) CHECK(std::abs(counts[i] - 200) < 60);
  CHECK(SelectCohort(candidates, 500, 1, RoundId{1}).size() == 100);
  CHECK(CohortSizeWithOverSelection(10, 0.3) == 13);
  CHECK(CohortSizeWithOverSelection(10, 0.0) == 10);
}

TEST_CASE("EngineOptions rejects settings that cannot run") {
  CHECK(EngineOptions{.clients_per_round = 0}.Validate().code() == StatusCode::kInvalidArgument);
  CHECK(EngineOptions{.clients_per_round = 2, .min_clients_reported = 3}.Validate().code() ==
        StatusCode::kInvalidArgument);
  CHECK(EngineOptions{.over_selection = -1}.Validate().code() == StatusCode::kInvalidArgument);
  CHECK(EngineOptions{}.Validate().ok());
}

}  // namespace
}  // namespace edgefl::coordinator

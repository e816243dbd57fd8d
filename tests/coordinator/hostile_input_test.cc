// The round engine against devices that break the protocol (issue 5): non-finite and
// wrong-shape updates are rejected, messages for rounds a device is not in are refused, and in
// every case the round completes with exactly the valid updates.
#include <doctest/doctest.h>

#include <functional>
#include <limits>
#include <optional>

#include "edgefl/aggregation/strategy.h"
#include "edgefl/coordinator/round_engine.h"
#include "edgefl/transport/in_process_channel.h"

namespace edgefl::coordinator {
namespace {

using transport::Message;

constexpr size_t kNumParameters = 3;

// Devices 1..n answer each RoundStart `id` seconds after it was sent with `reply(id, round)`;
// `extra` may post further messages (as any device, for any round) at chosen times.
struct HostileDevices {
  VirtualClock clock;
  std::function<transport::Body(ClientId)> reply;
  std::function<void(ClientId, RoundId, Clock::Duration sent_at)> extra = [](auto, auto, auto) {};
  transport::InProcessChannel channel{clock, [this] { return Pump(); }};

  bool Pump() {
    auto outgoing = channel.TakeOutgoing();
    if (outgoing.empty()) return false;
    for (auto& sent : outgoing) {
      if (!std::holds_alternative<transport::RoundStart>(sent.message.body)) continue;
      channel.Deliver(
          Message{.sender = sent.to, .round = sent.message.round, .body = reply(sent.to)},
          sent.sent_at + std::chrono::seconds(sent.to.value()));
      extra(sent.to, sent.message.round, sent.sent_at);
    }
    return true;
  }

  void Register(size_t n) {
    for (size_t i = 1; i <= n; ++i) {
      channel.Deliver(Message{.sender = ClientId{i}, .body = transport::Hello{"d", 10}},
                      Clock::Duration(0));
    }
  }
};

transport::Body Update(std::vector<float> delta, float loss = 1.0f) {
  return transport::Update{.num_examples = 10, .train_loss = loss, .delta = std::move(delta)};
}

std::vector<float> Weights(const RoundEngine& engine) {
  return {engine.global_weights().begin(), engine.global_weights().end()};
}

RoundEngine MakeEngine(HostileDevices& devices, ClientRegistry& registry) {
  return RoundEngine({.clients_per_round = 3}, std::vector<float>(kNumParameters, 0.0f),
                     aggregation::CreateStrategy({.name = "fedavg"}, kNumParameters).value(),
                     devices.channel, registry);
}

TEST_CASE(
    "Infinite values, a NaN loss and too many parameters are rejected, and later rounds run") {
  HostileDevices devices;
  devices.Register(3);
  int round_number = 0;
  devices.reply = [&](ClientId id) -> transport::Body {
    if (id == ClientId{3}) return Update({6, 6, 6});
    switch (round_number) {
      case 1:
        return id == ClientId{1} ? Update({std::numeric_limits<float>::infinity(), 0, 0})
                                 : Update({-std::numeric_limits<float>::infinity(), 0, 0});
      case 2:
        return id == ClientId{1} ? Update({1, 1, 1}, std::numeric_limits<float>::quiet_NaN())
                                 : Update({1, 1, 1, 1});
      default:
        return Update({0, 0, 0});
    }
  };
  ClientRegistry registry;
  RoundEngine engine = MakeEngine(devices, registry);
  for (round_number = 1; round_number <= 3; ++round_number) {
    CAPTURE(round_number);
    const RoundReport report = engine.RunRound().value();
    REQUIRE(report.status.ok());
    CHECK(report.num_clients_selected == 3);
    if (round_number < 3) {
      CHECK(report.num_clients_reported == 1);
      CHECK(report.num_clients_rejected == 2);
      CHECK(report.outcomes[0].kind == ClientOutcomeKind::kRejected);
      CHECK(report.outcomes[1].kind == ClientOutcomeKind::kRejected);
    } else {
      CHECK(report.num_clients_reported == 3);
    }
  }
  // Rounds 1 and 2 applied only device 3's +6; round 3 the mean of (0, 0, 6).
  CHECK(Weights(engine) == std::vector<float>{14, 14, 14});
}

TEST_CASE(
    "Messages for a round not started, from outside the cohort or answering twice are refused") {
  HostileDevices devices;
  devices.Register(3);
  devices.reply = [](ClientId id) {
    const auto v = static_cast<float>(id.value());
    return Update({v, v, v});
  };
  const transport::Body poison = Update({1000, 1000, 1000});
  devices.extra = [&](ClientId id, RoundId round, Clock::Duration sent_at) {
    if (id != ClientId{1}) return;
    using std::chrono::milliseconds;
    // Before any genuine answer: a round that has not started, and a device never selected.
    devices.channel.Deliver(Message{.sender = ClientId{2}, .round = round.Next(), .body = poison},
                            sent_at + milliseconds(100));
    devices.channel.Deliver(Message{.sender = ClientId{9}, .round = round, .body = poison},
                            sent_at + milliseconds(200));
    // After device 1's answer (at 1 s), before the round ends (at 3 s): a second answer.
    devices.channel.Deliver(Message{.sender = ClientId{1}, .round = round, .body = poison},
                            sent_at + milliseconds(1500));
  };
  ClientRegistry registry;
  RoundEngine engine = MakeEngine(devices, registry);
  const RoundReport report = engine.RunRound().value();
  REQUIRE(report.status.ok());
  CHECK(report.num_clients_reported == 3);
  CHECK(report.num_clients_rejected == 0);
  CHECK(report.num_stray_messages == 3);
  // The mean of the three genuine updates (1, 2, 3); none of the poison reached the aggregate.
  CHECK(Weights(engine) == std::vector<float>{2, 2, 2});
}

TEST_CASE(
    "Between rounds, an update for a future round is refused and does not join the next one") {
  HostileDevices devices;
  devices.Register(3);
  devices.reply = [](ClientId) { return Update({3, 3, 3}); };
  ClientRegistry registry;
  RoundEngine engine = MakeEngine(devices, registry);
  REQUIRE(engine.RunRound().value().status.ok());
  // Sent before round 2 starts, for round 2: it must not count as device 1's answer to it.
  devices.channel.Deliver(
      Message{.sender = ClientId{1}, .round = RoundId{2}, .body = Update({1000, 1000, 1000})},
      devices.clock.Now());
  CHECK(engine.AcceptRegistrations() == 1);
  const RoundReport report = engine.RunRound().value();
  REQUIRE(report.status.ok());
  CHECK(report.num_clients_reported == 3);
  CHECK(Weights(engine) == std::vector<float>{6, 6, 6});
}

}  // namespace
}  // namespace edgefl::coordinator

#include "edgefl/client/device_process.h"

#include <doctest/doctest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "edgefl/common/clock.h"
#include "edgefl/transport/zmq_channel.h"

namespace edgefl::client {
namespace {

using transport::Message;

// Routes spdlog's default logger into memory for the lifetime of the capture, so a test can read
// what an operator would see in the device's log.
class LogCapture {
 public:
  LogCapture()
      : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(kMaxLines)),
        previous_(spdlog::default_logger()) {
    sink_->set_pattern("%v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("capture", sink_));
  }
  ~LogCapture() { spdlog::set_default_logger(previous_); }

  // Lines containing `text`.
  std::vector<std::string> LinesWith(const std::string& text) const {
    std::vector<std::string> lines;
    for (std::string& line : sink_->last_formatted()) {
      if (line.find(text) != std::string::npos) lines.push_back(std::move(line));
    }
    return lines;
  }

 private:
  static constexpr size_t kMaxLines = 4096;  // far more than a test logs
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  std::shared_ptr<spdlog::logger> previous_;
};

// The number after "count=" in a warnings_suppressed line.
uint64_t CountIn(const std::string& line) {
  const size_t at = line.find("count=");
  REQUIRE(at != std::string::npos);
  return std::stoull(line.substr(at + 6));
}

// Waits up to 10 s (a loopback exchange takes milliseconds) for the next message.
Result<Message> ReceiveFrom(transport::ZmqCoordinatorChannel& channel, const Clock& clock) {
  return channel.Receive(clock.Now() + std::chrono::seconds(10));
}

TEST_CASE("a device flooded with stale messages logs the first in full and counts the rest" *
          doctest::test_suite("integration")) {
  LogCapture log;
  WallClock clock;
  auto created = transport::ZmqCoordinatorChannel::Create(
      {.endpoint = "tcp://127.0.0.1:*", .insecure_plaintext = true}, clock);
  REQUIRE(created.ok());
  transport::ZmqCoordinatorChannel& coordinator = **created;

  DeviceProcessOptions options{
      .channel = {.endpoint = coordinator.endpoint(), .insecure_plaintext = true}};
  HostTrainer host{.train = [](const TrainingRound&) -> Result<LocalUpdate> {
                     return LocalUpdate{.delta = std::vector<float>(4, 0.0f), .num_examples = 1};
                   },
                   .num_parameters = 4};
  std::atomic<bool> stop{false};
  Result<DeviceProcessStats> stats = InternalError("the device did not return");
  std::thread device([&] { stats = RunDeviceProcess(options, host, stop); });

  Result<Message> hello = ReceiveFrom(coordinator, clock);
  REQUIRE(hello.ok());
  REQUIRE(std::holds_alternative<transport::Hello>(hello->body));
  const ClientId id = hello->sender;
  const auto send = [&](RoundId round, transport::Body body) {
    REQUIRE(coordinator.Send(id, Message{.round = round, .body = std::move(body)}).ok());
  };
  send(RoundId{0}, transport::Welcome{.assigned_id = id, .num_parameters = 4});

  // Secure-aggregation steps of a round this device never started: each is answered with an
  // error reply, and each would be a warning.
  constexpr int kNumStale = 30;
  const auto flood_start = std::chrono::steady_clock::now();
  for (int i = 0; i < kNumStale; ++i) send(RoundId{9}, transport::SecAggPayload{});
  // Then a round the device must decline (3 weights for its 4): another kind of warning, which
  // the flood must not hide.
  auto three_weights = std::make_shared<const std::vector<float>>(3, 0.0f);
  send(RoundId{10}, transport::RoundStart{.global_weights = std::move(three_weights)});
  for (int i = 0; i < kNumStale + 1; ++i) {
    Result<Message> reply = ReceiveFrom(coordinator, clock);
    REQUIRE(reply.ok());
    REQUIRE(std::holds_alternative<transport::ErrorReply>(reply->body));
  }
  const auto flood_seconds = std::chrono::duration_cast<std::chrono::seconds>(
      std::chrono::steady_clock::now() - flood_start);
  send(RoundId{0}, transport::Goodbye{});
  device.join();
  REQUIRE(stats.ok());
  CHECK(stats->rounds_answered == 1);
  CHECK(stats->rounds_failed == 1);

  const std::vector<std::string> stale = log.LinesWith("event=round_error kind=secagg_rejected");
  REQUIRE(!stale.empty());
  CHECK(stale[0].find("round=9") != std::string::npos);
  CHECK(stale[0].find("no secure-aggregation session for round 9") != std::string::npos);
  // One full line per kind and 10 s window; the device exchanged everything within
  // `flood_seconds`, which on loopback is well under one window.
  CHECK(stale.size() <= 1 + static_cast<size_t>(flood_seconds.count() / 10));
  uint64_t num_suppressed = 0;
  for (const std::string& line : log.LinesWith("event=warnings_suppressed kind=secagg_rejected")) {
    CHECK(line.find("window_s=10") != std::string::npos);
    num_suppressed += CountIn(line);
  }
  // Nothing is lost: every stale message is either logged or counted in a summary (the last
  // one written when the run ends).
  CHECK(stale.size() + num_suppressed == kNumStale);

  const std::vector<std::string> declined = log.LinesWith("event=round_error kind=round_declined");
  REQUIRE(declined.size() == 1);
  CHECK(declined[0].find("round=10") != std::string::npos);
  CHECK(declined[0].find("global weights have 3 values") != std::string::npos);
  CHECK(log.LinesWith("event=warnings_suppressed kind=round_declined").empty());
}

}  // namespace
}  // namespace edgefl::client

#include "edgefl/client/device_process.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "edgefl/common/clock.h"

namespace edgefl::client {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(100);

}  // namespace

Result<DeviceProcessStats> RunDeviceProcess(const DeviceProcessOptions& options, LocalData data,
                                            Workspace& workspace, const std::atomic<bool>& stop,
                                            const std::function<void(uint64_t)>& on_round) {
  EDGEFL_RETURN_IF_ERROR(options.channel.Validate());
  if (data.dataset == nullptr || data.indices.empty()) {
    return InvalidArgumentError("the device has no local data");
  }
  WallClock clock;
  DeviceProcessStats stats;
  std::chrono::milliseconds backoff = options.initial_backoff;
  while (!stop.load()) {
    EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<transport::ZmqDeviceChannel> channel,
                            transport::ZmqDeviceChannel::Create(options.channel, clock));
    Device device(ClientId{0}, data);
    EDGEFL_RETURN_IF_ERROR(channel->Send(device.MakeHello(options.device_name)));
    ++stats.connections;
    Clock::Duration last_heard = clock.Now();
    bool welcomed = false;
    while (!stop.load()) {
      Result<transport::Message> message = channel->Receive(clock.Now() + kPoll);
      if (!message.ok()) {
        if (message.status().code() != StatusCode::kDeadlineExceeded) return message.status();
        if (clock.Now() - last_heard > options.silence_timeout) break;  // reconnect
        continue;
      }
      last_heard = clock.Now();
      if (const auto* welcome = std::get_if<transport::Welcome>(&message->body)) {
        device = Device(welcome->assigned_id, data);
        welcomed = true;
        backoff = options.initial_backoff;
        spdlog::info("event=welcome client={} parameters={}", welcome->assigned_id.value(),
                     welcome->num_parameters);
        continue;
      }
      if (std::holds_alternative<transport::Goodbye>(message->body)) {
        spdlog::info("event=goodbye rounds={}", stats.rounds_answered);
        return stats;
      }
      if (!welcomed) continue;
      const bool round_start = std::holds_alternative<transport::RoundStart>(message->body);
      for (transport::Message& reply : device.Handle(*message, workspace)) {
        Status sent = channel->Send(std::move(reply));
        if (!sent.ok()) spdlog::warn("event=send_failed reason=\"{}\"", sent.ToString());
      }
      if (round_start) {
        ++stats.rounds_answered;
        if (on_round) on_round(message->round.value());
        if (options.max_rounds > 0 && stats.rounds_answered >= options.max_rounds) return stats;
      }
    }
    if (stop.load()) break;
    spdlog::info("event=reconnect backoff_ms={}", backoff.count());
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, options.max_backoff);
  }
  return stats;
}

}  // namespace edgefl::client

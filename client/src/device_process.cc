#include "edgefl/client/device_process.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <thread>

#include "edgefl/common/clock.h"

namespace edgefl::client {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(100);

// The run loop of both overloads. `make_device` builds the device for an assigned id;
// `workspace` is null for a host-trainer device.
Result<DeviceProcessStats> RunLoop(const DeviceProcessOptions& options,
                                   const std::function<Device(ClientId)>& make_device,
                                   Workspace* workspace, const std::atomic<bool>& stop,
                                   const std::function<void(uint64_t)>& on_round) {
  WallClock clock;
  DeviceProcessStats stats;
  std::chrono::milliseconds backoff = options.initial_backoff;
  const auto enough_rounds = [&] {
    return options.max_rounds > 0 && stats.rounds_answered >= options.max_rounds;
  };
  // A device that reconnects asks for the id it had (Hello.requested_id), so a coordinator
  // that forgot it (a missed heartbeat under load, a restart) gives it back its identity, its
  // place in cohort selection and its secure-aggregation index, rather than a new id.
  ClientId last_assigned{0};
  while (!stop.load()) {
    EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<transport::ZmqDeviceChannel> channel,
                            transport::ZmqDeviceChannel::Create(options.channel, clock));
    Device device = make_device(ClientId{0});
    transport::Message hello = device.MakeHello(options.device_name);
    std::get<transport::Hello>(hello.body).requested_id = last_assigned.value();
    EDGEFL_RETURN_IF_ERROR(channel->Send(std::move(hello)));
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
        device = make_device(welcome->assigned_id);
        last_assigned = welcome->assigned_id;
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
      // Past max_rounds only the last round's secure-aggregation steps are still answered; a
      // RoundEnd or a new round means that round is over for this device (e.g. it was aborted).
      if (enough_rounds() && !std::holds_alternative<transport::SecAggPayload>(message->body)) {
        return stats;
      }
      const bool round_start = std::holds_alternative<transport::RoundStart>(message->body);
      std::vector<transport::Message> replies =
          workspace ? device.Handle(*message, *workspace) : device.Handle(*message);
      bool failed = false;
      for (transport::Message& reply : replies) {
        if (const auto* error = std::get_if<transport::ErrorReply>(&reply.body)) {
          failed = true;
          spdlog::warn("event=round_error round={} code={} reason=\"{}\"", reply.round.value(),
                       StatusCodeName(error->code), error->message);
        }
        Status sent = channel->Send(std::move(reply));
        if (!sent.ok()) spdlog::warn("event=send_failed reason=\"{}\"", sent.ToString());
      }
      if (round_start) {
        ++stats.rounds_answered;
        if (failed) ++stats.rounds_failed;
        if (on_round) on_round(message->round.value());
      }
      if (enough_rounds() && !device.in_secure_round()) return stats;
    }
    if (stop.load()) break;
    spdlog::info("event=reconnect backoff_ms={}", backoff.count());
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, options.max_backoff);
  }
  return stats;
}

}  // namespace

Result<DeviceProcessStats> RunDeviceProcess(const DeviceProcessOptions& options, LocalData data,
                                            Workspace& workspace, const std::atomic<bool>& stop,
                                            const std::function<void(uint64_t)>& on_round) {
  EDGEFL_RETURN_IF_ERROR(options.channel.Validate());
  if (data.dataset == nullptr || data.indices.empty()) {
    return InvalidArgumentError("the device has no local data");
  }
  return RunLoop(
      options, [&data](ClientId id) { return Device(id, data); }, &workspace, stop, on_round);
}

Result<DeviceProcessStats> RunDeviceProcess(const DeviceProcessOptions& options, HostTrainer host,
                                            const std::atomic<bool>& stop,
                                            const std::function<void(uint64_t)>& on_round) {
  EDGEFL_RETURN_IF_ERROR(options.channel.Validate());
  if (!host.train) return InvalidArgumentError("the host trainer has no train function");
  return RunLoop(
      options, [&host](ClientId id) { return Device(id, host); }, nullptr, stop, on_round);
}

}  // namespace edgefl::client

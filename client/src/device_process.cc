#include "edgefl/client/device_process.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <string_view>
#include <thread>

#include "edgefl/common/clock.h"
#include "edgefl/transport/log_limiter.h"

namespace edgefl::client {
namespace {

constexpr auto kPoll = std::chrono::milliseconds(100);

// The device's warnings about rounds it declines, messages it answers with an error and replies
// it cannot send. A coordinator (or whoever reaches its endpoint) that floods the device with
// stale or bad messages must not flood the log of a device in the field: per kind, the first
// warning of each window is logged in full and the rest only counted, then summed into one line
// once the window has ended (transport/log_limiter.h). Real rounds are minutes apart, so a
// device whose training fails every round still logs each failure in full.
class DeviceWarnings {
 public:
  static constexpr auto kWindow = std::chrono::seconds(10);

  explicit DeviceWarnings(const Clock& clock) : clock_(clock), limiter_(1, kWindow) {}
  // Whatever is still counted when the run ends is reported, its window ended or not, so the
  // last line of a run never hides a flood.
  ~DeviceWarnings() {
    try {
      Report(Clock::Duration::max());
    } catch (...) {
      // Out of memory or a failing sink on the way out: the counts are lost, nothing else is.
    }
  }
  DeviceWarnings(const DeviceWarnings&) = delete;
  DeviceWarnings& operator=(const DeviceWarnings&) = delete;

  // True when the caller should log this warning of `kind` (a fixed word, never peer input).
  bool Admit(std::string_view kind) { return limiter_.Admit(kind, clock_.Now()); }
  // One summary line per kind whose window has ended with warnings left out. Call often; it
  // costs nothing when there is nothing to report.
  void ReportSuppressed() { Report(clock_.Now()); }

 private:
  void Report(Clock::Duration now) {
    for (const transport::LogLimiter::Suppressed& s : limiter_.TakeSuppressed(now)) {
      spdlog::warn("event=warnings_suppressed kind={} count={} window_s={}", s.reason, s.count,
                   kWindow.count());
    }
  }

  const Clock& clock_;
  transport::LogLimiter limiter_;
};

// The kind of warning an error reply to `request` is logged under.
std::string_view ErrorKind(const transport::Message& request) {
  return std::holds_alternative<transport::RoundStart>(request.body) ? "round_declined"
                                                                     : "secagg_rejected";
}

// The run loop of both overloads. `make_device` builds the device for an assigned id;
// `workspace` is null for a host-trainer device.
Result<DeviceProcessStats> RunLoop(const DeviceProcessOptions& options,
                                   const std::function<Device(ClientId)>& make_device,
                                   Workspace* workspace, const std::atomic<bool>& stop,
                                   const std::function<void(uint64_t)>& on_round) {
  WallClock clock;
  DeviceWarnings warnings(clock);
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
      warnings.ReportSuppressed();
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
          const std::string_view kind = ErrorKind(*message);
          if (warnings.Admit(kind)) {
            spdlog::warn("event=round_error kind={} round={} code={} reason=\"{}\"", kind,
                         reply.round.value(), StatusCodeName(error->code), error->message);
          }
        }
        Status sent = channel->Send(std::move(reply));
        if (!sent.ok() && warnings.Admit("send_failed")) {
          spdlog::warn("event=send_failed reason=\"{}\"", sent.ToString());
        }
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

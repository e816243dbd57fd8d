// DeviceProcess: one device's run loop over ZeroMQ (`edgefl client`, the C API).
//
// Connects to the coordinator, says Hello, takes the id of the Welcome, then answers every
// coordinator message with client::Device (the same code the simulator runs) until the
// coordinator says Goodbye or `stop` is set. The device trains with the built-in trainer on
// LocalData and a Workspace, or with a HostTrainer the application supplies (device.h); a round
// the trainer declines or fails is answered with an ErrorReply and logged, and the process goes
// on to the next round. When the coordinator is silent for `silence_timeout` (no round, no
// welcome) it reconnects with a fresh channel and Hello, waiting `initial_backoff`, doubling up
// to `max_backoff`, between attempts. The new Hello asks for the id of the last Welcome
// (Hello.requested_id), so the device keeps its identity when the coordinator has a free slot
// for it (docs/protocol.md §11).
//
// Warnings are rate-limited per kind (round_declined, secagg_rejected, send_failed), so a flood
// of stale or bad messages cannot flood the log of a device in the field: the first of each
// 10 s is logged in full, the rest are counted and reported in one
// `event=warnings_suppressed kind=... count=N window_s=10` line once those 10 s have passed
// (and when the run returns).
//
// Thread-safety: RunDeviceProcess runs on the calling thread; `stop` may be set from a signal
// handler. The LocalData's dataset and the workspace are borrowed for the call; a HostTrainer
// is called on the calling thread.
//
//   DeviceProcessOptions options{.channel = {.endpoint = "tcp://10.0.0.1:7878", ...}};
//   Workspace workspace(std::move(model));
//   EDGEFL_RETURN_IF_ERROR(RunDeviceProcess(options, data, workspace, stop));
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "edgefl/client/device.h"
#include "edgefl/common/status.h"
#include "edgefl/transport/zmq_channel.h"

namespace edgefl::client {

struct DeviceProcessOptions {
  transport::ZmqDeviceOptions channel;
  std::string device_name = "device";
  // Reconnect after the coordinator has sent nothing for this long. Default 30 s.
  std::chrono::milliseconds silence_timeout{30000};
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{5000};
  // Rounds to answer before returning (0 = until Goodbye or stop). With secure aggregation the
  // device first finishes its part of the last round (through unmasking).
  uint64_t max_rounds = 0;
};

// What a run did, for logs and tests.
struct DeviceProcessStats {
  uint64_t rounds_answered = 0;  // RoundStarts handled
  uint64_t connections = 0;      // Hellos sent (1 + reconnects)
  uint64_t rounds_failed = 0;    // RoundStarts answered with an ErrorReply (part of answered)
};

// Runs the device until Goodbye, `stop`, or max_rounds. kInvalidArgument for bad options;
// channel errors from ZmqDeviceChannel::Create. `on_round` (optional) is called after each
// RoundStart is answered with the round number.
[[nodiscard]] Result<DeviceProcessStats> RunDeviceProcess(
    const DeviceProcessOptions& options, LocalData data, Workspace& workspace,
    const std::atomic<bool>& stop, const std::function<void(uint64_t round)>& on_round = {});

// The same with a trainer the host application supplies instead of the built-in one: no
// LocalData or Workspace. kInvalidArgument when `host.train` is empty; otherwise as above.
[[nodiscard]] Result<DeviceProcessStats> RunDeviceProcess(
    const DeviceProcessOptions& options, HostTrainer host, const std::atomic<bool>& stop,
    const std::function<void(uint64_t round)>& on_round = {});

}  // namespace edgefl::client

// Channel: how the coordinator and devices exchange Messages. One of the simulator's two seams
// (DESIGN.md): the round engine and the device runtime talk only through these interfaces, so
// the in-process channel (simulation, tests) and the ZeroMQ channel (deployment) are
// interchangeable.
//
// Thread-safety: each endpoint is driven by one thread.
//
//   EDGEFL_RETURN_IF_ERROR(channel.Send(client, msg));
//   Result<Message> in = channel.Receive(deadline);  // kDeadlineExceeded when time runs out
#pragma once

#include "edgefl/common/clock.h"
#include "edgefl/common/ids.h"
#include "edgefl/common/status.h"
#include "edgefl/transport/messages.h"

namespace edgefl::transport {

// The coordinator's end: one endpoint, many devices.
class CoordinatorChannel {
 public:
  virtual ~CoordinatorChannel() = default;
  // Queues `message` for device `to`. kNotFound for a device the channel does not know;
  // kUnavailable when the device is gone. Never blocks on the device.
  [[nodiscard]] virtual Status Send(ClientId to, Message message) = 0;
  // The next message from any device, waiting until `deadline` on the channel's clock.
  // kDeadlineExceeded when the deadline passes first. Malformed input is dropped (and logged)
  // by the channel, never returned.
  [[nodiscard]] virtual Result<Message> Receive(Clock::Duration deadline) = 0;
  // The clock deadlines refer to.
  virtual const Clock& clock() const = 0;
};

// A device's end.
class DeviceChannel {
 public:
  virtual ~DeviceChannel() = default;
  [[nodiscard]] virtual Status Send(Message message) = 0;
  [[nodiscard]] virtual Result<Message> Receive(Clock::Duration deadline) = 0;
  virtual const Clock& clock() const = 0;
};

}  // namespace edgefl::transport

// InProcessChannel: the coordinator's channel when coordinator and devices share a process
// (the simulator and tests). It is the in-process twin of the ZeroMQ channel: the same
// CoordinatorChannel interface, messages moved instead of encoded, and time from a
// VirtualClock.
//
// Messages to devices wait in an outbox until the device host takes them (TakeOutgoing); the
// host runs the devices and posts their replies with a simulated arrival time (Deliver).
// Receive returns replies in arrival order and moves the virtual clock to each arrival, so a
// round's simulated duration follows from the devices' timings. When nothing is ready,
// Receive calls the host's pump, which runs pending device work; this keeps the whole
// simulation on one driving thread (the pump may fan out to a thread pool internally).
//
// Thread-safety: one driving thread for every call, except that Deliver may be called from
// the pump's worker threads (it locks).
//
//   InProcessChannel channel(clock, [&] { return host.RunPending(); });
//   channel.Send(ClientId{3}, start);           // lands in the outbox
//   auto reply = channel.Receive(deadline);     // pumps the host until a reply is ready
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <queue>
#include <utility>
#include <vector>

#include "edgefl/common/clock.h"
#include "edgefl/transport/channel.h"

namespace edgefl::transport {

struct Addressed {
  ClientId to;
  Message message;
  Clock::Duration sent_at;  // virtual time of Send
};

class InProcessChannel final : public CoordinatorChannel {
 public:
  // `pump` runs pending device work when Receive finds nothing ready; it returns false when
  // there was nothing left to run. An empty pump means devices are driven from outside.
  explicit InProcessChannel(VirtualClock& clock, std::function<bool()> pump = {});

  // Always OK: the in-process outbox never refuses.
  Status Send(ClientId to, Message message) override;
  // The earliest-arriving reply at or before `deadline` (ties in delivery order), advancing
  // the clock to its arrival. kDeadlineExceeded when none will come by then; the clock then
  // moves to `deadline` unless it is Clock::Duration::max().
  Result<Message> Receive(Clock::Duration deadline) override;
  const Clock& clock() const override { return clock_; }

  // Device-host side. Removes and returns every message sent since the last call, in send
  // order.
  std::vector<Addressed> TakeOutgoing();
  // Posts a device's message to the coordinator, arriving at virtual time `arrival`.
  void Deliver(Message message, Clock::Duration arrival);
  size_t num_pending_outgoing() const { return outbox_.size(); }

 private:
  struct Arrival {
    Clock::Duration at;
    uint64_t sequence;
    Message message;
  };
  struct Later {
    bool operator()(const Arrival& a, const Arrival& b) const {
      return a.at != b.at ? a.at > b.at : a.sequence > b.sequence;
    }
  };

  VirtualClock& clock_;
  std::function<bool()> pump_;
  std::vector<Addressed> outbox_;
  std::mutex inbox_mutex_;
  std::priority_queue<Arrival, std::vector<Arrival>, Later> inbox_;
  uint64_t next_sequence_ = 0;
};

}  // namespace edgefl::transport

#include "edgefl/transport/in_process_channel.h"

namespace edgefl::transport {

InProcessChannel::InProcessChannel(VirtualClock& clock, std::function<bool()> pump)
    : clock_(clock), pump_(std::move(pump)) {}

Status InProcessChannel::Send(ClientId to, Message message) {
  outbox_.push_back(Addressed{to, std::move(message), clock_.Now()});
  return OkStatus();
}

std::vector<Addressed> InProcessChannel::TakeOutgoing() {
  std::vector<Addressed> taken;
  taken.swap(outbox_);
  return taken;
}

void InProcessChannel::Deliver(Message message, Clock::Duration arrival) {
  std::lock_guard<std::mutex> lock(inbox_mutex_);
  inbox_.push(Arrival{arrival, next_sequence_++, std::move(message)});
}

Result<Message> InProcessChannel::Receive(Clock::Duration deadline) {
  while (true) {
    {
      std::lock_guard<std::mutex> lock(inbox_mutex_);
      if (!inbox_.empty() && inbox_.top().at <= deadline) {
        // priority_queue::top is const; the element is popped right after, so moving is safe.
        Arrival next = std::move(const_cast<Arrival&>(inbox_.top()));
        inbox_.pop();
        clock_.AdvanceTo(next.at);
        return std::move(next.message);
      }
    }
    if (pump_ && pump_()) continue;
    if (deadline != Clock::Duration::max()) clock_.AdvanceTo(deadline);
    return DeadlineExceededError("no device message before the deadline");
  }
}

}  // namespace edgefl::transport

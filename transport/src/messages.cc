#include "edgefl/transport/messages.h"

namespace edgefl::transport {

MessageType TypeOf(const Body& body) {
  struct Visitor {
    MessageType operator()(const Hello&) const { return MessageType::kHello; }
    MessageType operator()(const Welcome&) const { return MessageType::kWelcome; }
    MessageType operator()(const RoundStart&) const { return MessageType::kRoundStart; }
    MessageType operator()(const Update&) const { return MessageType::kUpdate; }
    MessageType operator()(const RoundEnd&) const { return MessageType::kRoundEnd; }
    MessageType operator()(const Heartbeat&) const { return MessageType::kHeartbeat; }
    MessageType operator()(const ErrorReply&) const { return MessageType::kError; }
    MessageType operator()(const Goodbye&) const { return MessageType::kGoodbye; }
    MessageType operator()(const SecAggPayload&) const { return MessageType::kSecAgg; }
  };
  return std::visit(Visitor{}, body);
}

const char* MessageTypeName(MessageType type) {
  switch (type) {
    case MessageType::kHello: return "Hello";
    case MessageType::kWelcome: return "Welcome";
    case MessageType::kRoundStart: return "RoundStart";
    case MessageType::kUpdate: return "Update";
    case MessageType::kRoundEnd: return "RoundEnd";
    case MessageType::kHeartbeat: return "Heartbeat";
    case MessageType::kError: return "Error";
    case MessageType::kGoodbye: return "Goodbye";
    case MessageType::kSecAgg: return "SecAgg";
  }
  return "Unknown";
}

}  // namespace edgefl::transport

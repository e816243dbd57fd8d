// Size limits of the edgefl wire protocol (docs/protocol.md, "Limits").
//
// Every limit here is part of the protocol: a decoder refuses a frame that exceeds one before
// it allocates anything for it, and an encoder refuses to produce one. Changing a value changes
// what peers accept, so it goes with a note in docs/protocol.md.
// Plain constants; no state.
//
//   if (frame.size() > kEnvelopeHeaderBytes + MaxPayloadBytes(type)) return ...;
//   static_assert(kMaxNumWeights * sizeof(float) == kMaxWeightsBytes);
//   if (delta.size() > kMaxNumWeights) return ...;
#pragma once

#include <cstddef>
#include <cstdint>

#include "edgefl/transport/messages.h"

namespace edgefl::transport {

inline constexpr size_t kKiB = size_t{1} << 10;
inline constexpr size_t kMiB = size_t{1} << 20;

// The fixed envelope header: magic, version, type, round, sender, payload length.
inline constexpr size_t kEnvelopeHeaderBytes = 4 + 2 + 2 + 8 + 8 + 4;

// Text fields, in bytes (not characters).
inline constexpr size_t kMaxDeviceNameBytes = 256;      // Hello.device_name
inline constexpr size_t kMaxReasonBytes = 1 * kKiB;     // RoundEnd.reason
inline constexpr size_t kMaxErrorTextBytes = 1 * kKiB;  // ErrorReply.message

// Float vectors (RoundStart.global_weights, Update.delta): 64 MiB, i.e. 16 Mi floats, room for
// eight times the ~2 M trainable parameters of the largest model edgefl ships.
inline constexpr size_t kMaxWeightsBytes = 64 * kMiB;
inline constexpr size_t kMaxNumWeights = kMaxWeightsBytes / sizeof(float);

// Payload limits per message type (the bytes after the envelope header). The fixed-size fields
// of each type take far less; the slack lets a later protocol version append fields without
// moving the limits.
inline constexpr size_t kMaxHelloPayloadBytes = 4 * kKiB;
inline constexpr size_t kMaxWelcomePayloadBytes = 1 * kKiB;
inline constexpr size_t kMaxRoundStartPayloadBytes = kMaxWeightsBytes + 4 * kKiB;
inline constexpr size_t kMaxUpdatePayloadBytes = kMaxWeightsBytes + 4 * kKiB;
inline constexpr size_t kMaxRoundEndPayloadBytes = 4 * kKiB;
inline constexpr size_t kMaxHeartbeatPayloadBytes = 64;
inline constexpr size_t kMaxErrorPayloadBytes = 4 * kKiB;
inline constexpr size_t kMaxGoodbyePayloadBytes = 64;
// A masked input is one uint32 per weight; key directories and share relays are far smaller.
inline constexpr size_t kMaxSecAggPayloadBytes = kMaxWeightsBytes + 4 * kKiB;

// The payload limit of `type`; 0 for a value that names no message type.
constexpr size_t MaxPayloadBytes(MessageType type) {
  switch (type) {
    case MessageType::kHello:
      return kMaxHelloPayloadBytes;
    case MessageType::kWelcome:
      return kMaxWelcomePayloadBytes;
    case MessageType::kRoundStart:
      return kMaxRoundStartPayloadBytes;
    case MessageType::kUpdate:
      return kMaxUpdatePayloadBytes;
    case MessageType::kRoundEnd:
      return kMaxRoundEndPayloadBytes;
    case MessageType::kHeartbeat:
      return kMaxHeartbeatPayloadBytes;
    case MessageType::kError:
      return kMaxErrorPayloadBytes;
    case MessageType::kGoodbye:
      return kMaxGoodbyePayloadBytes;
    case MessageType::kSecAgg:
      return kMaxSecAggPayloadBytes;
  }
  return 0;
}

// The largest frame of any type; the ZeroMQ sockets refuse bigger frames before buffering them.
inline constexpr size_t kMaxFrameBytes = kEnvelopeHeaderBytes + kMaxUpdatePayloadBytes;

}  // namespace edgefl::transport

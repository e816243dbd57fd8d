// The wire codec: one Message <-> one frame of bytes in the versioned envelope of
// docs/protocol.md (28-byte little-endian header, then a Cereal portable-binary payload).
//
// Decode is the protocol's only door from the outside: it checks the header, the size limit of
// the message type (limits.h) and every length field against the bytes that remain before it
// allocates anything, and it refuses trailing bytes, so downstream code sees only well-formed
// Messages. It never throws and never aborts on any input. The encoding is canonical:
// Encode(Decode(frame)) reproduces `frame` byte for byte for every frame Decode accepts.
// Free functions with no state; safe from any thread.
//
//   EDGEFL_ASSIGN_OR_RETURN(std::vector<uint8_t> frame, Encode(message));
//   Result<Message> back = Decode(frame);  // kDataLoss, kInvalidArgument, kResourceExhausted
//   if (back.ok()) Handle(*back);
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "edgefl/common/ids.h"
#include "edgefl/common/status.h"
#include "edgefl/transport/limits.h"
#include "edgefl/transport/messages.h"

namespace edgefl::transport {

// The first four bytes of every frame: "EDFL".
inline constexpr std::array<uint8_t, 4> kEnvelopeMagic = {'E', 'D', 'F', 'L'};

// The envelope header, decoded. Fields in wire order.
struct EnvelopeHeader {
  uint16_t version = kProtocolVersion;
  MessageType type = MessageType::kHeartbeat;
  RoundId round;
  ClientId sender;
  uint32_t payload_bytes = 0;
};

// Encodes `message` into one frame, header and payload built in one buffer (no second copy).
// kInvalidArgument when a field exceeds its limit (a text longer than its kMax*Bytes, more
// than kMaxNumWeights floats); nothing else fails. A RoundStart with null global_weights is
// encoded with zero weights.
[[nodiscard]] Result<std::vector<uint8_t>> Encode(const Message& message);

// Decodes and checks only the envelope header of `frame`: magic, version, a known type, and a
// payload length within the type's limit that matches the frame's size exactly.
//   kDataLoss          fewer than kEnvelopeHeaderBytes, or the frame's size disagrees with
//                      the header's payload length (truncated or trailing bytes);
//   kInvalidArgument   wrong magic, unknown message type;
//   kUnimplemented     a protocol version other than kProtocolVersion;
//   kResourceExhausted the payload length exceeds MaxPayloadBytes(type).
[[nodiscard]] Result<EnvelopeHeader> DecodeHeader(std::span<const uint8_t> frame);

// Decodes a whole frame. The errors of DecodeHeader, and for the payload:
//   kDataLoss          a field runs past the end of the payload;
//   kInvalidArgument   the payload does not start with the little-endian marker 0x01, bytes
//                      remain after the last field, a text or float vector is longer than its
//                      limit, a StatusCode is out of range, Welcome.num_parameters exceeds
//                      kMaxNumWeights.
// NaN and infinite floats are accepted: the codec checks form, the round engine checks values.
// A decoded RoundStart always holds a new, non-null global_weights buffer.
[[nodiscard]] Result<Message> Decode(std::span<const uint8_t> frame);

}  // namespace edgefl::transport

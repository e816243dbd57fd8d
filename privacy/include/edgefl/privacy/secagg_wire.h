// The byte form of the secure-aggregation messages (secagg/messages.h), so that any Channel
// can carry them as an opaque payload: transport/ stays unaware of privacy/, and the sessions
// receive only messages that decoded with every count checked against the bytes present.
//
// Layout: little-endian; u32 counts precede every list; public keys 32 bytes, encrypted shares
// 116 bytes, revealed shares 40 bytes (docs/protocol.md, "Secure aggregation payloads").
// Stateless functions; thread-safe.
//
//   std::vector<uint8_t> bytes = EncodeSecAgg(masked_input_message);
//   EDGEFL_ASSIGN_OR_RETURN(SecAggMessage m, DecodeSecAgg(SecAggStep::kMaskedInput, bytes));
#pragma once

#include <cstdint>
#include <span>
#include <variant>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/privacy/secagg/messages.h"

namespace edgefl::privacy {

// Which message a payload holds. Values are on the wire: never renumber.
enum class SecAggStep : uint8_t {
  kAdvertiseKeys = 1,    // client -> server
  kKeyDirectory = 2,     // server -> client
  kShareKeys = 3,        // client -> server
  kShareKeysRelay = 4,   // server -> client
  kMaskedInput = 5,      // client -> server
  kUnmaskRequest = 6,    // server -> client
  kUnmaskResponse = 7,   // client -> server
};

using SecAggMessage =
    std::variant<secagg::AdvertiseKeysMessage, secagg::KeyDirectoryMessage,
                 secagg::ShareKeysMessage, secagg::ShareKeysRelayMessage,
                 secagg::MaskedInputMessage, secagg::UnmaskRequestMessage,
                 secagg::UnmaskResponseMessage>;

SecAggStep StepOf(const SecAggMessage& message);

std::vector<uint8_t> EncodeSecAgg(const SecAggMessage& message);

// kDataLoss naming the field when the bytes are truncated, carry trailing bytes, or hold a
// count larger than the bytes could contain; kInvalidArgument for an unknown step.
Result<SecAggMessage> DecodeSecAgg(SecAggStep step, std::span<const uint8_t> bytes);

}  // namespace edgefl::privacy

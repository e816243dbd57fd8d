#include "edgefl/privacy/secagg_wire.h"

#include <doctest/doctest.h>

#include "edgefl/common/random.h"

namespace edgefl::privacy {
namespace {

using namespace secagg;

std::vector<uint8_t> RandomBytes(size_t n, Rng& rng) {
  std::vector<uint8_t> b(n);
  for (uint8_t& x : b) x = static_cast<uint8_t>(rng.NextU64());
  return b;
}

std::vector<SecAggMessage> OneOfEach() {
  Rng rng(9);
  AdvertiseKeysMessage keys{.sender = 3,
                            .encryption_public_key = RandomBytes(kPublicKeyBytes, rng),
                            .mask_public_key = RandomBytes(kPublicKeyBytes, rng)};
  EncryptedShare share{.sender = 3, .recipient = 4,
                       .ciphertext = RandomBytes(kEncryptedShareBytes, rng)};
  return {keys,
          KeyDirectoryMessage{.recipient = 4, .neighbours = {keys, keys}},
          ShareKeysMessage{.sender = 3, .shares = {share}},
          ShareKeysRelayMessage{.recipient = 4, .shares = {share, share}},
          MaskedInputMessage{.sender = 3, .masked_input = {1, 0xffffffffu, 7}},
          UnmaskRequestMessage{.survivors = {0, 3}, .dropped = {1}},
          UnmaskResponseMessage{
              .sender = 3,
              .self_mask_shares = {{.owner = 0, .share = RandomBytes(kRevealedShareBytes, rng)}},
              .mask_key_shares = {{.owner = 1, .share = RandomBytes(kRevealedShareBytes, rng)}}}};
}

TEST_CASE("Every secure-aggregation message survives encoding unchanged") {
  for (const SecAggMessage& message : OneOfEach()) {
    const std::vector<uint8_t> bytes = EncodeSecAgg(message);
    Result<SecAggMessage> decoded = DecodeSecAgg(StepOf(message), bytes);
    REQUIRE(decoded.ok());
    CHECK(EncodeSecAgg(*decoded) == bytes);
    CHECK(decoded->index() == message.index());
  }
  // Pins the layout: sender, count, then the values, little-endian.
  CHECK(EncodeSecAgg(MaskedInputMessage{.sender = 2, .masked_input = {0x01020304}}) ==
        std::vector<uint8_t>{2, 0, 0, 0, 1, 0, 0, 0, 4, 3, 2, 1});
}

TEST_CASE("Truncated, padded and lying secure-aggregation payloads are refused") {
  for (const SecAggMessage& message : OneOfEach()) {
    const std::vector<uint8_t> bytes = EncodeSecAgg(message);
    for (size_t cut = 0; cut < bytes.size(); ++cut) {
      CHECK_FALSE(DecodeSecAgg(StepOf(message), std::span(bytes).first(cut)).ok());
    }
    std::vector<uint8_t> padded = bytes;
    padded.push_back(0);
    CHECK(DecodeSecAgg(StepOf(message), padded).status().code() == StatusCode::kDataLoss);
  }
  // A count of 2^32 - 1 masked values in a 12-byte payload is refused before allocating.
  std::vector<uint8_t> lying = {2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0};
  Status status = DecodeSecAgg(SecAggStep::kMaskedInput, lying).status();
  CHECK(status.code() == StatusCode::kDataLoss);
  CHECK(status.message().find("exceeds") != std::string::npos);
  CHECK(DecodeSecAgg(static_cast<SecAggStep>(99), lying).status().code() ==
        StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edgefl::privacy

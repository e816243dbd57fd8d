// The messages of the secure-aggregation protocol (Bonawitz et al. 2017, figure 4), as plain
// structs for transport/ to serialise. Clients are uint32 indices within the round's cohort;
// bytes are std::vector<uint8_t>, masked inputs std::vector<uint32_t> (values mod 2^32).
//
// Flow of one round (client -> server on the left, server -> client on the right):
//   0. AdvertiseKeysMessage                  KeyDirectoryMessage (per client: its neighbours)
//   1. ShareKeysMessage                      ShareKeysRelayMessage (per client: shares for it)
//   2. MaskedInputMessage                    UnmaskRequestMessage (broadcast)
//   3. UnmaskResponseMessage                 -> the server outputs the sum.
// Sizes are fixed by the protocol and checked by the receiving session before any use, so a
// decoder may pass these structs on as they came off the wire.
//
//   MaskedInputMessage m{.sender = 3, .masked_input = std::move(values)};
//   EDGEFL_RETURN_IF_ERROR(server.ReceiveMaskedInput(std::move(m)));
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace edgefl::privacy::secagg {

// X25519 public keys on the wire.
inline constexpr size_t kPublicKeyBytes = 32;
// An encrypted share: AES-256-GCM nonce || (sender, recipient, share of s, share of b) || tag.
inline constexpr size_t kEncryptedShareBytes = 12 + 8 + 2 * 40 + 16;  // 116
// A revealed Shamir share (the point x is the sender's index + 1).
inline constexpr size_t kRevealedShareBytes = 40;

// Step 0, client -> server: the client's two fresh X25519 public keys.
struct AdvertiseKeysMessage {
  uint32_t sender = 0;
  std::vector<uint8_t> encryption_public_key;  // c_pk: agrees share-encryption keys
  std::vector<uint8_t> mask_public_key;        // s_pk: agrees pairwise mask seeds
};

// Step 0, server -> one client: the keys of its neighbours that advertised (never its own).
struct KeyDirectoryMessage {
  uint32_t recipient = 0;
  std::vector<AdvertiseKeysMessage> neighbours;
};

// A share of the sender's mask key and self-mask seed, readable only by the recipient.
struct EncryptedShare {
  uint32_t sender = 0;
  uint32_t recipient = 0;
  std::vector<uint8_t> ciphertext;  // kEncryptedShareBytes
};

// Step 1, client -> server: one encrypted share per neighbour in the key directory.
struct ShareKeysMessage {
  uint32_t sender = 0;
  std::vector<EncryptedShare> shares;
};

// Step 1, server -> one client: the shares addressed to it by neighbours that shared keys.
struct ShareKeysRelayMessage {
  uint32_t recipient = 0;
  std::vector<EncryptedShare> shares;
};

// Step 2, client -> server: input + self mask + pairwise masks, mod 2^32.
struct MaskedInputMessage {
  uint32_t sender = 0;
  std::vector<uint32_t> masked_input;  // SecAggConfig::vector_length values
};

// Step 2, server -> clients in `survivors`: who sent a masked input and who dropped after
// sharing keys. Both ascending, disjoint.
struct UnmaskRequestMessage {
  std::vector<uint32_t> survivors;
  std::vector<uint32_t> dropped;
};

// One Shamir share a client reveals: of `owner`'s self-mask seed or of its mask key.
struct RevealedShare {
  uint32_t owner = 0;
  std::vector<uint8_t> share;  // kRevealedShareBytes
};

// Step 3, client -> server: shares of the self-mask seeds of survivors and of the mask keys of
// dropped clients, each for the sender's neighbours (and itself) only. Never both for one owner.
struct UnmaskResponseMessage {
  uint32_t sender = 0;
  std::vector<RevealedShare> self_mask_shares;
  std::vector<RevealedShare> mask_key_shares;
};

}  // namespace edgefl::privacy::secagg

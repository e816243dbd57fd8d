// Key derivation and share encoding shared by ClientSession and ServerSession. Private to
// privacy/src/secagg. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/ids.h"
#include "edgefl/common/status.h"
#include "edgefl/privacy/secagg/crypto.h"
#include "edgefl/privacy/secagg/messages.h"
#include "edgefl/privacy/secagg/shamir.h"

namespace edgefl::privacy::secagg::internal {

// Plaintext of an EncryptedShare: sender (LE u32) || recipient (LE u32) || share of the mask
// key || share of the self-mask seed. Bonawitz et al. 2017, figure 4, round 1: the identities
// inside the ciphertext let the recipient check the server did not swap shares around.
inline constexpr size_t kSharePlaintextBytes = 8 + 2 * kShamirShareBytes;
static_assert(kSharePlaintextBytes + kAesGcmOverheadBytes == kEncryptedShareBytes);
static_assert(kShamirShareBytes == kRevealedShareBytes);
static_assert(kX25519KeyBytes == kPublicKeyBytes);

using PairwiseSeed = SecretBytes<kPrgKeyBytes>;
using SelfMaskSeed = SecretBytes<kPrgSeedBytes>;
using ShareBytes = SecretBytes<kShamirShareBytes>;

void PutU32(uint32_t value, uint8_t* out);
uint32_t GetU32(const uint8_t* in);

// AES-256-GCM key for shares between a and b: HKDF-SHA256 over their X25519(c_sk, c_pk)
// secret, bound to the round and the unordered pair (both ends derive the same key; the
// associated data fixes the direction).
[[nodiscard]] Result<SecretBytes<kAesGcmKeyBytes>> DeriveShareKey(const SecretBytes<32>& shared,
                                                                  RoundId round, uint32_t a,
                                                                  uint32_t b);

// The pairwise mask seed s_{a,b} of Bonawitz et al. 2017 section 4: HKDF-SHA256 over
// X25519(s_sk_a, s_pk_b) = X25519(s_sk_b, s_pk_a), bound to the round and the unordered pair.
[[nodiscard]] Result<PairwiseSeed> DerivePairwiseSeed(const SecretBytes<32>& shared, RoundId round,
                                                      uint32_t a, uint32_t b);

// The associated data of an encrypted share: protocol label || round || sender || recipient.
std::vector<uint8_t> ShareAssociatedData(RoundId round, uint32_t sender, uint32_t recipient);

// Client `owner` adds +PRG(s_{owner,peer}) when owner < peer and -PRG otherwise, so each pair's
// masks cancel in the sum (Bonawitz et al. 2017, section 3).
inline MaskSign PairwiseSign(uint32_t owner, uint32_t peer) {
  return owner < peer ? MaskSign::kAdd : MaskSign::kSubtract;
}

// Copies a wire public key after checking its size.
[[nodiscard]] Result<X25519PublicKey> PublicKeyFromBytes(std::span<const uint8_t> bytes,
                                                         const char* what, uint32_t owner);

// Threads for an OpenMP loop of about `work_us` microseconds: max_threads, or OpenMP's default
// when 0; 1 inside a parallel region (nested calls stay serial and correct) and for loops too
// short to repay waking threads (under a millisecond).
int WorkerThreads(int max_threads, double work_us);

// Rough per-item costs for WorkerThreads, measured on a 2.1 GHz EPYC.
inline constexpr double kX25519Us = 40;
inline constexpr double kKdfAndAeadUs = 4;

// kAborted: the round cannot go on with this few participants. Names counts only.
Status BelowThreshold(const std::string& where, size_t have, uint32_t threshold);

}  // namespace edgefl::privacy::secagg::internal

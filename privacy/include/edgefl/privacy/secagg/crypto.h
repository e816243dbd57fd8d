// The cryptographic primitives of secure aggregation, on OpenSSL 3's EVP API: X25519 key
// agreement, HKDF-SHA256, the AES-128-CTR mask generator, AES-256-GCM for key shares, and the
// system CSPRNG. OpenSSL types stay in crypto.cc; this header speaks spans and SecretBytes.
//
// Every function is thread-safe (no shared mutable state; OpenSSL algorithm objects are fetched
// once and shared read-only). Failures of OpenSSL itself are kInternal.
//
//   EDGEFL_ASSIGN_OR_RETURN(X25519KeyPair mine, GenerateX25519KeyPair());
//   EDGEFL_ASSIGN_OR_RETURN(SecretBytes<32> shared, X25519Agree(mine.private_key, peer_public));
//   EDGEFL_RETURN_IF_ERROR(ApplyMasks(terms, masked_input, /*max_threads=*/0));
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/privacy/secagg/secret.h"

namespace edgefl::privacy::secagg {

inline constexpr size_t kX25519KeyBytes = 32;
inline constexpr size_t kAesGcmKeyBytes = 32;
inline constexpr size_t kAesGcmNonceBytes = 12;
inline constexpr size_t kAesGcmTagBytes = 16;
// A sealed message is nonce || ciphertext || tag.
inline constexpr size_t kAesGcmOverheadBytes = kAesGcmNonceBytes + kAesGcmTagBytes;
// A PRG seed is either an AES-128 key (counter block starts at 0) or key || initial counter
// block (big-endian 128-bit counter, as NIST SP 800-38A).
inline constexpr size_t kPrgKeyBytes = 16;
inline constexpr size_t kPrgSeedBytes = 32;

using X25519PublicKey = std::array<uint8_t, kX25519KeyBytes>;
using X25519PrivateKey = SecretBytes<kX25519KeyBytes>;

struct X25519KeyPair {
  X25519PrivateKey private_key;
  X25519PublicKey public_key{};
};

// Fills `out` from OpenSSL's CSPRNG (RAND_bytes). kInternal if the generator is not seeded.
[[nodiscard]] Status RandomBytes(std::span<uint8_t> out);

// A fresh X25519 key pair (RFC 7748) from the CSPRNG.
[[nodiscard]] Result<X25519KeyPair> GenerateX25519KeyPair();

// The public key of `private_key` (the private key is clamped as RFC 7748 section 5 says).
[[nodiscard]] Result<X25519PublicKey> X25519PublicKeyOf(const X25519PrivateKey& private_key);

// The raw X25519 shared secret of our private key and the peer's public key.
// kInvalidArgument when the peer key is a low-order point (the shared secret would be all
// zeros; RFC 7748 section 6.1 says to abort).
[[nodiscard]] Result<SecretBytes<32>> X25519Agree(const X25519PrivateKey& private_key,
                                                  std::span<const uint8_t, kX25519KeyBytes> peer);

// X25519 of one private key with many peers: shared[i] = X25519Agree(private_key, peers[i]).
// Sets the private key up once (a separate call pays for deriving its public key each time)
// and spreads the peers over up to `max_threads` OpenMP threads (0 = OpenMP's default; one
// thread inside a parallel region or for few peers). `shared` must have peers.size() entries
// (checked). kInvalidArgument naming the first low-order peer; `shared` is then wiped.
[[nodiscard]] Status X25519AgreeMany(const X25519PrivateKey& private_key,
                                     std::span<const X25519PublicKey> peers,
                                     std::span<SecretBytes<32>> shared, int max_threads = 0);

// HKDF-SHA256 (RFC 5869) extract-and-expand of `ikm` with `salt` (may be empty) and `info`
// into `out`. kInvalidArgument when out is empty or longer than 255 * 32 bytes.
[[nodiscard]] Status HkdfSha256(std::span<const uint8_t> ikm, std::span<const uint8_t> salt,
                                std::span<const uint8_t> info, std::span<uint8_t> out);

// AES-256-GCM encryption of `plaintext` bound to `associated_data`, with a fresh random nonce.
// Writes nonce || ciphertext || tag into `sealed`, which must hold exactly
// plaintext.size() + kAesGcmOverheadBytes bytes (kInvalidArgument otherwise).
[[nodiscard]] Status AesGcmSeal(const SecretBytes<kAesGcmKeyBytes>& key,
                                std::span<const uint8_t> plaintext,
                                std::span<const uint8_t> associated_data,
                                std::span<uint8_t> sealed);

// Inverse of AesGcmSeal into `plaintext` (exactly sealed.size() - kAesGcmOverheadBytes bytes,
// kInvalidArgument otherwise). kDataLoss when the tag does not verify (wrong key, tampered
// bytes or associated data); `plaintext` is then zeroed.
[[nodiscard]] Status AesGcmOpen(const SecretBytes<kAesGcmKeyBytes>& key,
                                std::span<const uint8_t> sealed,
                                std::span<const uint8_t> associated_data,
                                std::span<uint8_t> plaintext);

// The AES-128-CTR keystream of `seed` (kPrgKeyBytes or kPrgSeedBytes bytes, else
// kInvalidArgument), starting at byte `offset` (a multiple of 16, else kInvalidArgument).
[[nodiscard]] Status PrgKeystream(std::span<const uint8_t> seed, std::span<uint8_t> out,
                                  uint64_t offset = 0);

enum class MaskSign : uint8_t { kAdd, kSubtract };

// One PRG stream to fold into a vector. The seed span must stay valid during ApplyMasks.
struct MaskTerm {
  std::span<const uint8_t> seed;  // kPrgKeyBytes or kPrgSeedBytes
  MaskSign sign = MaskSign::kAdd;
};

// values[i] += sum over terms of (+/-) PRG(seed)[i] mod 2^32, where PRG(seed)[i] is the
// little-endian uint32 at byte 4i of PrgKeystream(seed). This is the whole cost of masking and
// unmasking (Bonawitz et al. 2017, section 4): the keystream is generated in L2-sized tiles and
// added in place, with OpenMP over tiles using at most `max_threads` threads (0 = OpenMP's
// default; one thread when called inside a parallel region). The result does not depend on the
// thread count. kInvalidArgument for a seed of the wrong size (values are then unchanged).
[[nodiscard]] Status ApplyMasks(std::span<const MaskTerm> terms, std::span<uint32_t> values,
                                int max_threads = 0);

}  // namespace edgefl::privacy::secagg

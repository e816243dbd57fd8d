// Shamir t-of-n secret sharing (Shamir 1979) of 32-byte secrets over GF(p), p = 2^61 - 1.
//
// A secret is cut into kShamirElements chunks of at most 7 bytes (56 bits < 61), each shared
// with its own random polynomial of degree t - 1; share i is the polynomials' values at the
// point x_i (secure aggregation uses x = client index + 1). Any t shares give the secret by
// Lagrange interpolation at 0; t - 1 shares say nothing about it. Functions are thread-safe;
// a ShamirReconstructor is a value used by one thread.
//
//   EDGEFL_ASSIGN_OR_RETURN(auto shares, ShamirSplit(secret, /*threshold=*/3, points));
//   EDGEFL_ASSIGN_OR_RETURN(SecretBytes<32> again, ShamirReconstruct(some_3_shares, 3));
//   EncodeShamirShare(shares[0], bytes);  // 40 bytes on the wire
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/privacy/secagg/secret.h"

namespace edgefl::privacy::secagg {

inline constexpr uint64_t kShamirPrime = (uint64_t{1} << 61) - 1;
inline constexpr size_t kShamirSecretBytes = 32;
inline constexpr size_t kShamirChunkBytes = 7;
inline constexpr size_t kShamirElements =
    (kShamirSecretBytes + kShamirChunkBytes - 1) / kShamirChunkBytes;  // 5
// A share's values as little-endian uint64s; the point x travels beside it.
inline constexpr size_t kShamirShareBytes = kShamirElements * 8;  // 40

using ShamirSecret = SecretBytes<kShamirSecretBytes>;

// One share: the point x (>= 1) and one field element per chunk of the secret.
// Individually worthless, but wipe shares of secrets you hold (SecureWipe) when done.
struct ShamirShare {
  uint32_t x = 0;
  std::array<uint64_t, kShamirElements> y{};
};

// Shares of `secret` at each of `points` (distinct, each >= 1), any `threshold` of which
// reconstruct it. kInvalidArgument when threshold is 0 or above points.size(), or a point is 0
// or repeated. Randomness from the CSPRNG (kInternal if it fails).
[[nodiscard]] Result<std::vector<ShamirShare>> ShamirSplit(const ShamirSecret& secret,
                                                           uint32_t threshold,
                                                           std::span<const uint32_t> points);

// The secret from the first `threshold` of `shares`. kInvalidArgument when fewer than
// `threshold` shares are given, threshold is 0, a point is 0 or repeated, or a value is not a
// field element. kDataLoss when the interpolated value is not the encoding of a secret (the
// shares belong to different secrets or were altered; caught with probability 1 - 2^-49).
// Shares of the wrong secret that happen to pass give a wrong secret: callers that can check
// the result (a public key) should.
[[nodiscard]] Result<ShamirSecret> ShamirReconstruct(std::span<const ShamirShare> shares,
                                                     uint32_t threshold);

// Like ShamirReconstruct, but keeps the Lagrange coefficients of the last set of points, so a
// server that reconstructs many secrets from shares held by the same clients pays the O(t^2)
// interpolation setup once.
class ShamirReconstructor {
 public:
  // Same contract as ShamirReconstruct.
  [[nodiscard]] Result<ShamirSecret> Reconstruct(std::span<const ShamirShare> shares,
                                                 uint32_t threshold);

 private:
  std::vector<uint32_t> points_;
  std::vector<uint64_t> coefficients_;
};

// Writes the share's values (not x) as kShamirShareBytes little-endian bytes.
void EncodeShamirShare(const ShamirShare& share, std::span<uint8_t, kShamirShareBytes> out);
// Reads values written by EncodeShamirShare and sets x. kInvalidArgument when a value is not a
// field element (>= p) or x is 0.
[[nodiscard]] Result<ShamirShare> DecodeShamirShare(uint32_t x, std::span<const uint8_t> bytes);

}  // namespace edgefl::privacy::secagg

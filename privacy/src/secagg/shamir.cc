// Shamir secret sharing over GF(2^61 - 1) (shamir.h).
//
// The Mersenne prime makes reduction two shifts and an add on the 122-bit product; the field
// holds 61 bits, so a 32-byte secret travels as 5 chunks of 7 bytes (the last of 4). Decoding
// checks that every interpolated chunk fits its byte length, which catches mixed or altered
// shares with probability 1 - 2^-(4*5+29).

#include "edgefl/privacy/secagg/shamir.h"

#include <algorithm>
#include <string>
#include <unordered_set>

#include "edgefl/privacy/secagg/crypto.h"

namespace edgefl::privacy::secagg {
namespace {

__extension__ typedef unsigned __int128 Uint128;

constexpr uint64_t kP = kShamirPrime;

uint64_t AddMod(uint64_t a, uint64_t b) {
  const uint64_t r = a + b;
  return r >= kP ? r - kP : r;
}

uint64_t SubMod(uint64_t a, uint64_t b) { return a >= b ? a - b : a + kP - b; }

uint64_t MulMod(uint64_t a, uint64_t b) {
  const Uint128 product = static_cast<Uint128>(a) * b;
  // 2^61 = 1 (mod p): fold the high bits onto the low ones.
  uint64_t r = (static_cast<uint64_t>(product) & kP) + static_cast<uint64_t>(product >> 61);
  r = (r & kP) + (r >> 61);
  return r >= kP ? r - kP : r;
}

uint64_t PowMod(uint64_t base, uint64_t exponent) {
  uint64_t result = 1;
  while (exponent != 0) {
    if (exponent & 1) result = MulMod(result, base);
    base = MulMod(base, base);
    exponent >>= 1;
  }
  return result;
}

// Fermat: a^(p-2) = a^-1 for a != 0.
uint64_t InvMod(uint64_t a) { return PowMod(a, kP - 2); }

size_t ChunkBytes(size_t chunk) {
  return std::min(kShamirChunkBytes, kShamirSecretBytes - chunk * kShamirChunkBytes);
}

// Uniform field elements from the CSPRNG: 61 random bits, rejecting the single value p.
Status RandomFieldElements(std::span<uint64_t> out) {
  EDGEFL_RETURN_IF_ERROR(
      RandomBytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(out.data()), out.size_bytes())));
  for (uint64_t& value : out) {
    value &= kP;
    while (value == kP) {
      uint64_t fresh = 0;
      EDGEFL_RETURN_IF_ERROR(
          RandomBytes(std::span<uint8_t>(reinterpret_cast<uint8_t*>(&fresh), sizeof(fresh))));
      value = fresh & kP;
    }
  }
  return OkStatus();
}

Status CheckPoints(std::span<const uint32_t> points) {
  std::unordered_set<uint32_t> seen;
  seen.reserve(points.size());
  for (uint32_t x : points) {
    if (x == 0) return InvalidArgumentError("Shamir point 0 would reveal the secret");
    if (!seen.insert(x).second) {
      return InvalidArgumentError("Shamir point " + std::to_string(x) + " appears twice");
    }
  }
  return OkStatus();
}

// Lagrange basis polynomials at 0: l_i(0) = prod_{j != i} x_j / (x_j - x_i).
std::vector<uint64_t> LagrangeAtZero(std::span<const uint32_t> points) {
  const size_t t = points.size();
  std::vector<uint64_t> coefficients(t);
  for (size_t i = 0; i < t; ++i) {
    uint64_t numerator = 1;
    uint64_t denominator = 1;
    for (size_t j = 0; j < t; ++j) {
      if (j == i) continue;
      numerator = MulMod(numerator, points[j]);
      denominator = MulMod(denominator, SubMod(points[j], points[i]));
    }
    coefficients[i] = MulMod(numerator, InvMod(denominator));
  }
  return coefficients;
}

}  // namespace

Result<std::vector<ShamirShare>> ShamirSplit(const ShamirSecret& secret, uint32_t threshold,
                                             std::span<const uint32_t> points) {
  if (threshold == 0 || threshold > points.size()) {
    return InvalidArgumentError("Shamir threshold " + std::to_string(threshold) +
                                " must be in [1, " + std::to_string(points.size()) + "]");
  }
  EDGEFL_RETURN_IF_ERROR(CheckPoints(points));
  // coefficients[e * t + k] is the x^k coefficient of chunk e's polynomial; k = 0 is the chunk.
  std::vector<uint64_t> coefficients(kShamirElements * threshold);
  Status status = RandomFieldElements(coefficients);
  if (status.ok()) {
    std::span<const uint8_t> bytes = secret.Reveal();
    for (size_t e = 0; e < kShamirElements; ++e) {
      uint64_t chunk = 0;
      for (size_t b = 0; b < ChunkBytes(e); ++b) {
        chunk |= uint64_t{bytes[e * kShamirChunkBytes + b]} << (8 * b);
      }
      coefficients[e * threshold] = chunk;
    }
  }
  std::vector<ShamirShare> shares;
  if (status.ok()) {
    shares.resize(points.size());
    for (size_t i = 0; i < points.size(); ++i) {
      shares[i].x = points[i];
      for (size_t e = 0; e < kShamirElements; ++e) {
        const uint64_t* c = coefficients.data() + e * threshold;
        uint64_t value = 0;
        for (size_t k = threshold; k-- > 0;) value = AddMod(MulMod(value, points[i]), c[k]);
        shares[i].y[e] = value;
      }
    }
  }
  SecureWipe(coefficients.data(), coefficients.size() * sizeof(uint64_t));
  if (!status.ok()) return status;
  return shares;
}

Result<ShamirSecret> ShamirReconstructor::Reconstruct(std::span<const ShamirShare> shares,
                                                      uint32_t threshold) {
  if (threshold == 0) return InvalidArgumentError("Shamir threshold 0");
  if (shares.size() < threshold) {
    return InvalidArgumentError("Shamir reconstruction needs " + std::to_string(threshold) +
                                " shares, got " + std::to_string(shares.size()));
  }
  shares = shares.first(threshold);
  std::vector<uint32_t> points(threshold);
  for (size_t i = 0; i < threshold; ++i) {
    points[i] = shares[i].x;
    for (uint64_t y : shares[i].y) {
      if (y >= kP) return InvalidArgumentError("Shamir share value is not a field element");
    }
  }
  if (points != points_) {
    EDGEFL_RETURN_IF_ERROR(CheckPoints(points));
    coefficients_ = LagrangeAtZero(points);
    points_ = std::move(points);
  }
  ShamirSecret secret;
  std::span<uint8_t> bytes = secret.MutableReveal();
  for (size_t e = 0; e < kShamirElements; ++e) {
    uint64_t chunk = 0;
    for (size_t i = 0; i < threshold; ++i) {
      chunk = AddMod(chunk, MulMod(coefficients_[i], shares[i].y[e]));
    }
    const size_t length = ChunkBytes(e);
    if ((chunk >> (8 * length)) != 0) {
      return DataLossError("Shamir shares do not interpolate to a valid secret (chunk " +
                           std::to_string(e) + " overflows " + std::to_string(length) + " bytes)");
    }
    for (size_t b = 0; b < length; ++b) {
      bytes[e * kShamirChunkBytes + b] = static_cast<uint8_t>(chunk >> (8 * b));
    }
  }
  return secret;
}

Result<ShamirSecret> ShamirReconstruct(std::span<const ShamirShare> shares, uint32_t threshold) {
  ShamirReconstructor reconstructor;
  return reconstructor.Reconstruct(shares, threshold);
}

void EncodeShamirShare(const ShamirShare& share, std::span<uint8_t, kShamirShareBytes> out) {
  for (size_t e = 0; e < kShamirElements; ++e) {
    for (size_t b = 0; b < 8; ++b) out[e * 8 + b] = static_cast<uint8_t>(share.y[e] >> (8 * b));
  }
}

Result<ShamirShare> DecodeShamirShare(uint32_t x, std::span<const uint8_t> bytes) {
  if (bytes.size() != kShamirShareBytes) {
    return InvalidArgumentError("Shamir share has " + std::to_string(bytes.size()) +
                                " bytes, expected " + std::to_string(kShamirShareBytes));
  }
  if (x == 0) return InvalidArgumentError("Shamir share at point 0");
  ShamirShare share;
  share.x = x;
  for (size_t e = 0; e < kShamirElements; ++e) {
    uint64_t value = 0;
    for (size_t b = 0; b < 8; ++b) value |= uint64_t{bytes[e * 8 + b]} << (8 * b);
    if (value >= kP) return InvalidArgumentError("Shamir share value is not a field element");
    share.y[e] = value;
  }
  return share;
}

}  // namespace edgefl::privacy::secagg

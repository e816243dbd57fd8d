#include "edgefl/privacy/noise.h"

#include <openssl/err.h>
#include <openssl/rand.h>

#include <cmath>
#include <cstring>
#include <string>

#include "edgefl/common/check.h"
#include "format.h"

namespace edgefl::privacy {
namespace {

// Bernoulli(p) for p in [0, 1]: P(Uniform01() < p) = ceil(p * 2^53) / 2^53, within 2^-53 of p.
bool SampleBernoulli(double p, Rng& rng) { return rng.Uniform01() < p; }

// CKS 2020, Algorithm 1 for gamma in [0, 1]: draw A_k ~ Bernoulli(gamma / k) for k = 1, 2, ...
// until the first A_k = 0; the index K of that failure is odd with probability exp(-gamma)
// (the alternating series of exp(-gamma) summed by the stopping rule).
bool SampleBernoulliExpUnit(double gamma, Rng& rng) {
  uint64_t k = 1;
  while (SampleBernoulli(gamma / static_cast<double>(k), rng)) ++k;
  return (k % 2) == 1;
}

}  // namespace

Result<uint64_t> SecureRandomSeed() {
  unsigned char bytes[sizeof(uint64_t)];
  if (RAND_bytes(bytes, static_cast<int>(sizeof(bytes))) != 1) {
    return InternalError("OpenSSL RAND_bytes failed: error " + std::to_string(ERR_get_error()));
  }
  uint64_t seed = 0;
  std::memcpy(&seed, bytes, sizeof(seed));
  return seed;
}

Result<Rng> MakeNoiseRng(NoiseSeeding seeding, uint64_t seed) {
  if (seeding == NoiseSeeding::kSecureRandom) {
    EDGEFL_ASSIGN_OR_RETURN(seed, SecureRandomSeed());
  }
  return Rng(seed);
}

Status AddGaussianNoise(std::span<float> values, double stddev, Rng& rng) {
  if (!std::isfinite(stddev) || stddev < 0.0) {
    return InvalidArgumentError("Gaussian noise stddev must be finite and >= 0, got " +
                                internal::FormatNumber(stddev));
  }
  if (stddev == 0.0) return OkStatus();
  for (float& v : values) {
    v = static_cast<float>(static_cast<double>(v) + stddev * rng.Normal());
  }
  return OkStatus();
}

bool SampleBernoulliExp(double gamma, Rng& rng) {
  EDGEFL_CHECK(std::isfinite(gamma) && gamma >= 0.0) << "gamma " << gamma;
  // exp(-gamma) = exp(-1)^floor(gamma) * exp(-(gamma - floor(gamma))): one Bernoulli(exp(-1))
  // per whole unit, stopping at the first failure, then the fractional part.
  double whole = std::floor(gamma);
  while (whole >= 1.0) {
    if (!SampleBernoulliExpUnit(1.0, rng)) return false;
    whole -= 1.0;
  }
  return SampleBernoulliExpUnit(gamma - std::floor(gamma), rng);
}

int64_t SampleDiscreteLaplace(int64_t scale, Rng& rng) {
  EDGEFL_CHECK(scale >= 1 && scale <= (int64_t{1} << 33)) << "scale " << scale;
  const double t = static_cast<double>(scale);
  while (true) {
    // X = U + t * V with U uniform on {0..t-1} accepted with probability exp(-U / t) and V
    // geometric with P(V = v) proportional to exp(-v): X is geometric with ratio exp(-1/t).
    const int64_t u = static_cast<int64_t>(rng.UniformInt(static_cast<uint64_t>(scale)));
    if (!SampleBernoulliExp(static_cast<double>(u) / t, rng)) continue;
    int64_t v = 0;
    while (SampleBernoulliExpUnit(1.0, rng)) ++v;
    const int64_t x = u + scale * v;
    // A random sign, rejecting "-0" so that zero is not counted twice.
    const bool negative = SampleBernoulli(0.5, rng);
    if (negative && x == 0) continue;
    return negative ? -x : x;
  }
}

int64_t SampleDiscreteGaussian(double sigma_sq, Rng& rng) {
  EDGEFL_CHECK(std::isfinite(sigma_sq) && sigma_sq >= 0.0 &&
               sigma_sq <= kMaxDiscreteGaussianSigma * kMaxDiscreteGaussianSigma)
      << "sigma_sq " << sigma_sq;
  if (sigma_sq == 0.0) return 0;
  const double sigma = std::sqrt(sigma_sq);
  const int64_t t = static_cast<int64_t>(std::floor(sigma)) + 1;
  const double td = static_cast<double>(t);
  while (true) {
    // CKS 2020, Algorithm 3: propose Y ~ DLap(t), accept with probability
    // exp(-(|Y| - sigma^2 / t)^2 / (2 sigma^2)). The expected number of proposals is below 2.
    const int64_t y = SampleDiscreteLaplace(t, rng);
    const double d = std::fabs(static_cast<double>(y)) - sigma_sq / td;
    if (SampleBernoulliExp(d * d / (2.0 * sigma_sq), rng)) return y;
  }
}

Status AddDiscreteGaussianNoise(std::span<uint32_t> encoded, double sigma, Rng& rng) {
  if (!std::isfinite(sigma) || sigma < 0.0 || sigma > kMaxDiscreteGaussianSigma) {
    return InvalidArgumentError("discrete Gaussian sigma must be in [0, 2^32], got " +
                                internal::FormatNumber(sigma));
  }
  if (sigma == 0.0) return OkStatus();
  const double sigma_sq = sigma * sigma;
  for (uint32_t& v : encoded) {
    // Conversion of a negative int64 to uint32 is reduction mod 2^32 (C++20), i.e. two's
    // complement, and unsigned addition wraps mod 2^32: v + noise in Z_2^32.
    v += static_cast<uint32_t>(SampleDiscreteGaussian(sigma_sq, rng));
  }
  return OkStatus();
}

}  // namespace edgefl::privacy

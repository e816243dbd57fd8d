// Noise for differential privacy: continuous Gaussian noise on float updates (central DP, added
// by the coordinator to the decoded sum) and exact discrete Gaussian noise on integers mod 2^32
// (distributed DP, added by each client to its encoded update before secure aggregation;
// Kairouz, Liu, Steinke 2021, "The Distributed Discrete Gaussian Mechanism").
//
// Randomness comes from an edgefl::Rng that the caller owns (one per thread; these functions
// are otherwise stateless and thread-safe). Rng is xoshiro256**, not a cryptographic
// generator: a seeded Rng makes simulations reproducible, MakeNoiseRng(kSecureRandom) seeds it
// from OpenSSL's RAND_bytes so the noise cannot be replayed from a config file. A production
// deployment of central DP should draw from a CSPRNG throughout and guard against
// floating-point attacks on the Gaussian (Mironov 2012); the discrete sampler below is exact
// up to the 2^-53 resolution of Rng::Uniform01 and has no such floating-point weakness.
//
//   EDGEFL_ASSIGN_OR_RETURN(Rng rng, privacy::MakeNoiseRng(privacy::NoiseSeeding::kSeeded, 7));
//   EDGEFL_RETURN_IF_ERROR(privacy::AddGaussianNoise(sum, noise_multiplier * clip_norm, rng));
//   EDGEFL_RETURN_IF_ERROR(privacy::AddDiscreteGaussianNoise(encoded, sigma_in_units, rng));
#pragma once

#include <cstdint>
#include <span>

#include "edgefl/common/random.h"
#include "edgefl/common/status.h"

namespace edgefl::privacy {

// Largest standard deviation accepted by the discrete Gaussian functions: noise wider than the
// ring Z_2^32 itself is a configuration error, not a privacy setting.
inline constexpr double kMaxDiscreteGaussianSigma = 4294967296.0;  // 2^32

enum class NoiseSeeding {
  kSeeded,        // Rng(seed): reproducible simulations and tests.
  kSecureRandom,  // Rng seeded with 64 bits from OpenSSL RAND_bytes; `seed` is ignored.
};

// 64 random bits from OpenSSL's RAND_bytes. kInternal if OpenSSL cannot provide them.
Result<uint64_t> SecureRandomSeed();

// An Rng for noise as `seeding` says. kInternal if kSecureRandom and RAND_bytes fails.
Result<Rng> MakeNoiseRng(NoiseSeeding seeding, uint64_t seed);

// Adds independent N(0, stddev^2) noise to every value (Rng::Normal, in double, rounded to
// float). stddev == 0 leaves `values` unchanged. kInvalidArgument if stddev is negative or not
// finite; `values` is then unchanged.
Status AddGaussianNoise(std::span<float> values, double stddev, Rng& rng);

// One draw of Bernoulli(exp(-gamma)) (Canonne, Kamath, Steinke 2020, Algorithm 1), using only
// Bernoulli(p) draws with p <= 1. Precondition (checked): gamma finite and >= 0.
bool SampleBernoulliExp(double gamma, Rng& rng);

// One draw of the discrete Laplace distribution P(x) proportional to exp(-|x| / scale) on the
// integers (CKS 2020, Algorithm 2). Precondition (checked): 1 <= scale <= 2^33.
int64_t SampleDiscreteLaplace(int64_t scale, Rng& rng);

// One draw of the discrete Gaussian N_Z(0, sigma_sq): P(x) proportional to
// exp(-x^2 / (2 sigma_sq)) on the integers, by rejection from the discrete Laplace with
// scale floor(sigma) + 1 (CKS 2020, Algorithm 3). Its mean is 0 and its variance is below
// sigma_sq, and within 1e-15 relative of it once sigma >= 1 (CKS 2020, Section 2).
// sigma_sq == 0 returns 0. Precondition (checked): sigma_sq finite, >= 0 and
// <= kMaxDiscreteGaussianSigma^2.
int64_t SampleDiscreteGaussian(double sigma_sq, Rng& rng);

// Adds independent discrete Gaussian noise N_Z(0, sigma^2) to every encoded value, modulo 2^32
// (wrapping is intended: the ring of the fixed-point encoding, encoding.h). sigma is in units
// of the encoding, i.e. float noise times the encoding scale. kInvalidArgument if sigma is
// negative, not finite or above kMaxDiscreteGaussianSigma; `encoded` is then unchanged.
Status AddDiscreteGaussianNoise(std::span<uint32_t> encoded, double sigma, Rng& rng);

}  // namespace edgefl::privacy

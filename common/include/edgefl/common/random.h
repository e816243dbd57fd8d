// Rng: a small, fast, seeded generator whose output is the same on every platform and
// standard library (std::normal_distribution is not), so a seed reproduces a whole experiment.
//
// xoshiro256** (Blackman & Vigna 2018) seeded through SplitMix64. Not for cryptography: keys
// and secure-aggregation masks come from OpenSSL in privacy/. One Rng per thread; not
// thread-safe. DeriveSeed gives independent streams, e.g. one per (round, client), so results
// do not depend on how work is spread over threads.
//
//   Rng rng(DeriveSeed(seed, round.value(), client.value()));
//   float x = rng.Normal();
//   size_t i = rng.UniformInt(n);
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <utility>

namespace edgefl {

// Mixes a base seed with any number of stream labels into a new 64-bit seed.
uint64_t DeriveSeed(uint64_t seed, std::initializer_list<uint64_t> labels);
inline uint64_t DeriveSeed(uint64_t seed, uint64_t a) { return DeriveSeed(seed, {a}); }
inline uint64_t DeriveSeed(uint64_t seed, uint64_t a, uint64_t b) { return DeriveSeed(seed, {a, b}); }

class Rng {
 public:
  explicit Rng(uint64_t seed);

  uint64_t NextU64();
  // Uniform in [0, 1) with 53 random bits.
  double Uniform01();
  // Uniform in [0, n) without modulo bias (Lemire 2019). Precondition: n > 0.
  uint64_t UniformInt(uint64_t n);
  // Standard normal (Marsaglia polar method, deterministic given the seed).
  double Normal();
  // Gamma(shape, 1) by Marsaglia & Tsang 2000; shape > 0. Used for Dirichlet draws.
  double Gamma(double shape);

  // Fisher-Yates shuffle.
  template <typename T>
  void Shuffle(std::span<T> values) {
    for (size_t i = values.size(); i > 1; --i) {
      std::swap(values[i - 1], values[UniformInt(i)]);
    }
  }

 private:
  uint64_t state_[4];
  bool has_spare_normal_ = false;
  double spare_normal_ = 0.0;
};

}  // namespace edgefl

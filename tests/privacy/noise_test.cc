#include "edgefl/privacy/noise.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <vector>

namespace edgefl::privacy {
namespace {

// Statistical checks allow 5 standard errors of the estimator: a correct sampler fails one
// with probability below 1e-6 (and the seeds are fixed, so the tests are deterministic).
constexpr double kStandardErrors = 5.0;

struct Moments {
  double mean = 0.0;
  double variance = 0.0;
};

Moments SampleMoments(const std::vector<double>& xs) {
  Moments m;
  for (double x : xs) m.mean += x;
  m.mean /= static_cast<double>(xs.size());
  for (double x : xs) m.variance += (x - m.mean) * (x - m.mean);
  m.variance /= static_cast<double>(xs.size() - 1);
  return m;
}

// Exact probabilities of N_Z(0, sigma^2) on [-limit, limit], normalised over a range where
// the remaining mass is below 1e-300.
std::map<int64_t, double> DiscreteGaussianPmf(double sigma, int64_t limit) {
  const auto range = static_cast<int64_t>(40.0 * sigma) + 40;
  double total = 0.0;
  for (int64_t x = -range; x <= range; ++x) {
    total += std::exp(-static_cast<double>(x * x) / (2.0 * sigma * sigma));
  }
  std::map<int64_t, double> pmf;
  for (int64_t x = -limit; x <= limit; ++x) {
    pmf[x] = std::exp(-static_cast<double>(x * x) / (2.0 * sigma * sigma)) / total;
  }
  return pmf;
}

// Exact variance and fourth moment of N_Z(0, sigma^2), by summing its probabilities.
Moments DiscreteGaussianMoments(double sigma, double* fourth_moment) {
  const auto range = static_cast<int64_t>(40.0 * sigma) + 40;
  double total = 0.0;
  double second = 0.0;
  double fourth = 0.0;
  for (int64_t x = -range; x <= range; ++x) {
    const double xd = static_cast<double>(x);
    const double p = std::exp(-xd * xd / (2.0 * sigma * sigma));
    total += p;
    second += xd * xd * p;
    fourth += xd * xd * xd * xd * p;
  }
  *fourth_moment = fourth / total;
  return {.mean = 0.0, .variance = second / total};
}

TEST_CASE("AddGaussianNoise adds zero-mean noise of the requested standard deviation") {
  constexpr size_t kSamples = 200000;
  constexpr double kStddev = 2.5;
  Rng rng(17);
  std::vector<float> values(kSamples, 1.0f);
  REQUIRE(AddGaussianNoise(values, kStddev, rng).ok());
  const Moments m = SampleMoments(std::vector<double>(values.begin(), values.end()));
  const double n = static_cast<double>(kSamples);
  CHECK(std::fabs(m.mean - 1.0) <= kStandardErrors * kStddev / std::sqrt(n));
  // The sample variance of a Gaussian has standard error sigma^2 sqrt(2 / n).
  CHECK(std::fabs(m.variance - kStddev * kStddev) <=
        kStandardErrors * kStddev * kStddev * std::sqrt(2.0 / n));
}

TEST_CASE("AddGaussianNoise is reproducible from a seed and rejects bad standard deviations") {
  std::vector<float> a(100, 0.0f);
  std::vector<float> b(100, 0.0f);
  Rng rng_a = MakeNoiseRng(NoiseSeeding::kSeeded, 42).value();
  Rng rng_b = MakeNoiseRng(NoiseSeeding::kSeeded, 42).value();
  REQUIRE(AddGaussianNoise(a, 1.0, rng_a).ok());
  REQUIRE(AddGaussianNoise(b, 1.0, rng_b).ok());
  CHECK(a == b);

  std::vector<float> c = a;
  REQUIRE(AddGaussianNoise(c, 0.0, rng_a).ok());
  CHECK(c == a);
  for (double bad :
       {-1.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    CHECK(AddGaussianNoise(c, bad, rng_a).code() == StatusCode::kInvalidArgument);
  }
  CHECK(c == a);
}

TEST_CASE("Securely seeded noise generators differ from one another") {
  Result<uint64_t> s1 = SecureRandomSeed();
  Result<uint64_t> s2 = SecureRandomSeed();
  REQUIRE(s1.ok());
  REQUIRE(s2.ok());
  CHECK(*s1 != *s2);  // equal with probability 2^-64
  Rng a = MakeNoiseRng(NoiseSeeding::kSecureRandom, 1).value();
  Rng b = MakeNoiseRng(NoiseSeeding::kSecureRandom, 1).value();
  CHECK(a.NextU64() != b.NextU64());
}

TEST_CASE("SampleBernoulliExp succeeds with probability exp(-gamma)") {
  constexpr int kDraws = 100000;
  Rng rng(19);
  for (double gamma : {0.0, 0.3, 1.0, 2.5, 7.0}) {
    int successes = 0;
    for (int k = 0; k < kDraws; ++k) successes += SampleBernoulliExp(gamma, rng) ? 1 : 0;
    const double p = std::exp(-gamma);
    const double tolerance = kStandardErrors * std::sqrt(p * (1.0 - p) / kDraws) + 1e-12;
    CHECK(std::fabs(successes / static_cast<double>(kDraws) - p) <= tolerance);
  }
}

TEST_CASE("SampleDiscreteLaplace has the variance of the two-sided geometric distribution") {
  constexpr int kDraws = 100000;
  Rng rng(23);
  for (int64_t scale : {1, 3, 40}) {
    std::vector<double> xs(kDraws);
    for (double& x : xs) x = static_cast<double>(SampleDiscreteLaplace(scale, rng));
    const Moments m = SampleMoments(xs);
    // P(x) ∝ r^|x| with r = exp(-1/t): variance 2r / (1 - r)^2; fourth moment below 24 t^4,
    // so the variance's standard error is below 5 t^2 / sqrt(n).
    const double r = std::exp(-1.0 / static_cast<double>(scale));
    const double variance = 2.0 * r / ((1.0 - r) * (1.0 - r));
    CHECK(std::fabs(m.mean) <= kStandardErrors * std::sqrt(variance / kDraws));
    CHECK(std::fabs(m.variance - variance) <=
          kStandardErrors * 5.0 * static_cast<double>(scale * scale) / std::sqrt(kDraws) +
              kStandardErrors * variance * std::sqrt(2.0 / kDraws));
  }
}

TEST_CASE(
    "SampleDiscreteGaussian matches the mean, variance and probabilities of N_Z(0, sigma^2)") {
  constexpr int kDraws = 100000;
  const double n = static_cast<double>(kDraws);
  Rng rng(29);
  for (double sigma : {0.5, 1.5, 7.0, 1000.0}) {
    std::vector<double> xs(kDraws);
    std::map<int64_t, int> counts;
    int64_t positive = 0;
    int64_t negative = 0;
    for (double& x : xs) {
      const int64_t y = SampleDiscreteGaussian(sigma * sigma, rng);
      x = static_cast<double>(y);
      ++counts[y];
      positive += y > 0 ? 1 : 0;
      negative += y < 0 ? 1 : 0;
    }
    const Moments m = SampleMoments(xs);
    double fourth = 0.0;
    const double variance = DiscreteGaussianMoments(sigma, &fourth).variance;
    CAPTURE(sigma);
    CHECK(variance <=
          sigma * sigma * (1.0 + 1e-12));  // CKS 2020: below sigma^2, equal in the limit
    CHECK(std::fabs(m.mean) <= kStandardErrors * std::sqrt(variance / n));
    // The sample variance has standard error sqrt((E[x^4] - variance^2) / n).
    CHECK(std::fabs(m.variance - variance) <=
          kStandardErrors * std::sqrt((fourth - variance * variance) / n));
    // Symmetric: as many positive as negative draws, within 5 standard errors.
    const double nonzero = static_cast<double>(positive + negative);
    CHECK(std::fabs(static_cast<double>(positive - negative)) <=
          kStandardErrors * std::sqrt(nonzero));
    if (sigma < 10.0) {
      for (const auto& [x, p] : DiscreteGaussianPmf(sigma, 3)) {
        CAPTURE(x);
        CHECK(std::fabs(counts[x] / n - p) <= kStandardErrors * std::sqrt(p * (1.0 - p) / n));
      }
    }
  }
  CHECK(SampleDiscreteGaussian(0.0, rng) == 0);
}

TEST_CASE("AddDiscreteGaussianNoise adds integer noise modulo 2^32") {
  constexpr size_t kSize = 20000;
  constexpr double kSigma = 50.0;
  Rng rng(31);
  std::vector<uint32_t> encoded(kSize, 0u);
  REQUIRE(AddDiscreteGaussianNoise(encoded, kSigma, rng).ok());
  // Negative noise wraps to the top of the ring and reads back as a small negative int32.
  double sum = 0.0;
  size_t wrapped = 0;
  for (uint32_t e : encoded) {
    const auto signed_value = static_cast<int32_t>(e);
    CHECK(std::abs(signed_value) < 20 * kSigma);
    wrapped += e >= 0x80000000u ? 1 : 0;
    sum += signed_value;
  }
  CHECK(wrapped > kSize / 3);
  CHECK(std::fabs(sum / kSize) <= kStandardErrors * kSigma / std::sqrt(kSize));

  // Reproducible from a seed, and the exact noise values are added mod 2^32.
  std::vector<uint32_t> near_top(4, 0xFFFFFFF0u);
  Rng a(5);
  Rng b(5);
  REQUIRE(AddDiscreteGaussianNoise(near_top, 3.0, a).ok());
  for (uint32_t e : near_top) {
    CHECK(e == static_cast<uint32_t>(0xFFFFFFF0u +
                                     static_cast<uint32_t>(SampleDiscreteGaussian(9.0, b))));
  }

  std::vector<uint32_t> untouched(3, 7u);
  REQUIRE(AddDiscreteGaussianNoise(untouched, 0.0, rng).ok());
  CHECK(untouched == std::vector<uint32_t>(3, 7u));
  for (double bad : {-1.0, 1e10, std::numeric_limits<double>::quiet_NaN()}) {
    CHECK(AddDiscreteGaussianNoise(untouched, bad, rng).code() == StatusCode::kInvalidArgument);
  }
  CHECK(untouched == std::vector<uint32_t>(3, 7u));
}

}  // namespace
}  // namespace edgefl::privacy

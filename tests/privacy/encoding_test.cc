#include "edgefl/privacy/encoding.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "edgefl/common/random.h"

namespace edgefl::privacy {
namespace {

// A decoded value is rounded to float once: half an ulp, at most |x| * 2^-24.
double FloatRounding(double x) { return std::fabs(x) * 0x1.0p-24; }

std::vector<float> UniformValues(size_t size, double bound, Rng& rng) {
  std::vector<float> values(size);
  for (float& v : values) v = static_cast<float>(bound * (2.0 * rng.Uniform01() - 1.0));
  return values;
}

TEST_CASE("Encode then Decode returns each value within 1/scale") {
  Rng rng(3);
  for (double scale : {1.0, 1000.3, 1048576.0}) {
    for (size_t size : {0, 1, 7, 1027}) {
      const std::vector<float> values = UniformValues(size, 100.0, rng);
      std::vector<uint32_t> encoded(size);
      REQUIRE(Encode(values, scale, rng, encoded).ok());
      std::vector<float> decoded(size);
      REQUIRE(Decode(encoded, scale, decoded).ok());
      for (size_t i = 0; i < size; ++i) {
        CHECK(std::fabs(decoded[i] - values[i]) <= 1.0 / scale + FloatRounding(values[i]));
      }
    }
  }
}

TEST_CASE("Encode stores integers exactly and negatives as two's complement") {
  Rng rng(5);
  const std::vector<float> values = {-1.0f, 2.0f, 0.0f, -2147483.0f};
  std::vector<uint32_t> encoded(values.size());
  REQUIRE(Encode(values, 1.0, rng, encoded).ok());
  CHECK(encoded == std::vector<uint32_t>{0xFFFFFFFFu, 2u, 0u, 0xFFDF3B65u});
}

TEST_CASE("The sum of n encodings decodes to the float sum within n/scale") {
  constexpr uint64_t kClients = 50;
  constexpr size_t kSize = 1000;
  constexpr double kClipNorm = 1.0;
  Rng rng(7);
  Result<double> scale = ChooseEncodingScale(kClipNorm, kClients, 0.0, 0);
  REQUIRE(scale.ok());
  std::vector<uint32_t> sum(kSize, 0);
  std::vector<double> expected(kSize, 0.0);
  std::vector<uint32_t> encoded(kSize);
  for (uint64_t c = 0; c < kClients; ++c) {
    const std::vector<float> update = UniformValues(kSize, kClipNorm, rng);
    REQUIRE(Encode(update, *scale, rng, encoded).ok());
    for (size_t i = 0; i < kSize; ++i) {
      sum[i] += encoded[i];  // mod 2^32, as secure aggregation adds
      expected[i] += update[i];
    }
  }
  std::vector<float> decoded(kSize);
  REQUIRE(Decode(sum, *scale, decoded).ok());
  for (size_t i = 0; i < kSize; ++i) {
    CHECK(std::fabs(decoded[i] - expected[i]) <=
          static_cast<double>(kClients) / *scale + FloatRounding(expected[i]));
  }
}

TEST_CASE("ChooseEncodingScale leaves no room for the worst-case cohort sum to wrap") {
  struct Case {
    double clip_norm;
    uint64_t num_clients;
    double noise_stddev;
    int headroom_bits;
  };
  for (const Case& c : {Case{1.0, 1, 0.0, 0}, Case{1.0, 1000, 0.0, 0}, Case{0.1, 100, 2.0, 1},
                        Case{10.0, 100000, 50.0, 4}, Case{1.0, 3, 0.0, 28}}) {
    Result<double> scale =
        ChooseEncodingScale(c.clip_norm, c.num_clients, c.noise_stddev, c.headroom_bits);
    REQUIRE(scale.ok());
    const double n = static_cast<double>(c.num_clients);
    const double worst =
        n * (c.clip_norm * *scale + 1.0) + kNoiseTailStddevs * c.noise_stddev * *scale;
    CHECK(worst <= std::ldexp(1.0, 31 - c.headroom_bits) - 1.0 + 1e-6);
    CHECK(worst >= 0.999 * (std::ldexp(1.0, 31 - c.headroom_bits) - 1.0));  // and it is tight
  }

  // Every client at +clip (then every client at -clip) decodes without wrapping.
  constexpr uint64_t kClients = 1000;
  Rng rng(9);
  const double scale = ChooseEncodingScale(1.0, kClients, 0.0, 0).value();
  for (float sign : {1.0f, -1.0f}) {
    const std::vector<float> update = {sign * 1.0f};
    std::vector<uint32_t> encoded(1);
    uint32_t sum = 0;
    for (uint64_t c = 0; c < kClients; ++c) {
      REQUIRE(Encode(update, scale, rng, encoded).ok());
      sum += encoded[0];
    }
    std::vector<float> decoded(1);
    REQUIRE(Decode(std::span<const uint32_t>(&sum, 1), scale, decoded).ok());
    CHECK(decoded[0] == doctest::Approx(sign * 1000.0).epsilon(1e-6));
  }
}

TEST_CASE("Stochastic rounding is unbiased") {
  constexpr int kDraws = 100000;
  Rng rng(13);
  for (float x : {0.3f, -2.7f, 0.999f}) {
    const std::vector<float> values(kDraws, x);
    std::vector<uint32_t> encoded(kDraws);
    REQUIRE(Encode(values, 1.0, rng, encoded).ok());
    double mean = 0.0;
    for (uint32_t e : encoded) mean += static_cast<int32_t>(e);
    mean /= kDraws;
    // Each draw is floor(x) + Bernoulli(frac(x)): 5 standard errors of that Bernoulli mean.
    const double frac = x - std::floor(x);
    const double tolerance = 5.0 * std::sqrt(frac * (1.0 - frac) / kDraws);
    CHECK(std::fabs(mean - x) <= tolerance);
  }
}

TEST_CASE("Encoding rejects bad scales, sizes, NaN and values that do not fit") {
  Rng rng(1);
  std::vector<float> values = {1.0f, 2.0f};
  std::vector<uint32_t> encoded(2);
  std::vector<float> decoded(2);
  CHECK(Encode(values, 0.0, rng, encoded).code() == StatusCode::kInvalidArgument);
  CHECK(Encode(values, std::numeric_limits<double>::infinity(), rng, encoded).code() ==
        StatusCode::kInvalidArgument);
  std::vector<uint32_t> short_out(1);
  CHECK(Encode(values, 1.0, rng, short_out).code() == StatusCode::kInvalidArgument);
  values[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK(Encode(values, 1.0, rng, encoded).message() == "value 1 to encode is NaN");
  values[1] = 3e9f;
  CHECK(Encode(values, 1.0, rng, encoded).code() == StatusCode::kOutOfRange);
  values[1] = -1.0f;
  CHECK(Encode(values, 2147483648.0, rng, encoded).code() == StatusCode::kOutOfRange);
  CHECK(Decode(encoded, -1.0, decoded).code() == StatusCode::kInvalidArgument);
  CHECK(Decode(short_out, 1.0, decoded).code() == StatusCode::kInvalidArgument);

  CHECK(ChooseEncodingScale(0.0, 10, 0.0, 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(ChooseEncodingScale(1.0, 0, 0.0, 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(ChooseEncodingScale(1.0, 10, -1.0, 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(ChooseEncodingScale(1.0, 10, 0.0, 31).status().code() == StatusCode::kInvalidArgument);
  CHECK(ChooseEncodingScale(1.0, 10, 0.0, 30).status().code() == StatusCode::kOutOfRange);
}

}  // namespace
}  // namespace edgefl::privacy

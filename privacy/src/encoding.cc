#include "edgefl/privacy/encoding.h"

#include <cmath>
#include <string>

#include "format.h"

namespace edgefl::privacy {
namespace {

// Largest |x * scale| accepted by Encode: after rounding up by at most 1 the magnitude is at
// most 2^31 - 1, which int32 holds on both sides.
constexpr double kMaxEncodedMagnitude = 2147483647.0 - 1.0;

Status CheckScale(double scale) {
  if (!std::isfinite(scale) || scale <= 0.0) {
    return InvalidArgumentError("encoding scale must be finite and > 0, got " +
                                internal::FormatNumber(scale));
  }
  return OkStatus();
}

}  // namespace

Status Encode(std::span<const float> values, double scale, Rng& rng, std::span<uint32_t> out) {
  EDGEFL_RETURN_IF_ERROR(CheckScale(scale));
  if (out.size() != values.size()) {
    return InvalidArgumentError("encoding output has " + std::to_string(out.size()) +
                                " words for " + std::to_string(values.size()) + " values");
  }
  for (size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      return InvalidArgumentError("value " + std::to_string(i) + " to encode is " +
                                  (std::isnan(values[i]) ? "NaN" : "Inf"));
    }
    const double v = static_cast<double>(values[i]) * scale;
    if (std::fabs(v) >= kMaxEncodedMagnitude) {
      return OutOfRangeError("value " + std::to_string(i) + " = " +
                             internal::FormatNumber(values[i]) + " times scale " +
                             internal::FormatNumber(scale) +
                             " does not fit in a signed 32-bit integer");
    }
    // Stochastic rounding: E[r] = floor(v) + (v - floor(v)) = v.
    const double lower = std::floor(v);
    const double r = lower + (rng.Uniform01() < v - lower ? 1.0 : 0.0);
    // int64 -> uint32 reduces mod 2^32: two's complement for negative r.
    out[i] = static_cast<uint32_t>(static_cast<int64_t>(r));
  }
  return OkStatus();
}

Status Decode(std::span<const uint32_t> sum, double scale, std::span<float> out) {
  EDGEFL_RETURN_IF_ERROR(CheckScale(scale));
  if (out.size() != sum.size()) {
    return InvalidArgumentError("decoding output has " + std::to_string(out.size()) +
                                " values for " + std::to_string(sum.size()) + " words");
  }
  for (size_t i = 0; i < sum.size(); ++i) {
    // uint32 -> int32 is reduction into [-2^31, 2^31) (C++20): the centred representative.
    out[i] = static_cast<float>(static_cast<double>(static_cast<int32_t>(sum[i])) / scale);
  }
  return OkStatus();
}

Result<double> ChooseEncodingScale(double clip_norm, uint64_t num_clients, double noise_stddev,
                                   int headroom_bits) {
  if (!std::isfinite(clip_norm) || clip_norm <= 0.0) {
    return InvalidArgumentError("clip_norm must be finite and > 0, got " +
                                internal::FormatNumber(clip_norm));
  }
  if (num_clients == 0) return InvalidArgumentError("num_clients must be > 0");
  if (!std::isfinite(noise_stddev) || noise_stddev < 0.0) {
    return InvalidArgumentError("noise_stddev must be finite and >= 0, got " +
                                internal::FormatNumber(noise_stddev));
  }
  if (headroom_bits < 0 || headroom_bits > 30) {
    return InvalidArgumentError("headroom_bits must be in [0, 30], got " +
                                std::to_string(headroom_bits));
  }
  const double n = static_cast<double>(num_clients);
  const double budget = std::ldexp(1.0, 31 - headroom_bits) - 1.0 - n;
  if (budget <= 0.0) {
    return OutOfRangeError(std::to_string(num_clients) + " clients leave no room in 2^" +
                           std::to_string(31 - headroom_bits) +
                           " for the rounding of their encodings; lower headroom_bits");
  }
  const double scale = budget / (n * clip_norm + kNoiseTailStddevs * noise_stddev);
  if (!std::isfinite(scale) || scale <= 0.0) {
    return OutOfRangeError("no encoding scale fits clip_norm " + internal::FormatNumber(clip_norm) +
                           " for " + std::to_string(num_clients) + " clients");
  }
  return scale;
}

}  // namespace edgefl::privacy

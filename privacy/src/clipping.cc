#include "edgefl/privacy/clipping.h"

#include <cmath>
#include <string>

#include "format.h"

namespace edgefl::privacy {
namespace {

// Rounding budget of the scaled update. The norm is a double sum of squares, relative error at
// most n * 2^-53 / 2 (<= 2^-24 for n <= 2^30 values), and each float product x * s is rounded
// to nearest, relative error at most 2^-24. Shrinking the scale by 2^-21 covers both with room
// to spare, so the clipped update's norm never exceeds clip_norm: the sensitivity that the
// noise is calibrated to holds exactly, at a cost of one part in two million of the update.
constexpr double kClipSafetyFactor = 1.0 - 0x1.0p-21;

}  // namespace

double L2Norm(std::span<const float> values) {
  double sum_sq = 0.0;
  for (float v : values) sum_sq += static_cast<double>(v) * static_cast<double>(v);
  return std::sqrt(sum_sq);
}

Result<double> ClipToNorm(std::span<float> update, double clip_norm) {
  if (!std::isfinite(clip_norm) || clip_norm <= 0.0) {
    return InvalidArgumentError("clip_norm must be finite and > 0, got " +
                                internal::FormatNumber(clip_norm));
  }
  for (size_t i = 0; i < update.size(); ++i) {
    if (!std::isfinite(update[i])) {
      return InvalidArgumentError("update value " + std::to_string(i) + " of " +
                                  std::to_string(update.size()) + " is " +
                                  (std::isnan(update[i]) ? "NaN" : "Inf"));
    }
  }
  const double norm = L2Norm(update);
  if (norm > clip_norm) {
    const double scale = clip_norm / norm * kClipSafetyFactor;
    for (float& v : update) v = static_cast<float>(static_cast<double>(v) * scale);
  }
  return norm;
}

}  // namespace edgefl::privacy

// Clipping: bounds the L2 norm of a client's update, the first step of every DP pipeline.
//
// Clipping is what gives an update a known sensitivity: after ClipToNorm(update, C) any one
// client moves a sum of updates by at most C in L2 norm, so noise of standard deviation
// noise_multiplier * C hides it. Pure functions on caller-owned spans; thread-safe.
//
//   EDGEFL_ASSIGN_OR_RETURN(double norm, privacy::ClipToNorm(update, options.clip_norm));
//   metrics.pre_clip_norm = norm;   // update now has L2 norm <= clip_norm
//   EDGEFL_RETURN_IF_ERROR(privacy::AddGaussianNoise(update, sigma * clip_norm, rng));
#pragma once

#include <span>

#include "edgefl/common/status.h"

namespace edgefl::privacy {

// L2 norm of `values`, accumulated in double. No checks: NaN or Inf propagate.
double L2Norm(std::span<const float> values);

// Scales `update` in place so that its L2 norm is at most `clip_norm`, and returns the L2 norm
// it had before (computed in double). An update whose norm is already <= clip_norm is left
// untouched. After clipping, the float update's norm recomputed in double is <= clip_norm even
// with rounding: the scale carries a relative safety margin of 2^-21 (see clipping.cc).
// Errors, each leaving `update` unchanged:
//   kInvalidArgument  clip_norm is not finite or <= 0;
//   kInvalidArgument  a value of `update` is NaN or Inf (the message names its index).
Result<double> ClipToNorm(std::span<float> update, double clip_norm);

}  // namespace edgefl::privacy

// Fixed-point encoding of float updates into the ring Z_2^32, where secure aggregation and the
// distributed discrete Gaussian work.
//
// A value x becomes round(x * scale) as a signed integer, stored in two's complement as a
// uint32_t; rounding is stochastic (up with probability frac(x * scale)), so the encoding is
// unbiased: E[Decode(Encode(x))] = x. Encodings add mod 2^32, and the sum of n encodings
// decodes to the sum of the n float vectors provided the true integer sum lies in
// [-2^31, 2^31); ChooseEncodingScale picks a scale for which it always does. Pure functions on
// caller-owned spans; thread-safe given one Rng per thread.
//
//   EDGEFL_ASSIGN_OR_RETURN(double scale, privacy::ChooseEncodingScale(clip, cohort, noise, 1));
//   EDGEFL_RETURN_IF_ERROR(privacy::Encode(update, scale, rng, encoded));   // on each client
//   EDGEFL_RETURN_IF_ERROR(privacy::Decode(sum_of_encoded, scale, sum));     // on the coordinator
#pragma once

#include <cstdint>
#include <span>

#include "edgefl/common/random.h"
#include "edgefl/common/status.h"

namespace edgefl::privacy {

// How many standard deviations of the summed noise ChooseEncodingScale reserves. A Gaussian, and
// the discrete Gaussian (whose tails are no heavier, CKS 2020), exceeds 10 sigma with
// probability below 1.6e-23 per coordinate.
inline constexpr double kNoiseTailStddevs = 10.0;

// Encodes each value as round(values[i] * scale) mod 2^32 with unbiased stochastic rounding:
// v = x * scale (in double) becomes floor(v) + 1 with probability v - floor(v), else floor(v),
// so |out/scale - x| < 1/scale. Negative integers are stored as two's complement.
// Errors (`out` is then unspecified):
//   kInvalidArgument  scale not finite or <= 0; out.size() != values.size();
//                     a value is NaN or Inf (the message names its index);
//   kOutOfRange       |values[i] * scale| >= 2^31 - 1 for some i (it would not fit in int32).
Status Encode(std::span<const float> values, double scale, Rng& rng, std::span<uint32_t> out);

// Decodes a sum (mod 2^32) of encodings made with the same scale: each word is read as a signed
// int32 (two's complement) and divided by scale. Correct whenever the true integer sum lies in
// [-2^31, 2^31), which ChooseEncodingScale guarantees for a cohort.
// kInvalidArgument if scale is not finite or <= 0, or out.size() != sum.size().
Status Decode(std::span<const uint32_t> sum, double scale, std::span<float> out);

// The largest scale at which a cohort sum can never wrap. With every coordinate |x| <= clip_norm
// (an L2 bound implies the same bound on each coordinate), a client's encoded coordinate is at
// most clip_norm * scale + 1 in magnitude (stochastic rounding moves it by less than 1), so the
// sum of num_clients encodings plus noise of total standard deviation noise_stddev (in update
// units, i.e. noise_stddev * scale in encoded units), taken out to kNoiseTailStddevs, is bounded
// by
//     num_clients * (clip_norm * scale + 1) + kNoiseTailStddevs * noise_stddev * scale.
// Requiring this to be at most 2^(31 - headroom_bits) - 1 gives
//     scale = (2^(31 - headroom_bits) - 1 - num_clients)
//             / (num_clients * clip_norm + kNoiseTailStddevs * noise_stddev).
// headroom_bits keeps a further factor 2^headroom_bits in reserve (e.g. for clients that send
// more than they should before a norm check, or a larger cohort than planned). The resolution of
// the decoded sum is then 1/scale per client and coordinate.
// Errors: kInvalidArgument for clip_norm not finite or <= 0, num_clients == 0, noise_stddev not
// finite or < 0, headroom_bits outside [0, 30]; kOutOfRange when no positive scale fits (too
// many clients for the headroom).
Result<double> ChooseEncodingScale(double clip_norm, uint64_t num_clients, double noise_stddev,
                                   int headroom_bits);

}  // namespace edgefl::privacy

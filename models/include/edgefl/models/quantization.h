// Quantization of weights and activations for the int8 and int4 kernels (kernels.h): int8
// per-output-channel symmetric weights, int4 group-wise symmetric weights, and u8 activations
// with a scale and a zero point. Each quantizer returns the largest absolute round-trip error
// it made, so callers can log or bound it.
//
// Plain functions on caller-owned spans, no state: safe to call from any number of threads on
// distinct outputs. Matrices are row-major [rows = output channels, cols = inputs], as a Dense
// layer's weight. Preconditions (sizes, finite inputs) are programmer errors, checked.
//
//   std::vector<int8_t> q(rows * cols);  std::vector<float> scales(rows);
//   float error = QuantizeInt8PerChannel(w, rows, cols, q, scales);  // error <= max scale / 2
//   Int8Weights packed = QuantizeAndPackInt8(w, rows, cols);  // ready for the int8 GEMM
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "edgefl/models/kernels.h"

namespace edgefl::models {

// ----- int8, symmetric, one scale per output channel (row).
// Row r: scales[r] = max_c |w[r, c]| / 127, q[r, c] = round(w[r, c] / scales[r]) in
// [-127, 127] (-128 is never used, so negation is exact), w ~ q * scales[r]. An all-zero row
// gets scale 0 and zero values. Every element's round-trip error is at most scales[r] / 2 (up
// to float rounding: a few ulps of max |w[r, :]|).
inline constexpr int kInt8WeightMax = 127;

// Preconditions (checked): w.size() == q.size() == rows * cols, scales.size() == rows, every
// w finite. Returns max |w - q * scale| over all elements (0 for an empty matrix).
float QuantizeInt8PerChannel(std::span<const float> w, size_t rows, size_t cols,
                             std::span<int8_t> q, std::span<float> scales);
// w[r, c] = q[r, c] * scales[r]. Same size preconditions.
void DequantizeInt8PerChannel(std::span<const int8_t> q, std::span<const float> scales, size_t rows,
                              size_t cols, std::span<float> w);

// Quantized, packed int8 weights as the int8 GEMM (kernels::GemmU8S8S32Fn) and
// kernels::RequantizeS32ToF32 take them.
struct Int8Weights {
  size_t rows = 0;                         // output channels (n of the GEMM)
  size_t cols = 0;                         // inputs (k of the GEMM), <= kernels::kMaxInt8GemmDepth
  std::vector<kernels::Int8Block> packed;  // kernels::Int8PackedBlocks(rows, cols)
  std::vector<float> scales;               // rows
  std::vector<int32_t> row_sums;           // rows: sum of each row's q, for the zero point
  float max_abs_error = 0.0f;              // as returned by QuantizeInt8PerChannel
};
// Preconditions (checked): w.size() == rows * cols, cols <= kernels::kMaxInt8GemmDepth,
// every w finite.
Int8Weights QuantizeAndPackInt8(std::span<const float> w, size_t rows, size_t cols);

// ----- int4, symmetric, one fp32 scale per group of 32 consecutive values of a row.
// Group g of row r: scale = max |w| / 7 over the group, q = round(w / scale) in [-7, 7] stored
// as described at kernels::Int4Block (-8 is representable but unused, which keeps the error
// bound symmetric). Round-trip error <= scale / 2 per element (up to float rounding). An
// all-zero group gets scale 0. Values past `cols` in a row's last group are zero.
inline constexpr int kInt4WeightMax = 7;

// Preconditions (checked): w.size() == rows * cols,
// blocks.size() == rows * kernels::Int4BlocksPerRow(cols), every w finite.
// Returns max |w - dequantized w| over all elements.
float QuantizeInt4Groups(std::span<const float> w, size_t rows, size_t cols,
                         std::span<kernels::Int4Block> blocks);
// The inverse mapping, w = q * scale. Same size preconditions.
void DequantizeInt4Groups(std::span<const kernels::Int4Block> blocks, size_t rows, size_t cols,
                          std::span<float> w);

// ----- u8 activations, asymmetric: x ~ scale * (q - zero_point), q in [0, 255].
struct U8QuantParams {
  float scale = 1.0f;      // > 0
  int32_t zero_point = 0;  // in [0, 255]; the q that represents 0.0 exactly
};
// Covers [min(min_value, 0), max(max_value, 0)] (so 0 is exact, as ReLU outputs and zero
// padding need): scale = (hi - lo) / 255, zero_point = round(-lo / scale). Values inside the
// range then round-trip within scale / 2. hi == lo == 0 gives {1, 0}.
// Preconditions (checked): both finite, min_value <= max_value.
U8QuantParams ChooseU8QuantParams(float min_value, float max_value);
// q = clamp(round(x / scale) + zero_point, 0, 255). Returns max |x - dequantized q|, which
// includes clamping error for values outside the range of `params`.
// Preconditions (checked): x.size() == q.size(), every x finite, params as above.
float QuantizeU8(std::span<const float> x, U8QuantParams params, std::span<uint8_t> q);
// x = scale * (q - zero_point). Precondition (checked): q.size() == x.size().
void DequantizeU8(std::span<const uint8_t> q, U8QuantParams params, std::span<float> x);

// max_i |a[i] - b[i]|; 0 for empty spans. Precondition (checked): a.size() == b.size().
float MaxAbsDifference(std::span<const float> a, std::span<const float> b);

}  // namespace edgefl::models

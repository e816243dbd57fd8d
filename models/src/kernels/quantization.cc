// Quantizers for the int8 and int4 kernels (edgefl/models/quantization.h). Scalar and simple:
// they run once per weight update, not per example. Rounding is std::round (half away from
// zero), independent of the floating-point rounding mode.
#include "edgefl/models/quantization.h"

#include <algorithm>
#include <cmath>

#include "edgefl/common/check.h"

namespace edgefl::models {
namespace {

float MaxAbs(const float* values, size_t count) {
  float max_abs = 0.0f;
  for (size_t i = 0; i < count; ++i) {
    EDGEFL_CHECK(std::isfinite(values[i])) << "quantizing a non-finite value " << values[i];
    max_abs = std::max(max_abs, std::fabs(values[i]));
  }
  return max_abs;
}

// round(value / scale) clamped to [-limit, limit]; 0 when scale == 0.
int QuantizeSymmetric(float value, float scale, int limit) {
  if (scale == 0.0f) return 0;
  const float q = std::round(value / scale);
  return static_cast<int>(std::clamp(q, static_cast<float>(-limit), static_cast<float>(limit)));
}

}  // namespace

float QuantizeInt8PerChannel(std::span<const float> w, size_t rows, size_t cols,
                             std::span<int8_t> q, std::span<float> scales) {
  EDGEFL_CHECK_EQ(w.size(), rows * cols);
  EDGEFL_CHECK_EQ(q.size(), rows * cols);
  EDGEFL_CHECK_EQ(scales.size(), rows);
  float max_error = 0.0f;
  for (size_t r = 0; r < rows; ++r) {
    const float* row = w.data() + r * cols;
    const float scale = MaxAbs(row, cols) / kInt8WeightMax;
    scales[r] = scale;
    for (size_t c = 0; c < cols; ++c) {
      const int value = QuantizeSymmetric(row[c], scale, kInt8WeightMax);
      q[r * cols + c] = static_cast<int8_t>(value);
      max_error = std::max(max_error, std::fabs(row[c] - static_cast<float>(value) * scale));
    }
  }
  return max_error;
}

void DequantizeInt8PerChannel(std::span<const int8_t> q, std::span<const float> scales, size_t rows,
                              size_t cols, std::span<float> w) {
  EDGEFL_CHECK_EQ(w.size(), rows * cols);
  EDGEFL_CHECK_EQ(q.size(), rows * cols);
  EDGEFL_CHECK_EQ(scales.size(), rows);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      w[r * cols + c] = static_cast<float>(q[r * cols + c]) * scales[r];
    }
  }
}

Int8Weights QuantizeAndPackInt8(std::span<const float> w, size_t rows, size_t cols) {
  EDGEFL_CHECK_LE(cols, kernels::kMaxInt8GemmDepth);
  Int8Weights out;
  out.rows = rows;
  out.cols = cols;
  std::vector<int8_t> q(rows * cols);
  out.scales.resize(rows);
  out.max_abs_error = QuantizeInt8PerChannel(w, rows, cols, q, out.scales);
  out.packed.resize(kernels::Int8PackedBlocks(rows, cols));
  out.row_sums.resize(rows);
  kernels::PackInt8Weights(q.data(), cols, rows, cols, out.packed.data(), out.row_sums.data());
  return out;
}

float QuantizeInt4Groups(std::span<const float> w, size_t rows, size_t cols,
                         std::span<kernels::Int4Block> blocks) {
  constexpr size_t kGroup = kernels::kInt4GroupSize;
  const size_t blocks_per_row = kernels::Int4BlocksPerRow(cols);
  EDGEFL_CHECK_EQ(w.size(), rows * cols);
  EDGEFL_CHECK_EQ(blocks.size(), rows * blocks_per_row);
  float max_error = 0.0f;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t g = 0; g < blocks_per_row; ++g) {
      const float* group = w.data() + r * cols + g * kGroup;
      const size_t count = std::min(kGroup, cols - g * kGroup);
      kernels::Int4Block& block = blocks[r * blocks_per_row + g];
      block.scale = MaxAbs(group, count) / kInt4WeightMax;
      uint8_t nibbles[kGroup] = {};
      for (size_t j = 0; j < kGroup; ++j) {
        const int value = j < count ? QuantizeSymmetric(group[j], block.scale, kInt4WeightMax) : 0;
        nibbles[j] = static_cast<uint8_t>(value + 8);
        if (j < count) {
          max_error =
              std::max(max_error, std::fabs(group[j] - static_cast<float>(value) * block.scale));
        }
      }
      for (size_t j = 0; j < kGroup / 2; ++j) {
        block.packed[j] = static_cast<uint8_t>(nibbles[j] | (nibbles[j + kGroup / 2] << 4));
      }
    }
  }
  return max_error;
}

void DequantizeInt4Groups(std::span<const kernels::Int4Block> blocks, size_t rows, size_t cols,
                          std::span<float> w) {
  constexpr size_t kGroup = kernels::kInt4GroupSize;
  const size_t blocks_per_row = kernels::Int4BlocksPerRow(cols);
  EDGEFL_CHECK_EQ(w.size(), rows * cols);
  EDGEFL_CHECK_EQ(blocks.size(), rows * blocks_per_row);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      const kernels::Int4Block& block = blocks[r * blocks_per_row + c / kGroup];
      const size_t j = c % kGroup;
      const uint8_t byte = block.packed[j % (kGroup / 2)];
      const int nibble = j < kGroup / 2 ? (byte & 0x0F) : (byte >> 4);
      w[r * cols + c] = static_cast<float>(nibble - 8) * block.scale;
    }
  }
}

U8QuantParams ChooseU8QuantParams(float min_value, float max_value) {
  EDGEFL_CHECK(std::isfinite(min_value) && std::isfinite(max_value) && min_value <= max_value)
      << "u8 range [" << min_value << ", " << max_value << "]";
  const float lo = std::min(min_value, 0.0f);
  const float hi = std::max(max_value, 0.0f);
  if (hi == lo) return U8QuantParams{.scale = 1.0f, .zero_point = 0};
  const float scale = (hi - lo) / 255.0f;
  const float zero_point = std::clamp(std::round(-lo / scale), 0.0f, 255.0f);
  return U8QuantParams{.scale = scale, .zero_point = static_cast<int32_t>(zero_point)};
}

float QuantizeU8(std::span<const float> x, U8QuantParams params, std::span<uint8_t> q) {
  EDGEFL_CHECK_EQ(x.size(), q.size());
  EDGEFL_CHECK(params.scale > 0.0f && params.zero_point >= 0 && params.zero_point <= 255)
      << "u8 params scale " << params.scale << " zero_point " << params.zero_point;
  float max_error = 0.0f;
  for (size_t i = 0; i < x.size(); ++i) {
    EDGEFL_CHECK(std::isfinite(x[i])) << "quantizing a non-finite value " << x[i];
    const float shifted = std::round(x[i] / params.scale) + static_cast<float>(params.zero_point);
    const int value = static_cast<int>(std::clamp(shifted, 0.0f, 255.0f));
    q[i] = static_cast<uint8_t>(value);
    const float back = params.scale * static_cast<float>(value - params.zero_point);
    max_error = std::max(max_error, std::fabs(x[i] - back));
  }
  return max_error;
}

void DequantizeU8(std::span<const uint8_t> q, U8QuantParams params, std::span<float> x) {
  EDGEFL_CHECK_EQ(q.size(), x.size());
  for (size_t i = 0; i < q.size(); ++i) {
    x[i] = params.scale * static_cast<float>(static_cast<int32_t>(q[i]) - params.zero_point);
  }
}

float MaxAbsDifference(std::span<const float> a, std::span<const float> b) {
  EDGEFL_CHECK_EQ(a.size(), b.size());
  float max_diff = 0.0f;
  for (size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, std::fabs(a[i] - b[i]));
  return max_diff;
}

}  // namespace edgefl::models

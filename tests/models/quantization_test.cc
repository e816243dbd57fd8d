#include "edgefl/models/quantization.h"

#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/models/kernels.h"

namespace edgefl::models {
namespace {

// The round-trip bound scale / 2 holds in exact arithmetic; in fp32 the division, rounding and
// the product q * scale each add at most half an ulp of a value <= max |w|, so we allow
// 4 * 2^-24 * max |w| on top.
constexpr float kFloatSlack = 4.0f / (1 << 24);

std::vector<float> RandomMatrix(Rng& rng, size_t rows, size_t cols) {
  std::vector<float> w(rows * cols);
  for (size_t r = 0; r < rows; ++r) {
    // Rows of very different magnitudes, as per-channel scales are meant for.
    const double magnitude = std::pow(10.0, static_cast<double>(r % 5) - 2.0);
    for (size_t c = 0; c < cols; ++c) {
      w[r * cols + c] = static_cast<float>((2.0 * rng.Uniform01() - 1.0) * magnitude);
    }
  }
  return w;
}

TEST_CASE("Int8 per-channel quantization round-trips within half a scale per element") {
  Rng rng(3);
  const size_t rows = 21, cols = 1027;
  std::vector<float> w = RandomMatrix(rng, rows, cols);
  for (size_t c = 0; c < cols; ++c) w[5 * cols + c] = 0.0f;  // an all-zero row
  std::vector<int8_t> q(rows * cols);
  std::vector<float> scales(rows), back(rows * cols);
  const float returned = QuantizeInt8PerChannel(w, rows, cols, q, scales);
  DequantizeInt8PerChannel(q, scales, rows, cols, back);
  CHECK(returned == MaxAbsDifference(w, back));
  CHECK(scales[5] == 0.0f);
  size_t violations = 0;
  for (size_t r = 0; r < rows; ++r) {
    const float max_abs = scales[r] * kInt8WeightMax;
    for (size_t c = 0; c < cols; ++c) {
      const float error = std::fabs(w[r * cols + c] - back[r * cols + c]);
      violations += error > scales[r] / 2 + kFloatSlack * max_abs;
      violations += q[r * cols + c] < -kInt8WeightMax;
    }
  }
  CHECK(violations == 0);
}

TEST_CASE("QuantizeAndPackInt8 packs the quantized values with their row sums") {
  Rng rng(4);
  const size_t rows = 19, cols = 45;
  const std::vector<float> w = RandomMatrix(rng, rows, cols);
  const Int8Weights packed = QuantizeAndPackInt8(w, rows, cols);
  std::vector<int8_t> q(rows * cols), unpacked(rows * cols);
  std::vector<float> scales(rows);
  CHECK(packed.max_abs_error == QuantizeInt8PerChannel(w, rows, cols, q, scales));
  kernels::UnpackInt8Weights(packed.packed.data(), rows, cols, unpacked.data(), cols);
  CHECK(unpacked == q);
  CHECK(packed.scales == scales);
  int32_t sum = 0;
  for (size_t c = 0; c < cols; ++c) sum += q[(rows - 1) * cols + c];
  CHECK(packed.row_sums[rows - 1] == sum);
}

TEST_CASE("Int4 group quantization round-trips within half a group's scale") {
  Rng rng(5);
  const size_t rows = 9, cols = 1027;  // 1027 = 32 * 32 + 3: a short last group
  std::vector<float> w = RandomMatrix(rng, rows, cols);
  for (size_t c = 64; c < 96; ++c) w[c] = 0.0f;  // row 0, group 2 all zero
  const size_t per_row = kernels::Int4BlocksPerRow(cols);
  std::vector<kernels::Int4Block> blocks(rows * per_row);
  std::vector<float> back(rows * cols);
  const float returned = QuantizeInt4Groups(w, rows, cols, blocks);
  DequantizeInt4Groups(blocks, rows, cols, back);
  CHECK(returned == MaxAbsDifference(w, back));
  CHECK(blocks[2].scale == 0.0f);
  size_t violations = 0;
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c = 0; c < cols; ++c) {
      const float scale = blocks[r * per_row + c / kernels::kInt4GroupSize].scale;
      const float error = std::fabs(w[r * cols + c] - back[r * cols + c]);
      violations += error > scale / 2 + kFloatSlack * scale * kInt4WeightMax;
    }
  }
  CHECK(violations == 0);
  // Values past the last column are stored as zero (nibble 8) so the GEMM may read them.
  const kernels::Int4Block& last = blocks[per_row - 1];
  CHECK((last.packed[3] & 0x0F) == 8);
  CHECK((last.packed[15] >> 4) == 8);
}

TEST_CASE("u8 activation parameters represent zero exactly and round-trip within half a scale") {
  const U8QuantParams relu = ChooseU8QuantParams(0.0f, 6.0f);
  CHECK(relu.zero_point == 0);
  CHECK(relu.scale == doctest::Approx(6.0f / 255.0f));
  const U8QuantParams positive_only = ChooseU8QuantParams(2.0f, 3.0f);  // widened to include 0
  CHECK(positive_only.zero_point == 0);
  CHECK(positive_only.scale == doctest::Approx(3.0f / 255.0f));
  const U8QuantParams zero = ChooseU8QuantParams(0.0f, 0.0f);
  CHECK(zero.scale == 1.0f);

  Rng rng(6);
  const U8QuantParams params = ChooseU8QuantParams(-1.3f, 2.9f);
  std::vector<float> x(4099);
  for (float& v : x) v = static_cast<float>(-1.3 + 4.2 * rng.Uniform01());
  x[0] = 0.0f;
  std::vector<uint8_t> q(x.size());
  std::vector<float> back(x.size());
  const float returned = QuantizeU8(x, params, q);
  DequantizeU8(q, params, back);
  CHECK(back[0] == 0.0f);
  CHECK(returned == MaxAbsDifference(x, back));
  CHECK(returned <= params.scale / 2 + kFloatSlack * 2.9f);

  // Outside the range values clamp, and the returned error says so.
  const std::vector<float> outside = {10.0f};
  std::vector<uint8_t> q1(1);
  CHECK(QuantizeU8(outside, params, q1) > 5.0f);
  CHECK(q1[0] == 255);
}

TEST_CASE("An int8 GEMM on quantized operands approximates the fp32 product within its bound") {
  Rng rng(8);
  const size_t m = 10, n = 23, k = 784;
  std::vector<float> x(m * k), w(n * k);
  for (float& v : x) v = static_cast<float>(rng.Uniform01());  // ReLU-like activations
  for (float& v : w) v = static_cast<float>(0.1 * (2.0 * rng.Uniform01() - 1.0));
  const Int8Weights qw = QuantizeAndPackInt8(w, n, k);
  const U8QuantParams xp = ChooseU8QuantParams(0.0f, 1.0f);
  std::vector<uint8_t> qx(m * k);
  const float x_error = QuantizeU8(x, xp, qx);
  std::vector<int32_t> acc(m * n);
  kernels::ParallelGemmU8S8S32(m, n, k, qx.data(), k, qw.packed.data(), acc.data(), n);
  std::vector<float> y(m * n);
  kernels::RequantizeS32ToF32(m, n, acc.data(), n, xp.scale, xp.zero_point, qw.scales.data(),
                              qw.row_sums.data(), nullptr, y.data(), n);
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      double exact = 0.0, bound = 0.0;
      for (size_t p = 0; p < k; ++p) {
        exact += double{x[i * k + p]} * w[j * k + p];
        // |x w - x' w'| <= |x| e_w + |w| e_x + e_x e_w for x' = x + d_x, w' = w + d_w.
        bound += std::fabs(x[i * k + p]) * qw.max_abs_error + std::fabs(w[j * k + p]) * x_error +
                 double{x_error} * qw.max_abs_error;
      }
      CHECK(std::fabs(y[i * n + j] - exact) <= bound * 1.001 + 1e-6);
    }
  }
}

}  // namespace
}  // namespace edgefl::models

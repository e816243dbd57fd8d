// Scalar reference kernels: the oracle every faster level is tested against
// (tests/models/kernels_test.cc). Written for clarity, not speed: one output element at a
// time, summing the k products in increasing p. Compiled without instruction-set flags.
#include "internal.h"

#include <algorithm>

namespace edgefl::models::kernels::internal {
namespace {

// op(X)[row, col] for a row-major matrix stored untransposed or transposed.
inline float At(const float* x, size_t ld, Transpose trans, size_t row, size_t col) {
  return trans == Transpose::kNo ? x[row * ld + col] : x[col * ld + row];
}

// Value `j` (0..31) of an int4 group, as the signed q in [-8, 7].
inline int Int4Value(const Int4Block& block, size_t j) {
  const uint8_t byte = block.packed[j % 16];
  return static_cast<int>(j < 16 ? (byte & 0x0F) : (byte >> 4)) - 8;
}

}  // namespace

void GemmF32Reference(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                      float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                      float beta, float* c, size_t ldc, float* /*workspace*/) {
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      float sum = 0.0f;
      for (size_t p = 0; p < k; ++p) {
        sum += At(a, lda, trans_a, i, p) * At(b, ldb, trans_b, p, j);
      }
      float& out = c[i * ldc + j];
      out = beta == 0.0f ? alpha * sum : alpha * sum + beta * out;
    }
  }
}

void GemmU8S8S32Reference(size_t m, size_t n, size_t k, const uint8_t* a, size_t lda,
                          const Int8Block* packed_w, int32_t* c, size_t ldc) {
  const size_t depth_blocks = Int8DepthBlocks(k);
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      const Int8Block* row_blocks = packed_w + (j / kInt8BlockChannels) * depth_blocks;
      int32_t sum = 0;
      for (size_t p = 0; p < k; ++p) {
        const int8_t w =
            row_blocks[p / kInt8BlockDepth].values[j % kInt8BlockChannels][p % kInt8BlockDepth];
        sum += static_cast<int32_t>(a[i * lda + p]) * static_cast<int32_t>(w);
      }
      c[i * ldc + j] = sum;
    }
  }
}

void GemmF32Int4Reference(size_t m, size_t n, size_t k, const float* x, size_t ldx,
                          const Int4Block* w, float beta, float* y, size_t ldy) {
  const size_t blocks_per_row = Int4BlocksPerRow(k);
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      const Int4Block* row = w + j * blocks_per_row;
      float sum = 0.0f;
      for (size_t p = 0; p < k; ++p) {
        const Int4Block& block = row[p / kInt4GroupSize];
        const float weight = static_cast<float>(Int4Value(block, p % kInt4GroupSize)) * block.scale;
        sum += x[i * ldx + p] * weight;
      }
      float& out = y[i * ldy + j];
      out = beta == 0.0f ? sum : sum + beta * out;
    }
  }
}

void MaxPool2x2F32Reference(size_t channels, size_t height, size_t width, const float* x,
                            float* y, float* argmax) {
  const size_t out_height = height / 2, out_width = width / 2;
  for (size_t c = 0; c < channels; ++c) {
    for (size_t oh = 0; oh < out_height; ++oh) {
      for (size_t ow = 0; ow < out_width; ++ow) {
        const size_t corner = (c * height + 2 * oh) * width + 2 * ow;
        size_t best = corner;
        for (const size_t index : {corner + 1, corner + width, corner + width + 1}) {
          if (x[index] > x[best]) best = index;
        }
        const size_t o = (c * out_height + oh) * out_width + ow;
        y[o] = x[best];
        argmax[o] = static_cast<float>(best);
      }
    }
  }
}

void MaxPool2x2BackwardF32Reference(size_t channels, size_t height, size_t width,
                                    const float* dy, const float* argmax, float* dx) {
  std::fill(dx, dx + channels * height * width, 0.0f);
  const size_t outputs = channels * (height / 2) * (width / 2);
  for (size_t o = 0; o < outputs; ++o) dx[static_cast<size_t>(argmax[o])] += dy[o];
}

KernelTable ReferenceTable() {
  return KernelTable{.isa = Isa::kReference,
                     .gemm_f32 = &GemmF32Reference,
                     .gemm_u8s8s32 = &GemmU8S8S32Reference,
                     .gemm_f32_int4 = &GemmF32Int4Reference,
                     .gemm_f32_eigen = &GemmF32EigenBaseline,
                     .max_pool2x2_f32 = &MaxPool2x2F32Reference,
                     .max_pool2x2_backward_f32 = &MaxPool2x2BackwardF32Reference};
}

}  // namespace edgefl::models::kernels::internal

namespace edgefl::models::kernels {

void PackInt8Weights(const int8_t* w, size_t ldw, size_t n, size_t k, Int8Block* packed,
                     int32_t* row_sums) {
  const size_t depth_blocks = Int8DepthBlocks(k);
  const size_t channel_blocks = Int8ChannelBlocks(n);
  for (size_t nb = 0; nb < channel_blocks; ++nb) {
    for (size_t kb = 0; kb < depth_blocks; ++kb) {
      Int8Block& block = packed[nb * depth_blocks + kb];
      for (size_t ch = 0; ch < kInt8BlockChannels; ++ch) {
        for (size_t d = 0; d < kInt8BlockDepth; ++d) {
          const size_t row = nb * kInt8BlockChannels + ch;
          const size_t col = kb * kInt8BlockDepth + d;
          block.values[ch][d] = (row < n && col < k) ? w[row * ldw + col] : int8_t{0};
        }
      }
    }
  }
  if (row_sums != nullptr) {
    for (size_t row = 0; row < n; ++row) {
      int32_t sum = 0;
      for (size_t col = 0; col < k; ++col) sum += w[row * ldw + col];
      row_sums[row] = sum;
    }
  }
}

void UnpackInt8Weights(const Int8Block* packed, size_t n, size_t k, int8_t* w, size_t ldw) {
  const size_t depth_blocks = Int8DepthBlocks(k);
  for (size_t row = 0; row < n; ++row) {
    for (size_t col = 0; col < k; ++col) {
      w[row * ldw + col] = packed[(row / kInt8BlockChannels) * depth_blocks + col / kInt8BlockDepth]
                               .values[row % kInt8BlockChannels][col % kInt8BlockDepth];
    }
  }
}

void RequantizeS32ToF32(size_t m, size_t n, const int32_t* acc, size_t ldacc, float a_scale,
                        int32_t a_zero_point, const float* w_scales, const int32_t* row_sums,
                        const float* bias, float* y, size_t ldy) {
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      // In 64 bits: acc and zero_point * row_sum are each within 2^31, their difference not.
      const int64_t centred = static_cast<int64_t>(acc[i * ldacc + j]) -
                              static_cast<int64_t>(a_zero_point) * row_sums[j];
      const float value = a_scale * w_scales[j] * static_cast<float>(centred);
      y[i * ldy + j] = bias != nullptr ? value + bias[j] : value;
    }
  }
}

}  // namespace edgefl::models::kernels

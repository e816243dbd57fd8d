// AVX2 level (AVX2, FMA, F16C). Compiled with -mavx2 -mfma -mf16c (kernels.cmake) and called
// only when dispatch.cc found them. Every function here is tested against the scalar
// reference (reference.cc).
#include <immintrin.h>

#include <cstring>

#include "max_pool_blocks.h"
#include "simd_gemm_f32.h"

namespace edgefl::models::kernels::internal {
namespace {

// Lane masks for maskload/maskstore: kLaneMasks[8 - count .. 16 - count) has `count` leading -1.
alignas(64) constexpr int32_t kLaneMasks[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                0,  0,  0,  0,  0,  0,  0,  0};
EDGEFL_INLINE __m256i LaneMask(int count) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLaneMasks + 8 - count));
}

struct Avx2F32 {
  using Reg = __m256;
  static constexpr int kWidth = 8;
  static EDGEFL_INLINE Reg Zero() { return _mm256_setzero_ps(); }
  static EDGEFL_INLINE Reg Load(const float* p) { return _mm256_loadu_ps(p); }
  // vmaskmovps: masked-off lanes read nothing (no fault) and are zero.
  static EDGEFL_INLINE Reg LoadPartial(const float* p, int count) {
    return _mm256_maskload_ps(p, LaneMask(count));
  }
  static EDGEFL_INLINE void Store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static EDGEFL_INLINE void StorePartial(float* p, Reg v, int count) {
    _mm256_maskstore_ps(p, LaneMask(count), v);
  }
  static EDGEFL_INLINE Reg Set1(float x) { return _mm256_set1_ps(x); }
  static EDGEFL_INLINE Reg Fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static EDGEFL_INLINE Reg Mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static EDGEFL_INLINE float ReduceAdd(Reg v) {
    __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
    sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
    return _mm_cvtss_f32(sum);
  }
  // out[i] = the sum of the lanes of the i-th argument.
  static EDGEFL_INLINE void ReduceAdd4(Reg a, Reg b, Reg c, Reg d, float* out) {
    // hadd twice gives, per 128-bit lane, (a, b, c, d) partial sums; then add the two lanes.
    const Reg abcd = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }
};

// 6 x 16 register tile: 12 accumulators + 2 B vectors + 1 broadcast of the 16 ymm registers.
constexpr int kMr = 6;
constexpr int kNv = 2;
constexpr GemmF32Blocking kBlocking{.mc = 120,
                                    .kc = 256,
                                    .nc = 1024,
                                    .dot_always_max_m = 0,
                                    .dot_max_m = 0,
                                    .dot_min_k = 384,
                                    .unpacked_b_max_m = 64};
static_assert(kBlocking.mc % kMr == 0);
static_assert(kBlocking.kc * kBlocking.nc + 16 <= kGemmF32WorkspaceFloats);

// Eigen is the floor (bench/models_bench.cc). Measured with EDGEFL_KERNELS=avx2 on AMD EPYC
// (Zen 5), one thread, against Eigen 3.4 built with these same flags: this kernel wins by
// 1.1-1.6x on Dense shapes with a batch of 2..24 rows and ties or loses elsewhere (by up to
// 1.5x on 1024^3 TN and on short depths), so only those small batches use it.
bool PreferEigen(size_t m) { return m < 2 || m > 24; }

void GemmF32Avx2(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k, float alpha,
                 const float* a, size_t lda, const float* b, size_t ldb, float beta, float* c,
                 size_t ldc, float* workspace) {
  if (PreferEigen(m)) {
    GemmF32EigenAvx2(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, workspace);
    return;
  }
  GemmF32Simd<Avx2F32, kMr, kNv, 3>(kBlocking, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                                    beta, c, ldc, workspace);
}

// ----- u8 x s8 -> s32 with vpmaddwd.
//
// vpmaddubsw (u8 x s8 -> s16 pairs) would be faster but saturates: 255 * 127 * 2 > 32767, so
// it is exact only for 7-bit activations. We widen instead: activations are zero-extended and
// weights sign-extended to 16 bits, and vpmaddwd adds pairs of 16 x 16-bit products into 32-bit
// lanes, which cannot overflow (2 * 255 * 128 < 2^31). The result is the exact sum, equal to the
// reference bit for bit.
//
// Layout: the 16 bytes at offset 16 q of an Int8Block are 4 channels (4q..4q+3) x 4 depth
// values. Sign-extended to 16 lanes of 16 bits and multiplied (vpmaddwd) by the row's 4
// activations repeated 4 times, they give 8 lanes: (channel 4q, depth 0-1), (4q, depth 2-3),
// (4q + 1, depth 0-1), ... A horizontal add of lane pairs at the end gives one sum per channel.

EDGEFL_INLINE __m256i LoadActivations4(const uint8_t* a, size_t count) {
  uint32_t word = 0;
  std::memcpy(&word, a, count);
  const __m128i widened = _mm_cvtepu8_epi16(_mm_cvtsi32_si128(static_cast<int>(word)));
  return _mm256_broadcastq_epi64(widened);
}

// Sums lane pairs of four accumulators (channels 0-3, 4-7 of one pair of vectors) into
// 8 channel sums in order.
EDGEFL_INLINE __m256i PairSums(__m256i c0to3, __m256i c4to7) {
  // hadd gives [c0 c1 c4 c5 | c2 c3 c6 c7]; the permute puts the 64-bit pairs in order.
  return _mm256_permute4x64_epi64(_mm256_hadd_epi32(c0to3, c4to7), 0b11011000);
}

template <int MR>
void Int8Tile(size_t k, const uint8_t* a, size_t lda, int rows, const Int8Block* w, int channels,
              int32_t* c, size_t ldc) {
  const uint8_t* ar[MR];
  for (int r = 0; r < MR; ++r) ar[r] = a + static_cast<size_t>(r < rows ? r : rows - 1) * lda;
  __m256i acc[MR][4];
  for (int r = 0; r < MR; ++r) {
    for (int q = 0; q < 4; ++q) acc[r][q] = _mm256_setzero_si256();
  }
  const auto step = [&](size_t kb, size_t count) EDGEFL_INLINE_LAMBDA {
    const auto* bytes = reinterpret_cast<const __m128i*>(w + kb);
    __m256i wv[4];
#pragma GCC unroll 4
    for (int q = 0; q < 4; ++q) wv[q] = _mm256_cvtepi8_epi16(_mm_loadu_si128(bytes + q));
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256i av = LoadActivations4(ar[r] + kb * kInt8BlockDepth, count);
#pragma GCC unroll 4
      for (int q = 0; q < 4; ++q) {
        acc[r][q] = _mm256_add_epi32(acc[r][q], _mm256_madd_epi16(wv[q], av));
      }
    }
  };
  const size_t full_blocks = k / kInt8BlockDepth;
  for (size_t kb = 0; kb < full_blocks; ++kb) step(kb, kInt8BlockDepth);
  if (full_blocks * kInt8BlockDepth < k) step(full_blocks, k - full_blocks * kInt8BlockDepth);
  for (int r = 0; r < rows; ++r) {
    const __m256i sums[2] = {PairSums(acc[r][0], acc[r][1]), PairSums(acc[r][2], acc[r][3])};
    for (int v = 0; v < 2; ++v) {
      const int count = ClampCount(channels - v * 8, 8);
      if (count > 0) {
        _mm256_maskstore_epi32(reinterpret_cast<int*>(c + r * ldc + v * 8), LaneMask(count),
                               sums[v]);
      }
    }
  }
}

constexpr int kInt8Mr = 2;

void GemmU8S8S32Avx2(size_t m, size_t n, size_t k, const uint8_t* a, size_t lda,
                     const Int8Block* packed_w, int32_t* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  const size_t depth_blocks = Int8DepthBlocks(k);
  const size_t channel_blocks = Int8ChannelBlocks(n);
  for (size_t nb = 0; nb < channel_blocks; ++nb) {
    const int channels = static_cast<int>(MinSize(16, n - nb * 16));
    for (size_t i = 0; i < m; i += kInt8Mr) {
      const int rows = static_cast<int>(MinSize(kInt8Mr, m - i));
      Int8Tile<kInt8Mr>(k, a + i * lda, lda, rows, packed_w + nb * depth_blocks, channels,
                        c + i * ldc + nb * 16, ldc);
    }
  }
}

// ----- fp32 x int4 (group 32) -> fp32.
//
// A group is dequantized 8 values at a time: bytes 0-7 / 8-15 of the block, low nibbles for
// values 0-15 and high nibbles for 16-31, widened to 32-bit lanes; w = fma(nibble, scale,
// -8 * scale) equals the reference's (nibble - 8) * scale (8 * scale is exact).

template <int MR, int NW, bool kTail>
EDGEFL_INLINE void Int4Group(const float* const* xr, const Int4Block* const* wr, size_t g, int rest,
                             __m256 (&acc)[MR][NW]) {
  const __m256i low_mask = _mm256_set1_epi32(0x0F);
#pragma GCC unroll 4
  for (int s = 0; s < 4; ++s) {
    __m256 wv[NW];
#pragma GCC unroll 4
    for (int j = 0; j < NW; ++j) {
      const Int4Block& block = wr[j][g];
      const __m128i bytes =
          _mm_loadl_epi64(reinterpret_cast<const __m128i*>(block.packed + (s & 1) * 8));
      __m256i nibbles = _mm256_cvtepu8_epi32(bytes);
      nibbles = s < 2 ? _mm256_and_si256(nibbles, low_mask) : _mm256_srli_epi32(nibbles, 4);
      wv[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(nibbles), _mm256_set1_ps(block.scale),
                              _mm256_set1_ps(-8.0f * block.scale));
    }
    const size_t offset = g * kInt4GroupSize + s * 8;
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m256 xv =
          kTail ? _mm256_maskload_ps(xr[r] + offset, LaneMask(ClampCount(rest - s * 8, 8)))
                : _mm256_loadu_ps(xr[r] + offset);
#pragma GCC unroll 4
      for (int j = 0; j < NW; ++j) acc[r][j] = _mm256_fmadd_ps(xv, wv[j], acc[r][j]);
    }
  }
}

template <int MR, int NW>
void Int4Tile(size_t k, const float* x, size_t ldx, int rows, const Int4Block* w,
              size_t blocks_per_row, int cols, float beta, float* y, size_t ldy) {
  const float* xr[MR];
  const Int4Block* wr[NW];
  for (int r = 0; r < MR; ++r) xr[r] = x + static_cast<size_t>(r < rows ? r : rows - 1) * ldx;
  for (int j = 0; j < NW; ++j) {
    wr[j] = w + static_cast<size_t>(j < cols ? j : cols - 1) * blocks_per_row;
  }
  __m256 acc[MR][NW];
  for (int r = 0; r < MR; ++r) {
    for (int j = 0; j < NW; ++j) acc[r][j] = _mm256_setzero_ps();
  }
  const size_t full_groups = k / kInt4GroupSize;
  for (size_t g = 0; g < full_groups; ++g) Int4Group<MR, NW, false>(xr, wr, g, 0, acc);
  if (full_groups * kInt4GroupSize < k) {
    const int rest = static_cast<int>(k - full_groups * kInt4GroupSize);
    Int4Group<MR, NW, true>(xr, wr, full_groups, rest, acc);
  }
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; ++j) {
      float& out = y[r * ldy + j];
      const float sum = Avx2F32::ReduceAdd(acc[r][j]);
      out = beta == 0.0f ? sum : sum + beta * out;
    }
  }
}

constexpr int kInt4Mr = 4;
constexpr int kInt4Nw = 2;

void GemmF32Int4Avx2(size_t m, size_t n, size_t k, const float* x, size_t ldx, const Int4Block* w,
                     float beta, float* y, size_t ldy) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    ScaleC(m, n, beta, y, ldy);
    return;
  }
  const size_t blocks_per_row = Int4BlocksPerRow(k);
  for (size_t j = 0; j < n; j += kInt4Nw) {
    const int cols = static_cast<int>(MinSize(kInt4Nw, n - j));
    for (size_t i = 0; i < m; i += kInt4Mr) {
      const int rows = static_cast<int>(MinSize(kInt4Mr, m - i));
      Int4Tile<kInt4Mr, kInt4Nw>(k, x + i * ldx, ldx, rows, w + j * blocks_per_row, blocks_per_row,
                                 cols, beta, y + i * ldy + j, ldy);
    }
  }
}


// 2x2 max-pooling as avx512.cc does it, 8 windows at a time: a row's 16 values split into even
// and odd columns by in-lane shuffles and a cross-lane 64-bit permute; vmaskmovps covers a
// row's last, partial block.
EDGEFL_INLINE __m256 EvenColumns(__m256 a, __m256 b) {
  const __m256 mixed = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4..
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(mixed), _MM_SHUFFLE(3, 1, 2, 0)));
}
EDGEFL_INLINE __m256 OddColumns(__m256 a, __m256 b) {
  const __m256 mixed = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(mixed), _MM_SHUFFLE(3, 1, 2, 0)));
}

// Lanes 0, 2, ..., 14: each window's column offset from the run's first input.
EDGEFL_INLINE __m256i EvenOffsets() { return _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14); }

// How many of a run of `windows` windows' 2 * windows inputs of one row fall in each of the
// two registers that hold them.
struct PairCounts {
  int low, high;
  explicit PairCounts(int windows)
      : low(windows >= 4 ? 8 : 2 * windows), high(windows > 4 ? 2 * windows - 8 : 0) {}
};

void MaxPool2x2F32Avx2(size_t channels, size_t height, size_t width, const float* x, float* y,
                       float* argmax) {
  const __m256i right = _mm256_set1_epi32(1), below = _mm256_set1_epi32(static_cast<int>(width));
  const __m256i below_right = _mm256_set1_epi32(static_cast<int>(width) + 1);
  ForEachWindowRun<8>(channels, height, width, [&](size_t first, size_t out, int windows) {
    const PairCounts counts(windows);
    const float* row0 = x + first;
    const float* row1 = row0 + width;
    const __m256 a0 = Avx2F32::LoadPartial(row0, counts.low);
    const __m256 b0 = Avx2F32::LoadPartial(row0 + 8, counts.high);
    const __m256 a1 = Avx2F32::LoadPartial(row1, counts.low);
    const __m256 b1 = Avx2F32::LoadPartial(row1 + 8, counts.high);
    const __m256i corner =
        _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(first)), EvenOffsets());
    __m256 best = EvenColumns(a0, b0);
    __m256i best_index = corner;
    auto consider = [&](__m256 candidate, __m256i offset) EDGEFL_INLINE_LAMBDA {
      const __m256 greater = _mm256_cmp_ps(candidate, best, _CMP_GT_OQ);
      best = _mm256_blendv_ps(best, candidate, greater);
      best_index = _mm256_castps_si256(
          _mm256_blendv_ps(_mm256_castsi256_ps(best_index),
                           _mm256_castsi256_ps(_mm256_add_epi32(corner, offset)), greater));
    };
    consider(OddColumns(a0, b0), right);
    consider(EvenColumns(a1, b1), below);
    consider(OddColumns(a1, b1), below_right);
    Avx2F32::StorePartial(y + out, best, windows);
    Avx2F32::StorePartial(argmax + out, _mm256_cvtepi32_ps(best_index), windows);
  });
}

void MaxPool2x2BackwardF32Avx2(size_t channels, size_t height, size_t width, const float* dy,
                               const float* argmax, float* dx) {
  const __m256i right = _mm256_set1_epi32(1), below = _mm256_set1_epi32(static_cast<int>(width));
  const __m256i below_right = _mm256_set1_epi32(static_cast<int>(width) + 1);
  const __m256 zero = _mm256_setzero_ps();
  ForEachWindowRun<8>(channels, height, width, [&](size_t first, size_t out, int windows) {
    // + 0.0f as the reference's sum into a zeroed dx: -0.0 becomes +0.0.
    const __m256 g = _mm256_add_ps(Avx2F32::LoadPartial(dy + out, windows), zero);
    const __m256i corner =
        _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(first)), EvenOffsets());
    const __m256i offset = _mm256_sub_epi32(
        _mm256_cvttps_epi32(Avx2F32::LoadPartial(argmax + out, windows)), corner);
    auto at = [&](__m256i corner) EDGEFL_INLINE_LAMBDA {
      return _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(offset, corner)), g);
    };
    const PairCounts counts(windows);
    auto store_row = [&](float* row, __m256 left, __m256 right_column) EDGEFL_INLINE_LAMBDA {
      const __m256 lo = _mm256_unpacklo_ps(left, right_column);  // l0 r0 l1 r1 | l4 r4 l5 r5
      const __m256 hi = _mm256_unpackhi_ps(left, right_column);  // l2 r2 l3 r3 | l6 r6 l7 r7
      Avx2F32::StorePartial(row, _mm256_permute2f128_ps(lo, hi, 0x20), counts.low);
      Avx2F32::StorePartial(row + 8, _mm256_permute2f128_ps(lo, hi, 0x31), counts.high);
    };
    store_row(dx + first, at(_mm256_setzero_si256()), at(right));
    store_row(dx + first + width, at(below), at(below_right));
  });
  ZeroUnpooledEdges(channels, height, width, dx);
}

}  // namespace

KernelTable Avx2Table() {
  return KernelTable{.isa = Isa::kAvx2,
                     .gemm_f32 = &GemmF32Avx2,
                     .gemm_u8s8s32 = &GemmU8S8S32Avx2,
                     .gemm_f32_int4 = &GemmF32Int4Avx2,
                     .gemm_f32_eigen = &GemmF32EigenAvx2,
                     .max_pool2x2_f32 = &MaxPool2x2F32Avx2,
                     .max_pool2x2_backward_f32 = &MaxPool2x2BackwardF32Avx2};
}

}  // namespace edgefl::models::kernels::internal

// AVX-512 level (F, BW, VL, DQ, VNNI). Compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512vnni -mavx512dq (kernels.cmake) and called only when dispatch.cc found them all.
// Every function here is tested against the scalar reference (reference.cc).
// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own _mm512_undefined_*()
// (GCC bug 105593, fixed in GCC 13); silenced for the intrinsic headers only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <cstring>

#include "max_pool_blocks.h"
#include "simd_gemm_f32.h"

namespace edgefl::models::kernels::internal {
namespace {

struct Avx512F32 {
  using Reg = __m512;
  static constexpr int kWidth = 16;
  static EDGEFL_INLINE __mmask16 Mask(int count) {
    return static_cast<__mmask16>((1u << count) - 1u);
  }
  static EDGEFL_INLINE Reg Zero() { return _mm512_setzero_ps(); }
  static EDGEFL_INLINE Reg Load(const float* p) { return _mm512_loadu_ps(p); }
  // Masked: lanes past `count` read nothing (no fault) and are zero.
  static EDGEFL_INLINE Reg LoadPartial(const float* p, int count) {
    return _mm512_maskz_loadu_ps(Mask(count), p);
  }
  static EDGEFL_INLINE void Store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static EDGEFL_INLINE void StorePartial(float* p, Reg v, int count) {
    _mm512_mask_storeu_ps(p, Mask(count), v);
  }
  static EDGEFL_INLINE Reg Set1(float x) { return _mm512_set1_ps(x); }
  static EDGEFL_INLINE Reg Fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static EDGEFL_INLINE Reg Mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  // out[i] = the sum of the lanes of the i-th argument.
  static EDGEFL_INLINE void ReduceAdd4(Reg a, Reg b, Reg c, Reg d, float* out) {
    // Per 128-bit lane: (a0+a2, b0+b2, a1+a3, b1+b3) and the same for c, d; then
    // (a, b, c, d) partial sums of each lane; then the four lanes are added.
    const Reg ab = _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b));
    const Reg cd = _mm512_add_ps(_mm512_unpacklo_ps(c, d), _mm512_unpackhi_ps(c, d));
    const Reg abcd = _mm512_add_ps(_mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 half =
        _mm256_add_ps(_mm512_castps512_ps256(abcd),
                      _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(abcd), 1)));
    const __m128 quarter = _mm_add_ps(_mm256_castps256_ps128(half), _mm256_extractf128_ps(half, 1));
    _mm_storeu_ps(out, quarter);
  }
};

// 12 x 32 register tile: 24 accumulators + 2 B vectors of the 32 zmm registers; the A value
// is an embedded broadcast operand of vfmadd231ps.
constexpr int kMr = 12;
constexpr int kNv = 2;
constexpr GemmF32Blocking kBlocking{.mc = 144,
                                    .kc = 256,
                                    .nc = 1024,
                                    .dot_always_max_m = 8,
                                    .dot_max_m = 24,
                                    .dot_min_k = 384,
                                    .unpacked_b_max_m = 64};
static_assert(kBlocking.mc % kMr == 0);
static_assert(kBlocking.kc * kBlocking.nc + 16 <= kGemmF32WorkspaceFloats);

// Eigen is the floor (bench/models_bench.cc runs BM_Gemm_F32Eigen, Eigen 3.4 built with these
// same flags, next to this kernel). Measured on AMD EPYC (Zen 5), one thread: this kernel wins
// by 1.3-2x on Dense shapes with a small batch as m (10..64 rows), ties on 1024^3, and loses
// on a single row (m == 1, a memory-bound product) and on a short depth over many rows
// (k <= 32, m > 64: a weight gradient over a small batch, where the fixed cost of each 12 x 32
// tile is not amortised). Those two cases go to Eigen.
bool PreferEigen(size_t m, size_t k) { return m == 1 || (k <= 32 && m > 64); }

void GemmF32Avx512(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k, float alpha,
                   const float* a, size_t lda, const float* b, size_t ldb, float beta, float* c,
                   size_t ldc, float* workspace) {
  if (PreferEigen(m, k)) {
    GemmF32EigenAvx512(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, workspace);
    return;
  }
  GemmF32Simd<Avx512F32, kMr, kNv, 4>(kBlocking, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                                      beta, c, ldc, workspace);
}

// ----- u8 x s8 -> s32 with vpdpbusd.
//
// vpdpbusd multiplies, in each 32-bit lane, four unsigned bytes of its first source by the
// four signed bytes of its second and adds the four products to the lane, without saturation.
// One Int8Block is exactly the second operand for 16 output channels and 4 depth values; the
// first is the row's 4 activations broadcast to all lanes. Exact, so equal to the reference.

// The 4 activations a[0..count) (count <= 4) as one little-endian 32-bit word, zero-padded.
EDGEFL_INLINE int32_t LoadActivations4(const uint8_t* a, size_t count) {
  uint32_t word = 0;
  std::memcpy(&word, a, count);
  return static_cast<int32_t>(word);
}

// C[rows, 16 * NB channels] for one tile of MR rows; rows past `rows` repeat the last one.
template <int MR, int NB>
void Int8Tile(size_t k, const uint8_t* a, size_t lda, int rows, const Int8Block* w,
              size_t depth_blocks, int channels, int32_t* c, size_t ldc) {
  const uint8_t* ar[MR];
  for (int r = 0; r < MR; ++r) ar[r] = a + static_cast<size_t>(r < rows ? r : rows - 1) * lda;
  __m512i acc[MR][NB];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NB; ++v) acc[r][v] = _mm512_setzero_si512();
  }
  const size_t full_blocks = k / kInt8BlockDepth;
  for (size_t kb = 0; kb < full_blocks; ++kb) {
    __m512i wv[NB];
#pragma GCC unroll 4
    for (int v = 0; v < NB; ++v) wv[v] = _mm512_loadu_si512(w + v * depth_blocks + kb);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(LoadActivations4(ar[r] + 4 * kb, 4));
#pragma GCC unroll 4
      for (int v = 0; v < NB; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, wv[v]);
    }
  }
  if (full_blocks < depth_blocks) {
    const size_t kb = full_blocks;
    const size_t rest = k - kb * kInt8BlockDepth;
    __m512i wv[NB];
    for (int v = 0; v < NB; ++v) wv[v] = _mm512_loadu_si512(w + v * depth_blocks + kb);
    for (int r = 0; r < MR; ++r) {
      const __m512i av = _mm512_set1_epi32(LoadActivations4(ar[r] + 4 * kb, rest));
      for (int v = 0; v < NB; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], av, wv[v]);
    }
  }
  for (int r = 0; r < rows; ++r) {
    for (int v = 0; v < NB; ++v) {
      const int count = ClampCount(channels - v * 16, 16);
      _mm512_mask_storeu_epi32(c + r * ldc + v * 16, static_cast<__mmask16>((1u << count) - 1u),
                               acc[r][v]);
    }
  }
}

constexpr int kInt8Mr = 8;

void GemmU8S8S32Avx512(size_t m, size_t n, size_t k, const uint8_t* a, size_t lda,
                       const Int8Block* packed_w, int32_t* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  const size_t depth_blocks = Int8DepthBlocks(k);
  const size_t channel_blocks = Int8ChannelBlocks(n);
  for (size_t nb = 0; nb < channel_blocks; nb += 2) {
    const Int8Block* w = packed_w + nb * depth_blocks;
    const int channels = static_cast<int>(MinSize(32, n - nb * 16));
    for (size_t i = 0; i < m; i += kInt8Mr) {
      const int rows = static_cast<int>(MinSize(kInt8Mr, m - i));
      int32_t* c_tile = c + i * ldc + nb * 16;
      if (nb + 1 < channel_blocks) {
        Int8Tile<kInt8Mr, 2>(k, a + i * lda, lda, rows, w, depth_blocks, channels, c_tile, ldc);
      } else {
        Int8Tile<kInt8Mr, 1>(k, a + i * lda, lda, rows, w, depth_blocks, channels, c_tile, ldc);
      }
    }
  }
}

// ----- fp32 x int4 (group 32) -> fp32.
//
// Each group's 16 bytes give values 0..15 (low nibbles) and 16..31 (high nibbles), widened to
// 32-bit lanes and converted to float; w = fma(nibble, scale, -8 * scale) is the reference's
// (nibble - 8) * scale rounded once, because 8 * scale is exact. The tile is MR rows of X by NW
// rows of W; X is read from memory by the FMAs.

EDGEFL_INLINE void DequantizeGroup(const Int4Block& block, __m512& lo, __m512& hi) {
  const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(block.packed));
  const __m128i low_mask = _mm_set1_epi8(0x0F);
  const __m128i lo_nibbles = _mm_and_si128(bytes, low_mask);
  const __m128i hi_nibbles = _mm_and_si128(_mm_srli_epi16(bytes, 4), low_mask);
  const __m512 scale = _mm512_set1_ps(block.scale);
  const __m512 offset = _mm512_set1_ps(-8.0f * block.scale);
  lo = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(lo_nibbles)), scale, offset);
  hi = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(hi_nibbles)), scale, offset);
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
  __m512 acc[MR][NW];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < NW; ++j) acc[r][j] = _mm512_setzero_ps();
  }
  const size_t full_groups = k / kInt4GroupSize;
  for (size_t g = 0; g < full_groups; ++g) {
    __m512 lo[NW], hi[NW];
#pragma GCC unroll 4
    for (int j = 0; j < NW; ++j) DequantizeGroup(wr[j][g], lo[j], hi[j]);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 x0 = _mm512_loadu_ps(xr[r] + g * kInt4GroupSize);
      const __m512 x1 = _mm512_loadu_ps(xr[r] + g * kInt4GroupSize + 16);
#pragma GCC unroll 4
      for (int j = 0; j < NW; ++j) {
        acc[r][j] = _mm512_fmadd_ps(x0, lo[j], acc[r][j]);
        acc[r][j] = _mm512_fmadd_ps(x1, hi[j], acc[r][j]);
      }
    }
  }
  if (full_groups * kInt4GroupSize < k) {
    const size_t g = full_groups;
    const int rest = static_cast<int>(k - g * kInt4GroupSize);
    const __mmask16 mask0 = static_cast<__mmask16>((1u << ClampCount(rest, 16)) - 1u);
    const __mmask16 mask1 = static_cast<__mmask16>((1u << ClampCount(rest - 16, 16)) - 1u);
    __m512 lo[NW], hi[NW];
    for (int j = 0; j < NW; ++j) DequantizeGroup(wr[j][g], lo[j], hi[j]);
    for (int r = 0; r < MR; ++r) {
      const __m512 x0 = _mm512_maskz_loadu_ps(mask0, xr[r] + g * kInt4GroupSize);
      const __m512 x1 = _mm512_maskz_loadu_ps(mask1, xr[r] + g * kInt4GroupSize + 16);
      for (int j = 0; j < NW; ++j) {
        acc[r][j] = _mm512_fmadd_ps(x0, lo[j], acc[r][j]);
        acc[r][j] = _mm512_fmadd_ps(x1, hi[j], acc[r][j]);
      }
    }
  }
  for (int r = 0; r < rows; ++r) {
    for (int j = 0; j < cols; ++j) {
      float& out = y[r * ldy + j];
      const float sum = _mm512_reduce_add_ps(acc[r][j]);
      out = beta == 0.0f ? sum : sum + beta * out;
    }
  }
}

constexpr int kInt4Mr = 8;
constexpr int kInt4Nw = 2;

// From this many rows on, a panel of 32 weight rows x 256 depths is dequantized once into the
// fp32 micro-kernel's packed-B layout and shared by every 12-row tile, instead of being
// dequantized again for each tile: the per-element transposing stores then cost less than the
// repeated dequantization.
constexpr size_t kInt4PanelMinRows = 128;
constexpr size_t kInt4PanelDepth = 256;  // a multiple of kInt4GroupSize
constexpr int kInt4PanelWidth = kNv * 16;

// panel[p * 32 + j] = W[j0 + j, pc + p] for j < cols, p < kc; zero for cols <= j < 32.
void DequantizePanel(const Int4Block* w, size_t blocks_per_row, int cols, size_t pc, size_t kc,
                     float* panel) {
  alignas(64) float values[kInt4GroupSize];
  for (int j = 0; j < kInt4PanelWidth; ++j) {
    if (j >= cols) {
      for (size_t p = 0; p < kc; ++p) panel[p * kInt4PanelWidth + j] = 0.0f;
      continue;
    }
    const Int4Block* row = w + static_cast<size_t>(j) * blocks_per_row;
    for (size_t p0 = 0; p0 < kc; p0 += kInt4GroupSize) {
      __m512 lo, hi;
      DequantizeGroup(row[(pc + p0) / kInt4GroupSize], lo, hi);
      _mm512_store_ps(values, lo);
      _mm512_store_ps(values + 16, hi);
      const size_t count = MinSize(kInt4GroupSize, kc - p0);
      for (size_t e = 0; e < count; ++e) panel[(p0 + e) * kInt4PanelWidth + j] = values[e];
    }
  }
}

void GemmF32Int4Avx512(size_t m, size_t n, size_t k, const float* x, size_t ldx,
                       const Int4Block* w, float beta, float* y, size_t ldy) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    ScaleC(m, n, beta, y, ldy);
    return;
  }
  const size_t blocks_per_row = Int4BlocksPerRow(k);
  const size_t panel_rows = m >= kInt4PanelMinRows ? m / kMr * kMr : 0;
  if (panel_rows > 0) {
    alignas(64) float panel[kInt4PanelDepth * kInt4PanelWidth];  // 32 KiB, stays in L1
    for (size_t j0 = 0; j0 < n; j0 += kInt4PanelWidth) {
      const int cols = static_cast<int>(MinSize(kInt4PanelWidth, n - j0));
      for (size_t pc = 0; pc < k; pc += kInt4PanelDepth) {
        const size_t kc = MinSize(kInt4PanelDepth, k - pc);
        DequantizePanel(w + j0 * blocks_per_row, blocks_per_row, cols, pc, kc, panel);
        const float beta_slice = pc == 0 ? beta : 1.0f;
        for (size_t i = 0; i < panel_rows; i += kMr) {
          const float* rows[kMr];
          for (int r = 0; r < kMr; ++r) rows[r] = x + (i + r) * ldx + pc;
          MicroKernel<Avx512F32, kMr, kNv, false, false>(kc, rows, 1, panel, kInt4PanelWidth,
                                                         kMr, cols, 1.0f, beta_slice,
                                                         y + i * ldy + j0, ldy);
        }
      }
    }
  }
  for (size_t j = 0; j < n; j += kInt4Nw) {
    const int cols = static_cast<int>(MinSize(kInt4Nw, n - j));
    for (size_t i = panel_rows; i < m; i += kInt4Mr) {
      const int rows = static_cast<int>(MinSize(kInt4Mr, m - i));
      Int4Tile<kInt4Mr, kInt4Nw>(k, x + i * ldx, ldx, rows, w + j * blocks_per_row,
                                 blocks_per_row, cols, beta, y + i * ldy + j, ldy);
    }
  }
}


// 2x2 max-pooling, 16 windows of an output row at a time. Each input row's 32 values split into
// even and odd columns by two-source permutes, which gives the four corners of 16 windows in
// four registers; then the reference's running maximum in its order (corner, right, below,
// below right) as compare-and-blend of values and indices, so the bits are the reference's.
// Masked loads and stores cover a row's last, partial block.
constexpr int32_t kEvenLanes[16] = {0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30};
constexpr int32_t kOddLanes[16] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31};
constexpr int32_t kInterleaveLow[16] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23};
constexpr int32_t kInterleaveHigh[16] = {8,  24, 9,  25, 10, 26, 11, 27,
                                         12, 28, 13, 29, 14, 30, 15, 31};

EDGEFL_INLINE __m512i LoadLanes(const int32_t* lanes) {
  return _mm512_loadu_si512(static_cast<const void*>(lanes));
}

// The masks of a block of `windows` windows' 2 * windows inputs of one row: 32 floats as two
// registers.
struct PairMasks {
  __mmask16 low, high;
  explicit PairMasks(int windows)
      : low(Avx512F32::Mask(windows >= 8 ? 16 : 2 * windows)),
        high(Avx512F32::Mask(windows > 8 ? 2 * windows - 16 : 0)) {}
};

void MaxPool2x2F32Avx512(size_t channels, size_t height, size_t width, const float* x, float* y,
                         float* argmax) {
  const __m512i even = LoadLanes(kEvenLanes), odd = LoadLanes(kOddLanes);
  const __m512i right = _mm512_set1_epi32(1), below = _mm512_set1_epi32(static_cast<int>(width));
  const __m512i below_right = _mm512_set1_epi32(static_cast<int>(width) + 1);
  ForEachWindowRun<16>(channels, height, width, [&](size_t first, size_t out, int windows) {
    const PairMasks masks(windows);
    const float* row0 = x + first;
    const float* row1 = row0 + width;
    const __m512 a0 = _mm512_maskz_loadu_ps(masks.low, row0);
    const __m512 b0 = _mm512_maskz_loadu_ps(masks.high, row0 + 16);
    const __m512 a1 = _mm512_maskz_loadu_ps(masks.low, row1);
    const __m512 b1 = _mm512_maskz_loadu_ps(masks.high, row1 + 16);
    const __m512i corner = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first)), even);
    __m512 best = _mm512_permutex2var_ps(a0, even, b0);
    __m512i best_index = corner;
    auto consider = [&](__m512 candidate, __m512i offset) EDGEFL_INLINE_LAMBDA {
      const __mmask16 greater = _mm512_cmp_ps_mask(candidate, best, _CMP_GT_OQ);
      best = _mm512_mask_blend_ps(greater, best, candidate);
      best_index = _mm512_mask_blend_epi32(greater, best_index, _mm512_add_epi32(corner, offset));
    };
    consider(_mm512_permutex2var_ps(a0, odd, b0), right);
    consider(_mm512_permutex2var_ps(a1, even, b1), below);
    consider(_mm512_permutex2var_ps(a1, odd, b1), below_right);
    const __mmask16 out_mask = Avx512F32::Mask(windows);
    _mm512_mask_storeu_ps(y + out, out_mask, best);
    _mm512_mask_storeu_ps(argmax + out, out_mask, _mm512_cvtepi32_ps(best_index));
  });
}

// The gradient, 16 windows at a time: each window's dy goes to the corner its argmax names and
// +0.0 to the other three, interleaved back into the two rows, so dx is written once without
// being zeroed first.
void MaxPool2x2BackwardF32Avx512(size_t channels, size_t height, size_t width, const float* dy,
                                 const float* argmax, float* dx) {
  const __m512i even = LoadLanes(kEvenLanes);
  const __m512i low = LoadLanes(kInterleaveLow), high = LoadLanes(kInterleaveHigh);
  const __m512i right = _mm512_set1_epi32(1), below = _mm512_set1_epi32(static_cast<int>(width));
  const __m512i below_right = _mm512_set1_epi32(static_cast<int>(width) + 1);
  const __m512 zero = _mm512_setzero_ps();
  ForEachWindowRun<16>(channels, height, width, [&](size_t first, size_t out, int windows) {
    const __mmask16 out_mask = Avx512F32::Mask(windows);
    // + 0.0f as the reference's sum into a zeroed dx: -0.0 becomes +0.0.
    const __m512 g = _mm512_add_ps(_mm512_maskz_loadu_ps(out_mask, dy + out), zero);
    const __m512i offset =
        _mm512_sub_epi32(_mm512_cvttps_epi32(_mm512_maskz_loadu_ps(out_mask, argmax + out)),
                         _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(first)), even));
    auto at = [&](__m512i corner) EDGEFL_INLINE_LAMBDA {
      return _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(offset, corner), g);
    };
    const __m512 d00 = at(_mm512_setzero_si512()), d01 = at(right);
    const __m512 d10 = at(below), d11 = at(below_right);
    const PairMasks masks(windows);
    float* row0 = dx + first;
    float* row1 = row0 + width;
    _mm512_mask_storeu_ps(row0, masks.low, _mm512_permutex2var_ps(d00, low, d01));
    _mm512_mask_storeu_ps(row0 + 16, masks.high, _mm512_permutex2var_ps(d00, high, d01));
    _mm512_mask_storeu_ps(row1, masks.low, _mm512_permutex2var_ps(d10, low, d11));
    _mm512_mask_storeu_ps(row1 + 16, masks.high, _mm512_permutex2var_ps(d10, high, d11));
  });
  ZeroUnpooledEdges(channels, height, width, dx);
}

}  // namespace

KernelTable Avx512Table() {
  return KernelTable{.isa = Isa::kAvx512,
                     .gemm_f32 = &GemmF32Avx512,
                     .gemm_u8s8s32 = &GemmU8S8S32Avx512,
                     .gemm_f32_int4 = &GemmF32Int4Avx512,
                     .gemm_f32_eigen = &GemmF32EigenAvx512,
                     .max_pool2x2_f32 = &MaxPool2x2F32Avx512,
                     .max_pool2x2_backward_f32 = &MaxPool2x2BackwardF32Avx512};
}

}  // namespace edgefl::models::kernels::internal

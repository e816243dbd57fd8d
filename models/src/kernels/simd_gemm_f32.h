// The fp32 GEMM shared by avx2.cc and avx512.cc, written once over a vector-traits type `T`
// and compiled into each of those files with its own instruction-set flags. Include it only
// from an instruction-set file: everything here has internal linkage (anonymous namespace), so
// the AVX-512 instantiation can never be picked by the linker for an AVX2 caller.
//
// Algorithm: the loop nest of Goto & van de Geijn 2008 ("Anatomy of high-performance matrix
// multiplication") around an MR x NR register tile that broadcasts one value of op(A) per row
// and multiplies it into NR / width vectors of one row of op(B). Only op(B) is ever packed:
//   * op(B) untransposed (NN, TN) with m <= unpacked_b_max_m: B's rows are read in place, with
//     masked loads at the right edge. Nothing is packed.
//   * otherwise op(B) is packed per KC x NC block into NR-wide, zero-padded panels
//     (pb[p * NR + j]) that stay in L1 while the A rows stream through.
//   * NT (Y = X W^T) with few rows and a long k: a dot-product kernel over rows of A and rows
//     of B, both contiguous in k, so a Dense forward pass on a small batch packs nothing.
// op(A) is never packed: each tile reads its MR rows in place (a row pointer per row, stride 1
// untransposed, stride lda transposed). Tested against GemmF32Reference
// (tests/models/kernels_test.cc).
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "internal.h"

#define EDGEFL_INLINE inline __attribute__((always_inline))
#define EDGEFL_INLINE_LAMBDA __attribute__((always_inline))

namespace edgefl::models::kernels::internal {
namespace {

inline size_t MinSize(size_t a, size_t b) { return a < b ? a : b; }
inline int ClampCount(long count, int width) {
  return count <= 0 ? 0 : (count >= width ? width : static_cast<int>(count));
}
inline float* AlignUp64(float* p) {
  const auto address = reinterpret_cast<uintptr_t>(p);
  return reinterpret_cast<float*>((address + 63) & ~uintptr_t{63});
}

// C[0:m, 0:n] *= beta, or = 0 when beta == 0 (without reading C).
inline void ScaleC(size_t m, size_t n, float beta, float* c, size_t ldc) {
  for (size_t i = 0; i < m; ++i) {
    float* row = c + i * ldc;
    if (beta == 0.0f) {
      for (size_t j = 0; j < n; ++j) row[j] = 0.0f;
    } else if (beta != 1.0f) {
      for (size_t j = 0; j < n; ++j) row[j] *= beta;
    }
  }
}

// Stores an accumulator tile row: c = alpha * acc + beta * c (c not read when beta == 0).
template <class T>
EDGEFL_INLINE void StoreResult(float* c, typename T::Reg acc, int count, float alpha, float beta) {
  typename T::Reg result = alpha == 1.0f ? acc : T::Mul(acc, T::Set1(alpha));
  if (count == T::kWidth) {
    if (beta != 0.0f) result = T::Fma(T::Set1(beta), T::Load(c), result);
    T::Store(c, result);
  } else if (count > 0) {
    if (beta != 0.0f) result = T::Fma(T::Set1(beta), T::LoadPartial(c, count), result);
    T::StorePartial(c, result, count);
  }
}

// C[0:rows, 0:cols] = alpha * A * B + beta * C for one MR x NR tile over kc steps. Row r of A
// at step p is ar[r][p] (kStridedA false: op(A) untransposed) or ar[r][p * a_step] (kStridedA
// true: A stored transposed, a_step = lda); rows past `rows` point at the last valid row and
// are not stored. B's row p starts at b + p * ldb; when kMaskB it holds only `cols` valid
// floats and is read with masked loads, else NR floats are readable.
template <class T, int MR, int NV, bool kMaskB, bool kStridedA>
void MicroKernel(size_t kc, const float* const* ar, size_t a_step, const float* __restrict b,
                 size_t ldb, int rows, int cols, float alpha, float beta, float* c, size_t ldc) {
  constexpr int W = T::kWidth;
  using Reg = typename T::Reg;
  const float* a_rows[MR];
  for (int r = 0; r < MR; ++r) a_rows[r] = ar[r];
  Reg acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = T::Zero();
  }
  int counts[NV];
  for (int v = 0; v < NV; ++v) counts[v] = ClampCount(cols - v * W, W);
  const size_t step = kStridedA ? a_step : 1;
  size_t offset = 0;
  for (size_t p = 0; p < kc; ++p) {
    Reg bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) {
      bv[v] = kMaskB ? T::LoadPartial(b + v * W, counts[v]) : T::Load(b + v * W);
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const Reg a_value = T::Set1(a_rows[r][offset]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = T::Fma(a_value, bv[v], acc[r][v]);
    }
    offset += step;
    b += ldb;
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
    if (r < rows) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        StoreResult<T>(c + r * ldc + v * W, acc[r][v], counts[v], alpha, beta);
      }
    }
  }
}

// Writes the transpose of the 8 x 8 block at src (rows ld apart) to dst (rows NR apart).
// AVX is available in every file that includes this header.
template <int NR>
EDGEFL_INLINE void Transpose8x8(const float* src, size_t ld, float* dst) {
  __m256 r[8], t[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  // Now r[i] (i < 4) holds column i of rows 0-3 in its low half and column i + 4 in its high
  // half; r[i + 4] the same for rows 4-7.
  for (int i = 0; i < 4; ++i) {
    _mm256_storeu_ps(dst + i * NR, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
    _mm256_storeu_ps(dst + (i + 4) * NR, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
  }
}

// Packs op(B)[0:kc, 0:nc] (starting at `b`) into NR-wide panels, zero-padding the last one.
// Transposed B (NT, Dense forward) is packed by 8 x 8 register transposes.
template <int NR>
void PackB(Transpose trans, const float* b, size_t ldb, size_t kc, size_t nc, float* pb) {
  for (size_t j0 = 0; j0 < nc; j0 += NR) {
    const size_t cols = MinSize(NR, nc - j0);
    float* panel = pb + j0 * kc;
    if (trans == Transpose::kNo) {
      for (size_t p = 0; p < kc; ++p) {
        const float* src = b + p * ldb + j0;
        float* dst = panel + p * NR;
        for (size_t j = 0; j < cols; ++j) dst[j] = src[j];
        for (size_t j = cols; j < NR; ++j) dst[j] = 0.0f;
      }
      continue;
    }
    const size_t cols8 = cols / 8 * 8;
    const size_t kc8 = kc / 8 * 8;
    for (size_t j = 0; j < cols8; j += 8) {
      const float* src = b + (j0 + j) * ldb;
      for (size_t p = 0; p < kc8; p += 8) Transpose8x8<NR>(src + p, ldb, panel + p * NR + j);
      for (size_t jj = j; jj < j + 8; ++jj) {
        for (size_t p = kc8; p < kc; ++p) panel[p * NR + jj] = b[(j0 + jj) * ldb + p];
      }
    }
    for (size_t j = cols8; j < cols; ++j) {
      const float* src = b + (j0 + j) * ldb;
      for (size_t p = 0; p < kc; ++p) panel[p * NR + j] = src[p];
    }
    for (size_t j = cols; j < NR; ++j) {
      for (size_t p = 0; p < kc; ++p) panel[p * NR + j] = 0.0f;
    }
  }
}

// C[rows, cols] = alpha * A[rows, k] * B[cols, k]^T + beta * C for one DR x 4 tile, both
// operands contiguous along k. Rows or columns past the edge repeat the last valid one (so no
// load leaves the matrices) and are not stored.
template <class T, int DR>
void DotTile(size_t k, const float* a, size_t lda, const float* b, size_t ldb, int rows, int cols,
             float alpha, float beta, float* c, size_t ldc) {
  constexpr int DC = 4;
  constexpr int W = T::kWidth;
  using Reg = typename T::Reg;
  const float* ar[DR];
  const float* br[DC];
  for (int r = 0; r < DR; ++r) ar[r] = a + static_cast<size_t>(r < rows ? r : rows - 1) * lda;
  for (int j = 0; j < DC; ++j) br[j] = b + static_cast<size_t>(j < cols ? j : cols - 1) * ldb;
  Reg acc[DR][DC];
#pragma GCC unroll 8
  for (int r = 0; r < DR; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < DC; ++j) acc[r][j] = T::Zero();
  }
  size_t p = 0;
  for (; p + W <= k; p += W) {
    Reg av[DR];
#pragma GCC unroll 8
    for (int r = 0; r < DR; ++r) av[r] = T::Load(ar[r] + p);
#pragma GCC unroll 8
    for (int j = 0; j < DC; ++j) {
      const Reg bv = T::Load(br[j] + p);
#pragma GCC unroll 8
      for (int r = 0; r < DR; ++r) acc[r][j] = T::Fma(av[r], bv, acc[r][j]);
    }
  }
  if (p < k) {
    const int count = static_cast<int>(k - p);
    Reg av[DR];
    for (int r = 0; r < DR; ++r) av[r] = T::LoadPartial(ar[r] + p, count);
    for (int j = 0; j < DC; ++j) {
      const Reg bv = T::LoadPartial(br[j] + p, count);
      for (int r = 0; r < DR; ++r) acc[r][j] = T::Fma(av[r], bv, acc[r][j]);
    }
  }
  for (int r = 0; r < rows; ++r) {
    float sums[DC];
    T::ReduceAdd4(acc[r][0], acc[r][1], acc[r][2], acc[r][3], sums);
    for (int j = 0; j < cols; ++j) {
      float& out = c[r * ldc + j];
      const float sum = alpha * sums[j];
      out = beta == 0.0f ? sum : sum + beta * out;
    }
  }
}

// Block sizes and path thresholds of one level (see the file comment). KC x NR floats of
// packed B stay in L1 and KC x NC in L2/L3; MC rows of A share one pass over a B block.
struct GemmF32Blocking {
  size_t mc, kc, nc;
  // NT with m <= dot_always_max_m, or with m <= dot_max_m and k >= dot_min_k: the
  // dot-product kernel, nothing packed (its horizontal sums only pay off over a long k, and
  // packing B only over enough rows of A).
  size_t dot_always_max_m, dot_max_m, dot_min_k;
  size_t unpacked_b_max_m;  // op(B) untransposed with m <= this: B read in place
};

template <class T, int MR, int NV, int DR>
void GemmF32Simd(const GemmF32Blocking& blk, Transpose trans_a, Transpose trans_b, size_t m,
                 size_t n, size_t k, float alpha, const float* a, size_t lda, const float* b,
                 size_t ldb, float beta, float* c, size_t ldc, float* workspace) {
  constexpr int NR = NV * T::kWidth;
  if (m == 0 || n == 0) return;
  if (k == 0 || alpha == 0.0f) {
    ScaleC(m, n, beta, c, ldc);
    return;
  }
  const auto at_a = [&](size_t i, size_t p) {
    return trans_a == Transpose::kNo ? a + i * lda + p : a + p * lda + i;
  };
  const auto at_b = [&](size_t p, size_t j) {
    return trans_b == Transpose::kNo ? b + p * ldb + j : b + j * ldb + p;
  };

  const bool dot = m <= blk.dot_always_max_m || (m <= blk.dot_max_m && k >= blk.dot_min_k);
  if (dot && trans_a == Transpose::kNo && trans_b == Transpose::kYes) {
    for (size_t i = 0; i < m; i += DR) {
      const int rows = static_cast<int>(MinSize(DR, m - i));
      for (size_t j = 0; j < n; j += 4) {
        const int cols = static_cast<int>(MinSize(4, n - j));
        DotTile<T, DR>(k, a + i * lda, lda, b + j * ldb, ldb, rows, cols, alpha, beta,
                       c + i * ldc + j, ldc);
      }
    }
    return;
  }

  // One micro-kernel call: rows [i, i + rows) of op(A) from depth pc; B rows from b_tile. A
  // tile of fewer than MR rows runs a kernel of that many rows rounded up to even, so short
  // edges (a batch of 10 or 32) waste at most one row of work.
  const auto tile = [&](size_t i, int rows, size_t pc, size_t kc, const float* b_tile,
                        size_t ldb_tile, int cols, bool mask_b, float beta_slice, float* c_tile) {
    const float* ar[MR];
    for (int r = 0; r < MR; ++r) {
      ar[r] = at_a(i + static_cast<size_t>(r < rows ? r : rows - 1), pc);
    }
    const size_t a_step = trans_a == Transpose::kNo ? 1 : lda;
    const auto run = [&]<int kRows>() {
      if (trans_a == Transpose::kNo) {
        if (mask_b) {
          MicroKernel<T, kRows, NV, true, false>(kc, ar, a_step, b_tile, ldb_tile, rows, cols,
                                                 alpha, beta_slice, c_tile, ldc);
        } else {
          MicroKernel<T, kRows, NV, false, false>(kc, ar, a_step, b_tile, ldb_tile, rows, cols,
                                                  alpha, beta_slice, c_tile, ldc);
        }
      } else {
        if (mask_b) {
          MicroKernel<T, kRows, NV, true, true>(kc, ar, a_step, b_tile, ldb_tile, rows, cols, alpha,
                                                beta_slice, c_tile, ldc);
        } else {
          MicroKernel<T, kRows, NV, false, true>(kc, ar, a_step, b_tile, ldb_tile, rows, cols,
                                                 alpha, beta_slice, c_tile, ldc);
        }
      }
    };
    static_assert(MR % 2 == 0 && MR <= 12, "row-count dispatch covers even MR up to 12");
    switch ((rows + 1) / 2 * 2) {
      case 2:
        run.template operator()<2>();
        break;
      case 4:
        run.template operator()<4>();
        break;
      case 6:
        run.template operator()<6>();
        break;
      case 8:
        if constexpr (MR >= 8) run.template operator()<8>();
        break;
      case 10:
        if constexpr (MR >= 10) run.template operator()<10>();
        break;
      default:
        run.template operator()<MR>();
        break;
    }
  };

  if (trans_b == Transpose::kNo && m <= blk.unpacked_b_max_m) {
    for (size_t pc = 0; pc < k; pc += blk.kc) {
      const size_t kc = MinSize(blk.kc, k - pc);
      const float beta_slice = pc == 0 ? beta : 1.0f;
      for (size_t ic = 0; ic < m; ic += blk.mc) {
        const size_t mc = MinSize(blk.mc, m - ic);
        for (size_t jc = 0; jc < n; jc += NR) {
          const int cols = static_cast<int>(MinSize(NR, n - jc));
          for (size_t ir = 0; ir < mc; ir += MR) {
            const int rows = static_cast<int>(MinSize(MR, mc - ir));
            tile(ic + ir, rows, pc, kc, at_b(pc, jc), ldb, cols, cols < NR, beta_slice,
                 c + (ic + ir) * ldc + jc);
          }
        }
      }
    }
    return;
  }

  float* pb = AlignUp64(workspace);
  for (size_t jc = 0; jc < n; jc += blk.nc) {
    const size_t nc = MinSize(blk.nc, n - jc);
    for (size_t pc = 0; pc < k; pc += blk.kc) {
      const size_t kc = MinSize(blk.kc, k - pc);
      const float beta_slice = pc == 0 ? beta : 1.0f;
      PackB<NR>(trans_b, at_b(pc, jc), ldb, kc, nc, pb);
      for (size_t ic = 0; ic < m; ic += blk.mc) {
        const size_t mc = MinSize(blk.mc, m - ic);
        for (size_t jr = 0; jr < nc; jr += NR) {
          const int cols = static_cast<int>(MinSize(NR, nc - jr));
          for (size_t ir = 0; ir < mc; ir += MR) {
            const int rows = static_cast<int>(MinSize(MR, mc - ir));
            tile(ic + ir, rows, pc, kc, pb + jr * kc, NR, cols, false, beta_slice,
                 c + (ic + ir) * ldc + jc + jr);
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace edgefl::models::kernels::internal

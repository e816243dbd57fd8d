// Threaded drivers over the dispatched kernels (kernels.h, "Threaded drivers"). The kernels
// stay leaf functions; this file owns the OpenMP region, the split into chunks and each
// thread's workspace. Chunks are whole rows (or whole columns), so every output element is
// computed by exactly one kernel call, in the same order as a serial call over that chunk.
#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "edgefl/common/check.h"
#include "edgefl/models/kernels.h"

namespace edgefl::models::kernels {
namespace {

// A thread is worth forking for about this many multiply-adds (~25 us on one AVX-512 core):
// waking a team costs a few microseconds on an idle machine and far more on a loaded one, so a
// Dense forward pass on a batch of 10 (1.6M multiply-adds) stays on one thread.
constexpr double kMinMultiplyAddsPerThread = 2.0 * 1024.0 * 1024.0;
// Row chunks are multiples of this (a few register tiles); column chunks of kColumnGranule,
// which is also the int8 weight block's channel count.
constexpr size_t kRowGranule = 16;
constexpr size_t kColumnGranule = 16;

struct Split {
  int threads = 1;
  bool by_rows = true;
  size_t chunk = 0;  // rows or columns per thread
};

size_t RoundUp(size_t x, size_t multiple) { return (x + multiple - 1) / multiple * multiple; }

Split ChooseSplit(size_t m, size_t n, size_t k) {
  Split split;
  if (omp_in_parallel() || m == 0 || n == 0) return split;
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const int by_work = static_cast<int>(std::min(work / kMinMultiplyAddsPerThread, 1024.0));
  int threads = std::min(omp_get_max_threads(), std::max(by_work, 1));
  if (threads <= 1) return split;
  if (m >= static_cast<size_t>(threads) * kRowGranule) {
    split.by_rows = true;
    split.chunk = RoundUp((m + threads - 1) / threads, kRowGranule);
    threads = static_cast<int>((m + split.chunk - 1) / split.chunk);
  } else {
    split.by_rows = false;
    split.chunk = RoundUp((n + threads - 1) / threads, kColumnGranule);
    threads = static_cast<int>((n + split.chunk - 1) / split.chunk);
  }
  split.threads = threads;
  return split;
}

float* ThreadWorkspace() {
  thread_local std::vector<float> workspace(kGemmF32WorkspaceFloats);
  return workspace.data();
}

// Runs body(begin, end) over [0, extent) cut into `split.chunk`-sized pieces, one per thread.
template <typename Body>
void RunChunks(const Split& split, size_t extent, Body body) {
  if (split.threads <= 1) {
    body(size_t{0}, extent);
    return;
  }
#pragma omp parallel num_threads(split.threads)
  {
    const size_t begin = static_cast<size_t>(omp_get_thread_num()) * split.chunk;
    if (begin < extent) body(begin, std::min(extent, begin + split.chunk));
  }
}

}  // namespace

int MaxDriverThreads() { return omp_in_parallel() ? 1 : omp_get_max_threads(); }

void ParallelGemmF32(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                     float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                     float beta, float* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  EDGEFL_CHECK(c != nullptr && ldc >= n) << "GEMM C: ldc " << ldc << " < n " << n;
  if (k > 0) {
    EDGEFL_CHECK(a != nullptr && b != nullptr);
    EDGEFL_CHECK(lda >= (trans_a == Transpose::kNo ? k : m)) << "GEMM lda " << lda;
    EDGEFL_CHECK(ldb >= (trans_b == Transpose::kNo ? n : k)) << "GEMM ldb " << ldb;
  }
  const GemmF32Fn gemm = Kernels().gemm_f32;
  const Split split = ChooseSplit(m, n, k);
  if (split.by_rows) {
    RunChunks(split, m, [&](size_t i0, size_t i1) {
      const float* a_chunk = trans_a == Transpose::kNo ? a + i0 * lda : a + i0;
      gemm(trans_a, trans_b, i1 - i0, n, k, alpha, a_chunk, lda, b, ldb, beta, c + i0 * ldc, ldc,
           ThreadWorkspace());
    });
  } else {
    RunChunks(split, n, [&](size_t j0, size_t j1) {
      const float* b_chunk = trans_b == Transpose::kNo ? b + j0 : b + j0 * ldb;
      gemm(trans_a, trans_b, m, j1 - j0, k, alpha, a, lda, b_chunk, ldb, beta, c + j0, ldc,
           ThreadWorkspace());
    });
  }
}

void ParallelGemmU8S8S32(size_t m, size_t n, size_t k, const uint8_t* a, size_t lda,
                         const Int8Block* packed_w, int32_t* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  EDGEFL_CHECK(c != nullptr && ldc >= n) << "int8 GEMM: ldc " << ldc << " < n " << n;
  EDGEFL_CHECK_LE(k, kMaxInt8GemmDepth);
  if (k > 0) EDGEFL_CHECK(a != nullptr && packed_w != nullptr && lda >= k);
  const GemmU8S8S32Fn gemm = Kernels().gemm_u8s8s32;
  const Split split = ChooseSplit(m, n, k);
  if (split.by_rows) {
    RunChunks(split, m, [&](size_t i0, size_t i1) {
      gemm(i1 - i0, n, k, a + i0 * lda, lda, packed_w, c + i0 * ldc, ldc);
    });
  } else {
    static_assert(kColumnGranule % kInt8BlockChannels == 0);
    const size_t depth_blocks = Int8DepthBlocks(k);
    RunChunks(split, n, [&](size_t j0, size_t j1) {
      gemm(m, j1 - j0, k, a, lda, packed_w + (j0 / kInt8BlockChannels) * depth_blocks, c + j0, ldc);
    });
  }
}

void ParallelGemmF32Int4(size_t m, size_t n, size_t k, const float* x, size_t ldx,
                         const Int4Block* w, float beta, float* y, size_t ldy) {
  if (m == 0 || n == 0) return;
  EDGEFL_CHECK(y != nullptr && ldy >= n) << "int4 GEMM: ldy " << ldy << " < n " << n;
  if (k > 0) EDGEFL_CHECK(x != nullptr && w != nullptr && ldx >= k);
  const GemmF32Int4Fn gemm = Kernels().gemm_f32_int4;
  const Split split = ChooseSplit(m, n, k);
  if (split.by_rows) {
    RunChunks(split, m, [&](size_t i0, size_t i1) {
      gemm(i1 - i0, n, k, x + i0 * ldx, ldx, w, beta, y + i0 * ldy, ldy);
    });
  } else {
    const size_t blocks_per_row = Int4BlocksPerRow(k);
    RunChunks(split, n, [&](size_t j0, size_t j1) {
      gemm(m, j1 - j0, k, x, ldx, w + j0 * blocks_per_row, beta, y + j0, ldy);
    });
  }
}

}  // namespace edgefl::models::kernels

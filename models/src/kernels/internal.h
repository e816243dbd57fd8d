// Private to models/src/kernels: the per-level tables and the scalar reference kernels that
// every level's file may fall back to. See edgefl/models/kernels.h for the contracts.
#pragma once

#include <cstddef>
#include <cstdint>

#include "edgefl/models/kernels.h"

namespace edgefl::models::kernels::internal {

// One per source file; each is compiled with its own instruction-set flags, so call a level's
// function only when IsaSupported(level).
KernelTable ReferenceTable();  // reference.cc
KernelTable BaselineTable();   // baseline.cc (Eigen)
KernelTable Avx2Table();       // avx2.cc
KernelTable Avx512Table();     // avx512.cc

void GemmF32Reference(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                      float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                      float beta, float* c, size_t ldc, float* workspace);
// Eigen's GEMM per level (baseline.cc, eigen_avx2.cc, eigen_avx512.cc; see eigen_gemm.h).
void GemmF32EigenBaseline(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                          float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                          float beta, float* c, size_t ldc, float* workspace);
void GemmF32EigenAvx2(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                      float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                      float beta, float* c, size_t ldc, float* workspace);
void GemmF32EigenAvx512(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                        float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                        float beta, float* c, size_t ldc, float* workspace);
void GemmU8S8S32Reference(size_t m, size_t n, size_t k, const uint8_t* a, size_t lda,
                          const Int8Block* packed_w, int32_t* c, size_t ldc);
void GemmF32Int4Reference(size_t m, size_t n, size_t k, const float* x, size_t ldx,
                          const Int4Block* w, float beta, float* y, size_t ldy);

void MaxPool2x2F32Reference(size_t channels, size_t height, size_t width, const float* x,
                            float* y, float* argmax);
void MaxPool2x2BackwardF32Reference(size_t channels, size_t height, size_t width,
                                    const float* dy, const float* argmax, float* dx);

}  // namespace edgefl::models::kernels::internal

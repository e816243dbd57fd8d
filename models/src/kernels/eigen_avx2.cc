// Eigen's fp32 GEMM compiled with the avx2 level's flags (kernels.cmake), under a renamed
// namespace (see eigen_gemm.h). The floor that level's own GEMM is measured against, and its
// fallback for the shapes where Eigen is faster.
#define Eigen EdgeflKernelsEigenAvx2
#include "eigen_gemm.h"

namespace edgefl::models::kernels::internal {

void GemmF32EigenAvx2(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                      float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                      float beta, float* c, size_t ldc, float* /*workspace*/) {
  GemmF32WithEigen(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

}  // namespace edgefl::models::kernels::internal

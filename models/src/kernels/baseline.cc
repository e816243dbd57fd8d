// The x86-64 baseline level: fp32 GEMM through Eigen compiled without instruction-set flags
// (SSE2), the integer GEMMs as the scalar reference. The level every x86-64 CPU runs when it
// has no AVX2, and the floor for the faster levels.
#include "eigen_gemm.h"

namespace edgefl::models::kernels::internal {

void GemmF32EigenBaseline(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                          float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                          float beta, float* c, size_t ldc, float* /*workspace*/) {
  GemmF32WithEigen(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

KernelTable BaselineTable() {
  return KernelTable{.isa = Isa::kBaseline,
                     .gemm_f32 = &GemmF32EigenBaseline,
                     .gemm_u8s8s32 = &GemmU8S8S32Reference,
                     .gemm_f32_int4 = &GemmF32Int4Reference,
                     .gemm_f32_eigen = &GemmF32EigenBaseline,
                     .max_pool2x2_f32 = &MaxPool2x2F32Reference,
                     .max_pool2x2_backward_f32 = &MaxPool2x2BackwardF32Reference};
}

}  // namespace edgefl::models::kernels::internal

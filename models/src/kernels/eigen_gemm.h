// Eigen's fp32 GEMM behind the GemmF32Fn signature: the floor every kernel of ours must beat
// (bench/models_bench.cc). Included by exactly one file per instruction set: baseline.cc
// (no flags: Eigen uses SSE2), eigen_avx2.cc and eigen_avx512.cc. The last two first rename
// Eigen's namespace (`#define Eigen EdgeflKernelsEigenAvx512`) so that Eigen's inline
// functions compiled with wider instruction sets have their own names and can never replace
// the baseline ones at link time (one-definition rule).
//
// Exception to the kernel rules: Eigen's GEMM allocates its own packing buffers (on the stack
// up to EIGEN_STACK_ALLOCATION_LIMIT, else on the heap); the workspace argument is unused.
// Eigen's own OpenMP parallelism is off: kernels run no threads. What the rename cannot cover
// are the few standard-library templates Eigen instantiates (std::min/std::max on indices);
// they are inlined in optimised builds.
#pragma once

#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif
#include <Eigen/Core>

#include "internal.h"

namespace edgefl::models::kernels::internal {
namespace {

using EigenRowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using EigenConstMap = Eigen::Map<const EigenRowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;
using EigenMap = Eigen::Map<EigenRowMajor, Eigen::Unaligned, Eigen::OuterStride<>>;

template <typename OpA, typename OpB>
void EigenMultiply(const OpA& op_a, const OpB& op_b, float alpha, float beta, EigenMap& c) {
  if (beta == 0.0f) {
    c.noalias() = alpha * (op_a * op_b);
  } else {
    if (beta != 1.0f) c *= beta;
    c.noalias() += alpha * (op_a * op_b);
  }
}

void GemmF32WithEigen(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                      float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                      float beta, float* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  const auto em = static_cast<Eigen::Index>(m);
  const auto en = static_cast<Eigen::Index>(n);
  const auto ek = static_cast<Eigen::Index>(k);
  EigenMap c_map(c, em, en, Eigen::OuterStride<>(static_cast<Eigen::Index>(ldc)));
  // A stored k x m (transposed) is mapped as such and transposed lazily; likewise B.
  const bool ta = trans_a == Transpose::kYes;
  const bool tb = trans_b == Transpose::kYes;
  EigenConstMap a_map(a, ta ? ek : em, ta ? em : ek,
                      Eigen::OuterStride<>(static_cast<Eigen::Index>(lda)));
  EigenConstMap b_map(b, tb ? en : ek, tb ? ek : en,
                      Eigen::OuterStride<>(static_cast<Eigen::Index>(ldb)));
  if (!ta && !tb) EigenMultiply(a_map, b_map, alpha, beta, c_map);
  if (!ta && tb) EigenMultiply(a_map, b_map.transpose(), alpha, beta, c_map);
  if (ta && !tb) EigenMultiply(a_map.transpose(), b_map, alpha, beta, c_map);
  if (ta && tb) EigenMultiply(a_map.transpose(), b_map.transpose(), alpha, beta, c_map);
}

}  // namespace
}  // namespace edgefl::models::kernels::internal

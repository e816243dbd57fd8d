// CPU kernels for the models module: fp32 GEMM, u8 x s8 -> s32 GEMM, fp32 x int4 GEMM and
// 2x2 max-pooling, each with a scalar reference and faster paths chosen at run time
// (DESIGN.md, "Kernels").
//
// Instruction-set levels, lowest first (Isa): kReference (plain C++, the oracle every other
// path is tested against), kBaseline (any x86-64: fp32 GEMM through Eigen, whose portable
// build is SSE2; the integer GEMMs are the reference), kAvx2 (AVX2 + FMA + F16C) and kAvx512
// (AVX-512 F/BW/VL/DQ + VNNI). Each level lives in its own source file compiled with its own
// flags, so one binary runs on any x86-64. Eigen built for the same level is the floor of the
// fp32 GEMM: a level uses its own kernel only for the shapes where it measured faster
// (bench/models_bench.cc) and calls that Eigen build for the rest (see avx2.cc, avx512.cc). A
// dispatch table per level is filled once (thread-safe static initialisation); Kernels() returns
// the one for ActiveIsa(): the highest level the CPU supports, capped by the environment variable
// EDGEFL_KERNELS (reference | baseline | avx2 | avx512; e.g. EDGEFL_KERNELS=reference forces the
// scalar path).
//
// Kernels are leaf functions on pointers and sizes: no allocation (the caller gives
// workspace; the one exception is Eigen, where a level falls back to it, which allocates its
// own packing buffers), no logging, no threads. Every matrix is row-major with a leading dimension
// (the distance in elements between two rows). The Parallel* drivers at the end split a call into
// chunks over OpenMP threads (serially when already inside a parallel region) and own their
// workspace; layers should call those. Everything here is thread-safe: kernels touch only
// their arguments, and the tables are immutable after their one initialisation.
//
//   namespace k = edgefl::models::kernels;
//   // Y[batch, out] = X[batch, in] * W[out, in]^T, as in a Dense layer's forward pass:
//   k::ParallelGemmF32(k::Transpose::kNo, k::Transpose::kYes, batch, out, in, 1.0f, x, in, w,
//                      in, 0.0f, y, out);
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace edgefl::models::kernels {

// ---------------------------------------------------------------------------------------------
// Instruction-set levels and dispatch.

// Values are ordered: a higher level may be used only where every lower one could.
enum class Isa : int {
  kReference = 0,  // scalar C++
  kBaseline = 1,   // x86-64 baseline: fp32 GEMM by Eigen (SSE2), integer GEMMs as reference
  kAvx2 = 2,       // AVX2, FMA, F16C
  kAvx512 = 3,     // AVX-512 F, BW, VL, DQ and VNNI
};
inline constexpr int kNumIsas = 4;

// "reference", "baseline", "avx2", "avx512".
std::string_view IsaName(Isa isa);

// Whether this CPU (and OS) can run `isa`'s kernels; ignores EDGEFL_KERNELS.
bool IsaSupported(Isa isa);

// The level Kernels() uses: the highest supported level not above EDGEFL_KERNELS (when set).
// Decided once per process. An unknown EDGEFL_KERNELS value is a configuration error that
// aborts with the list of accepted values.
Isa ActiveIsa();

enum class Transpose : uint8_t { kNo, kYes };

// ---------------------------------------------------------------------------------------------
// fp32 GEMM: C[m, n] = alpha * op(A) * op(B) + beta * C, row-major, where op(A) is m x k and
// op(B) is k x n. With Transpose::kNo, A is stored m x k (lda >= k); with kYes it is stored
// k x m (lda >= m); likewise B is k x n (ldb >= n) or n x k (ldb >= k). ldc >= n. When
// beta == 0, C is written without being read (it may hold NaN). m, n or k may be 0. The four
// transpose combinations are all supported; Dense uses NT (forward, Y = X W^T), NN
// (dX = dY W) and TN (dW = dY^T X).
//
// `workspace` holds at least kGemmF32WorkspaceFloats floats (1 MiB) of any alignment, owned by
// the caller and not shared with a concurrent call (packed panels of op(B)). Results of different
// levels differ only by rounding: each sums k products in some order, so |C_level - C_exact| <= k *
// 2^-24 * sum_p |alpha * a_ip * b_pj| (+ the rounding of beta * C).
inline constexpr size_t kGemmF32WorkspaceFloats = 256 * 1024 + 64;
using GemmF32Fn = void (*)(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                           float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                           float beta, float* c, size_t ldc, float* workspace);

// ---------------------------------------------------------------------------------------------
// int8 GEMM: C[m, n] (s32) = sum_p A[m, p] (u8) * W[n, p] (s8), i.e. activations times the
// transpose of an [out, in] weight matrix, exactly, in 32-bit integers. Every level gives the
// same bits. Precondition: k <= kMaxInt8GemmDepth, so no partial sum overflows
// (255 * 128 * 65536 < 2^31).
//
// Weights are first packed with PackInt8Weights into blocks of 16 output channels by 4 depth
// values, the operand layout of AVX-512 VNNI's vpdpbusd: block (nb, kb) holds
// W[16 nb + c, 4 kb + j] in values[c][j], zero-padded past n and k. Blocks are stored with
// kb fastest: block (nb, kb) is at index nb * Int8DepthBlocks(k) + kb.
inline constexpr size_t kMaxInt8GemmDepth = 65536;
inline constexpr size_t kInt8BlockChannels = 16;
inline constexpr size_t kInt8BlockDepth = 4;
struct Int8Block {
  int8_t values[kInt8BlockChannels][kInt8BlockDepth];
};
static_assert(sizeof(Int8Block) == 64, "one Int8Block is one 512-bit register");

constexpr size_t Int8DepthBlocks(size_t k) { return (k + kInt8BlockDepth - 1) / kInt8BlockDepth; }
constexpr size_t Int8ChannelBlocks(size_t n) {
  return (n + kInt8BlockChannels - 1) / kInt8BlockChannels;
}
// Number of Int8Block for an n x k weight matrix.
constexpr size_t Int8PackedBlocks(size_t n, size_t k) {
  return Int8ChannelBlocks(n) * Int8DepthBlocks(k);
}

// Packs W[n, k] (row-major, ldw >= k) into `packed` (Int8PackedBlocks(n, k) blocks). When
// `row_sums` is not null, also writes row_sums[c] = sum_p W[c, p] for the zero-point
// correction (RequantizeS32ToF32). Scalar; done once per weight update.
void PackInt8Weights(const int8_t* w, size_t ldw, size_t n, size_t k, Int8Block* packed,
                     int32_t* row_sums);
// The inverse of PackInt8Weights (for tests and checkpoints).
void UnpackInt8Weights(const Int8Block* packed, size_t n, size_t k, int8_t* w, size_t ldw);

// ldc >= n, lda >= k.
using GemmU8S8S32Fn = void (*)(size_t m, size_t n, size_t k, const uint8_t* a, size_t lda,
                               const Int8Block* packed_w, int32_t* c, size_t ldc);

// Turns the int8 GEMM's s32 sums into real values for activations quantized as
// a = a_scale * (q - a_zero_point) and weights as w[c, :] = w_scales[c] * q_w[c, :]:
//   y[i, c] = a_scale * w_scales[c] * (acc[i, c] - a_zero_point * row_sums[c]) + bias[c]
// (bias may be null). Scalar; the cost is O(m n) against the GEMM's O(m n k).
void RequantizeS32ToF32(size_t m, size_t n, const int32_t* acc, size_t ldacc, float a_scale,
                        int32_t a_zero_point, const float* w_scales, const int32_t* row_sums,
                        const float* bias, float* y, size_t ldy);

// ---------------------------------------------------------------------------------------------
// int4 GEMM: Y[m, n] = X[m, k] (fp32) * dequant(W)[n, k]^T + beta * Y, where W is stored as
// group-wise symmetric int4: each row of W is cut into groups of 32 consecutive values along
// k, each group one Int4Block with an fp32 scale and 32 values q in [-8, 7], so that
// w = q * scale. Row c's groups are blocks [c * Int4BlocksPerRow(k), (c + 1) * ...); values
// past k in the last group are zero. When beta == 0, Y is not read.
//
// Nibble layout (as ggml's q4_0): packed[j] holds value j in its low nibble and value j + 16
// in its high nibble, each stored as q + 8 in [0, 15]. The weights are dequantized on the fly
// and bit-identically on every level (q * scale is rounded once), so levels differ only in
// the order of the k-term sum, with the same bound as the fp32 GEMM.
inline constexpr size_t kInt4GroupSize = 32;
struct Int4Block {
  float scale;
  uint8_t packed[kInt4GroupSize / 2];
};
static_assert(sizeof(Int4Block) == 20, "Int4Block: fp32 scale + 16 bytes of nibbles");

constexpr size_t Int4BlocksPerRow(size_t k) { return (k + kInt4GroupSize - 1) / kInt4GroupSize; }

// ldx >= k, ldy >= n.
using GemmF32Int4Fn = void (*)(size_t m, size_t n, size_t k, const float* x, size_t ldx,
                               const Int4Block* w, float beta, float* y, size_t ldy);

// ---------------------------------------------------------------------------------------------
// 2x2 max-pooling, stride 2, of one example x [channels, height, width] (row-major planes):
// y [channels, height / 2, width / 2], a last odd row or column dropped (as PyTorch's
// MaxPool2d). argmax[o] is the index in x of output o's maximum, as a float (the caller keeps
// channels * height * width <= 2^24, where floats hold every integer); of equal values the
// first in row-major order within the window wins, and a NaN is kept only where it comes first
// (each value replaces the running maximum when greater). Every level gives the same bits.
using MaxPool2x2F32Fn = void (*)(size_t channels, size_t height, size_t width, const float* x,
                                 float* y, float* argmax);
// Its gradient: dx [channels, height, width] = dy[o] at argmax[o] for every output o, and
// +0.0 everywhere else (overwritten, dropped rows and columns included; a -0.0 gradient
// arrives as +0.0, as a sum into a zeroed dx gives). argmax as MaxPool2x2F32Fn wrote it.
using MaxPool2x2BackwardF32Fn = void (*)(size_t channels, size_t height, size_t width,
                                         const float* dy, const float* argmax, float* dx);

// ---------------------------------------------------------------------------------------------
// The dispatch table of one level.
struct KernelTable {
  Isa isa = Isa::kReference;
  GemmF32Fn gemm_f32 = nullptr;
  GemmU8S8S32Fn gemm_u8s8s32 = nullptr;
  GemmF32Int4Fn gemm_f32_int4 = nullptr;
  // Eigen's GEMM built for this level (SSE2 Eigen for reference and baseline): the floor that
  // gemm_f32 is benchmarked against. Same contract as gemm_f32, except that Eigen allocates
  // its own packing buffers and ignores `workspace`.
  GemmF32Fn gemm_f32_eigen = nullptr;
  MaxPool2x2F32Fn max_pool2x2_f32 = nullptr;
  MaxPool2x2BackwardF32Fn max_pool2x2_backward_f32 = nullptr;
};

// The table of ActiveIsa().
const KernelTable& Kernels();
// The table of a given level, for tests and benchmarks that compare levels.
// Precondition (checked): IsaSupported(isa).
const KernelTable& KernelsFor(Isa isa);

// ---------------------------------------------------------------------------------------------
// Threaded drivers over Kernels(). Each splits the output into chunks of rows (or, when m is
// too small to feed every thread, of columns) and runs one chunk per OpenMP thread, up to
// omp_get_max_threads() (see models/threading.h); serially when called inside a parallel
// region or when the problem is too small to pay for threads. They allocate per-thread
// workspace once (thread_local) and reuse it. Same contracts as the kernels above, with the
// preconditions checked.
// The most threads a driver call uses (omp_get_max_threads() outside a parallel region).
int MaxDriverThreads();

void ParallelGemmF32(Transpose trans_a, Transpose trans_b, size_t m, size_t n, size_t k,
                     float alpha, const float* a, size_t lda, const float* b, size_t ldb,
                     float beta, float* c, size_t ldc);
void ParallelGemmU8S8S32(size_t m, size_t n, size_t k, const uint8_t* a, size_t lda,
                         const Int8Block* packed_w, int32_t* c, size_t ldc);
void ParallelGemmF32Int4(size_t m, size_t n, size_t k, const float* x, size_t ldx,
                         const Int4Block* w, float beta, float* y, size_t ldy);

}  // namespace edgefl::models::kernels

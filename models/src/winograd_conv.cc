// Winograd convolution (winograd_conv.h): the transform matrices, built once per kernel size
// from their interpolation points, and the per-example passes around the alpha^2 GEMMs.
#include "winograd_conv.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <span>
#include <vector>

#include "edgefl/common/check.h"
#include "edgefl/common/target_clones.h"
#include "edgefl/models/kernels.h"
#include "edgefl/models/threading.h"
#include "parallel.h"

namespace edgefl::models::internal {
namespace {

using kernels::Transpose;

// Output tiles are kTileOut x kTileOut pixels; input tiles alpha = kTileOut + k - 1 a side (5
// to 8), and alpha^2 GEMMs per pass. Larger output tiles save more multiplications (F(4, 5):
// 64 per 16 outputs against F(2, 5)'s 36 per 4) but need interpolation points beyond +-2,
// whose transforms round less exactly; +-1/2 keeps them dyadic.
constexpr int64_t kTileOut = 4;
constexpr int kMaxAlpha = 8;
constexpr std::array<double, kMaxAlpha - 1> kPoints = {0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5};

int AlphaFor(int64_t kernel) { return static_cast<int>(kTileOut + kernel - 1); }
constexpr int64_t kMinKernel = 2, kMaxKernel = 5;
constexpr int64_t kTransposeBlock = 16;  // channel pairs per block of the weight transposes
// Tiles per GEMM to aim for: the cnn's conv2 has 16 tiles per example, and GEMMs of 16 rows
// ran at a fraction of the 12-row kernel's speed, so small images are transformed a few
// examples at a time and multiplied together.
constexpr int64_t kGemmRows = 64;

// One nonzero of a transform matrix: out[row] += coef * in[col].
struct Term {
  int row = 0, col = 0;
  float coef = 0.0f;
};

// A transform matrix, as its nonzeros in row order (row r's are terms[row_begin[r],
// row_begin[r + 1])) for the sparse loop, and dense for the fixed-shape kernels.
struct TransformMatrix {
  int rows = 0, cols = 0;
  std::vector<Term> terms;
  std::vector<int> row_begin;
  std::vector<float> dense;  // rows x cols, row-major, zeros included
};

TransformMatrix MakeMatrix(const std::vector<std::vector<double>>& dense, bool transpose) {
  TransformMatrix s;
  const int dense_rows = static_cast<int>(dense.size());
  const int dense_cols = static_cast<int>(dense[0].size());
  s.rows = transpose ? dense_cols : dense_rows;
  s.cols = transpose ? dense_rows : dense_cols;
  for (int i = 0; i < s.rows; ++i) {
    s.row_begin.push_back(static_cast<int>(s.terms.size()));
    for (int j = 0; j < s.cols; ++j) {
      const double value = transpose ? dense[j][i] : dense[i][j];
      s.dense.push_back(static_cast<float>(value));
      if (value != 0.0) s.terms.push_back({i, j, static_cast<float>(value)});
    }
  }
  s.row_begin.push_back(static_cast<int>(s.terms.size()));
  return s;
}

// The matrices of F(m, r), m = kTileOut, and their transposes, for the backward pass.
struct Transforms {
  int alpha = 0;
  TransformMatrix bt, b;  // B^T [alpha x alpha] and B
  TransformMatrix g, gt;  // G [alpha x r] and G^T
  TransformMatrix at, a;  // A^T [m x alpha] and A
};

// Toom-Cook on the first alpha - 1 of kPoints and infinity. A correlation y_i = sum_k g_k d_{i+k}
// (i < m) is the transpose of the product of polynomials of degree r - 1 and m - 1, which is
// evaluated at the six points and interpolated back:
//   G = E_r (evaluation of degree < r), A^T = E_m^T, B^T = E_6^{-T},
// where E_n[j][k] = p_j^k and infinity's row picks the leading coefficient. Row j of G is
// divided by N_j = prod_{l != j} (p_j - p_l) over the finite points and row j of B^T
// multiplied by it, which leaves the product unchanged and makes B^T and A^T integer, so that
// the transforms of the data add exact small multiples (as in Lavin & Gray's matrices).
Transforms MakeTransforms(int r) {
  const int alpha = AlphaFor(r);
  const int m = static_cast<int>(kTileOut);
  const std::span<const double> points(kPoints.data(), static_cast<size_t>(alpha - 1));
  auto evaluation = [&](int degree_bound) {
    std::vector<std::vector<double>> e(alpha, std::vector<double>(degree_bound, 0.0));
    for (int j = 0; j < alpha - 1; ++j) {
      for (int k = 0; k < degree_bound; ++k) e[j][k] = std::pow(points[j], k);
    }
    e[alpha - 1][degree_bound - 1] = 1.0;
    return e;
  };
  // E_alpha^{-1} by Gauss-Jordan elimination with partial pivoting (alpha <= 8).
  std::vector<std::vector<double>> e_alpha = evaluation(alpha);
  std::vector<std::vector<double>> inverse(alpha, std::vector<double>(alpha, 0.0));
  for (int i = 0; i < alpha; ++i) inverse[i][i] = 1.0;
  for (int col = 0; col < alpha; ++col) {
    int pivot = col;
    for (int i = col + 1; i < alpha; ++i) {
      if (std::abs(e_alpha[i][col]) > std::abs(e_alpha[pivot][col])) pivot = i;
    }
    std::swap(e_alpha[col], e_alpha[pivot]);
    std::swap(inverse[col], inverse[pivot]);
    const double scale = 1.0 / e_alpha[col][col];
    for (int k = 0; k < alpha; ++k) {
      e_alpha[col][k] *= scale;
      inverse[col][k] *= scale;
    }
    for (int i = 0; i < alpha; ++i) {
      if (i == col || e_alpha[i][col] == 0.0) continue;
      const double factor = e_alpha[i][col];
      for (int k = 0; k < alpha; ++k) {
        e_alpha[i][k] -= factor * e_alpha[col][k];
        inverse[i][k] -= factor * inverse[col][k];
      }
    }
  }
  std::vector<double> normaliser(alpha, 1.0);
  for (int j = 0; j < alpha - 1; ++j) {
    for (int l = 0; l < alpha - 1; ++l) {
      if (l != j) normaliser[j] *= points[j] - points[l];
    }
  }
  std::vector<std::vector<double>> bt(alpha, std::vector<double>(alpha));
  for (int j = 0; j < alpha; ++j) {
    for (int n = 0; n < alpha; ++n) {
      // Drop elimination's last-bit noise where the exact value is 0, which keeps B^T sparse.
      const double value = inverse[n][j] * normaliser[j];
      bt[j][n] = std::abs(value) < 1e-12 ? 0.0 : value;
    }
  }
  std::vector<std::vector<double>> g = evaluation(r);
  for (int j = 0; j < alpha; ++j) {
    for (double& value : g[j]) value /= normaliser[j];
  }
  const std::vector<std::vector<double>> e_m = evaluation(m);
  std::vector<std::vector<double>> at(m, std::vector<double>(alpha));
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < alpha; ++j) at[i][j] = e_m[j][i];
  }
  return Transforms{.alpha = alpha,
                    .bt = MakeMatrix(bt, false),
                    .b = MakeMatrix(bt, true),
                    .g = MakeMatrix(g, false),
                    .gt = MakeMatrix(g, true),
                    .at = MakeMatrix(at, false),
                    .a = MakeMatrix(at, true)};
}

const Transforms& TransformsFor(int64_t kernel) {
  static const std::array<Transforms, kMaxKernel - kMinKernel + 1> all = [] {
    std::array<Transforms, kMaxKernel - kMinKernel + 1> made;
    for (int r = kMinKernel; r <= kMaxKernel; ++r) made[r - kMinKernel] = MakeTransforms(r);
    return made;
  }();
  return all[static_cast<size_t>(kernel - kMinKernel)];
}

// A grid of n-float vectors: entry (i, j) starts at base + i * row_stride + j * col_stride.
struct Grid {
  float* base;
  ptrdiff_t row_stride, col_stride;
  float* at(int i, int j) const { return base + i * row_stride + j * col_stride; }
};

// dst[0:n] = sum over t < count of coef[t] * src[t][0:n] (+ dst when `add`), summed in
// registers over whole 16-float blocks through GCC's vector extension, so that each target
// clone below uses its widest registers without the aliasing and remainder checks an
// auto-vectorised loop repeats for every short row, and without storing and reloading dst
// between the terms (a chain through memory that cost more than the arithmetic).
using Block = float __attribute__((vector_size(64)));
#define EDGEFL_ALWAYS_INLINE inline __attribute__((always_inline))

EDGEFL_ALWAYS_INLINE Block LoadBlock(const float* p) {
  Block b;
  __builtin_memcpy(&b, p, sizeof(Block));
  return b;
}
EDGEFL_ALWAYS_INLINE void StoreBlock(float* p, Block b) { __builtin_memcpy(p, &b, sizeof(Block)); }

EDGEFL_ALWAYS_INLINE void Combine(float* dst, const float* const* src, const float* coef,
                                  int count, int64_t n, bool add) {
  int64_t k = 0;
  for (; k + 32 <= n; k += 32) {
    Block a0 = add ? LoadBlock(dst + k) : Block{};
    Block a1 = add ? LoadBlock(dst + k + 16) : Block{};
    for (int t = 0; t < count; ++t) {
      a0 += coef[t] * LoadBlock(src[t] + k);
      a1 += coef[t] * LoadBlock(src[t] + k + 16);
    }
    StoreBlock(dst + k, a0);
    StoreBlock(dst + k + 16, a1);
  }
  for (; k + 16 <= n; k += 16) {
    Block a = add ? LoadBlock(dst + k) : Block{};
    for (int t = 0; t < count; ++t) a += coef[t] * LoadBlock(src[t] + k);
    StoreBlock(dst + k, a);
  }
  for (; k < n; ++k) {
    float a = add ? dst[k] : 0.0f;
    for (int t = 0; t < count; ++t) a += coef[t] * src[t][k];
    dst[k] = a;
  }
}

// out = T in T^T for a sparse T [rows x cols] applied to a cols x cols grid of n-vectors,
// giving rows x rows vectors; `accumulate` adds into out instead. `tmp` holds rows * cols * n
// floats. The weight transforms, and the data transforms whose channels do not fill whole
// 16-float blocks, run here, vectorised over the n channels; like DenseSandwich below, compiled
// once per x86-64 level (target_clones.h).
EDGEFL_TARGET_CLONES void Sandwich(const TransformMatrix& t, Grid in, Grid out, bool accumulate,
                                   int64_t n, float* tmp) {
  const float* src[kMaxAlpha];
  float coef[kMaxAlpha];
  // tmp[o][c] = sum over T's terms (o, i): coef * in[i][c]; one run over every c when a row of
  // `in` is contiguous, as it is in the channels-last images and the tile-major transforms.
  const bool rows_contiguous = in.col_stride == n;
  for (int o = 0; o < t.rows; ++o) {
    const int first = t.row_begin[o], count = t.row_begin[o + 1] - first;
    for (int i = 0; i < count; ++i) coef[i] = t.terms[first + i].coef;
    const int runs = rows_contiguous ? 1 : t.cols;
    const int64_t length = rows_contiguous ? t.cols * n : n;
    for (int c = 0; c < runs; ++c) {
      for (int i = 0; i < count; ++i) src[i] = in.at(t.terms[first + i].col, c);
      Combine(tmp + (o * t.cols + c) * n, src, coef, count, length, false);
    }
  }
  // out[o][o2] (+)= sum over T's terms (o2, c): coef * tmp[o][c]
  for (int o2 = 0; o2 < t.rows; ++o2) {
    const int first = t.row_begin[o2], count = t.row_begin[o2 + 1] - first;
    for (int i = 0; i < count; ++i) coef[i] = t.terms[first + i].coef;
    for (int o = 0; o < t.rows; ++o) {
      for (int i = 0; i < count; ++i) src[i] = tmp + (o * t.cols + t.terms[first + i].col) * n;
      Combine(out.at(o, o2), src, coef, count, n, accumulate);
    }
  }
}

// The same product with T dense and its shape fixed at compile time, over whole 16-float
// blocks (n % 16 == 0): the transforms of the data, run once per tile and channel block. For
// one block of channels the whole sandwich stays in registers and L1, and every multiply-add
// is unrolled; it multiplies T's zeros too (a third of B^T's entries), but without the sparse
// loop's bookkeeping it ran more than twice as fast on the cnn.
template <int kRows, int kCols>
EDGEFL_ALWAYS_INLINE void DenseSandwichFixed(const float* t, Grid in, Grid out, bool accumulate,
                                             int64_t n) {
  for (int64_t k = 0; k < n; k += 16) {
    Block tmp[kRows][kCols];
    // tmp[o][c] = sum_i T[o][i] in[i][c]
    for (int c = 0; c < kCols; ++c) {
      Block x[kCols];
#pragma GCC unroll 8
      for (int i = 0; i < kCols; ++i) x[i] = LoadBlock(in.at(i, c) + k);
#pragma GCC unroll 8
      for (int o = 0; o < kRows; ++o) {
        Block acc = t[o * kCols] * x[0];
#pragma GCC unroll 8
        for (int i = 1; i < kCols; ++i) acc += t[o * kCols + i] * x[i];
        tmp[o][c] = acc;
      }
    }
    // out[o][o2] (+)= sum_c T[o2][c] tmp[o][c]
    for (int o = 0; o < kRows; ++o) {
#pragma GCC unroll 8
      for (int o2 = 0; o2 < kRows; ++o2) {
        float* dst = out.at(o, o2) + k;
        Block acc = accumulate ? LoadBlock(dst) : Block{};
#pragma GCC unroll 8
        for (int c = 0; c < kCols; ++c) acc += t[o2 * kCols + c] * tmp[o][c];
        StoreBlock(dst, acc);
      }
    }
  }
}

// Dense kernels for the data transforms' shapes: B^T and B (alpha x alpha), A^T (4 x alpha)
// and A (alpha x 4), alpha = 5 to 8. Returns false for any other shape.
EDGEFL_TARGET_CLONES bool DenseSandwich(const TransformMatrix& t, Grid in, Grid out,
                                        bool accumulate, int64_t n) {
  const float* d = t.dense.data();
  switch (t.rows * 16 + t.cols) {
#define EDGEFL_DENSE_CASE(R, C) \
  case (R) * 16 + (C):          \
    DenseSandwichFixed<R, C>(d, in, out, accumulate, n); \
    return true;
    EDGEFL_DENSE_CASE(5, 5)
    EDGEFL_DENSE_CASE(6, 6)
    EDGEFL_DENSE_CASE(7, 7)
    EDGEFL_DENSE_CASE(8, 8)
    EDGEFL_DENSE_CASE(4, 5)
    EDGEFL_DENSE_CASE(4, 6)
    EDGEFL_DENSE_CASE(4, 7)
    EDGEFL_DENSE_CASE(4, 8)
    EDGEFL_DENSE_CASE(5, 4)
    EDGEFL_DENSE_CASE(6, 4)
    EDGEFL_DENSE_CASE(7, 4)
    EDGEFL_DENSE_CASE(8, 4)
#undef EDGEFL_DENSE_CASE
    default:
      return false;
  }
}

// out = T in T^T: the dense kernel where it has the shape and the channels fill whole blocks,
// else the sparse loop.
void Transform(const TransformMatrix& t, Grid in, Grid out, bool accumulate, int64_t n,
               float* tmp) {
  if (n % 16 == 0 && DenseSandwich(t, in, out, accumulate, n)) return;
  Sandwich(t, in, out, accumulate, n, tmp);
}

// The alpha^2 GEMMs of a pass, one per tile position ξ: C_ξ = op(A_ξ) op(B_ξ) (+ C_ξ when
// beta = 1), where each operand of position ξ starts ξ * step floats after position 0's.
struct PositionOperand {
  const float* base;
  int64_t step;  // floats between positions
  int64_t ld;    // leading dimension
};

void MultiplyEachPosition(int64_t positions, Transpose trans_a, Transpose trans_b, int64_t m,
                          int64_t n, int64_t k, PositionOperand a, PositionOperand b, float beta,
                          float* c, int64_t c_step, int64_t ldc, float* workspace) {
  const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
  for (int64_t xi = 0; xi < positions; ++xi) {
    gemm(trans_a, trans_b, static_cast<size_t>(m), static_cast<size_t>(n), static_cast<size_t>(k),
         1.0f, a.base + xi * a.step, static_cast<size_t>(a.ld), b.base + xi * b.step,
         static_cast<size_t>(b.ld), beta, c + xi * c_step, static_cast<size_t>(ldc), workspace);
  }
}

// dst [rows][cols][channels] (channels-last) = src [channels][height][width] placed at row
// `top`, column `left`, zeros around it. Only the border is zeroed: the rest is overwritten.
void ToChannelsLast(const float* src, int64_t channels, int64_t height, int64_t width,
                    float* dst, int64_t rows, int64_t cols, int64_t top, int64_t left) {
  const int64_t row_floats = cols * channels;
  std::fill(dst, dst + top * row_floats, 0.0f);
  std::fill(dst + (top + height) * row_floats, dst + rows * row_floats, 0.0f);
  for (int64_t h = 0; h < height; ++h) {
    float* row = dst + (top + h) * row_floats;
    std::fill(row, row + left * channels, 0.0f);
    std::fill(row + (left + width) * channels, row + row_floats, 0.0f);
  }
  for (int64_t c = 0; c < channels; ++c) {
    for (int64_t h = 0; h < height; ++h) {
      const float* in = src + (c * height + h) * width;
      float* out = dst + ((top + h) * cols + left) * channels + c;
      for (int64_t w = 0; w < width; ++w) out[w * channels] = in[w];
    }
  }
}

// dst [channels][height][width] = the block of src [..][cols][channels] (channels-last) at row
// `top`, column `left`, plus bias[c] when `bias` is set.
void FromChannelsLast(const float* src, int64_t cols, int64_t top, int64_t left,
                      int64_t channels, int64_t height, int64_t width, const float* bias,
                      float* dst) {
  for (int64_t c = 0; c < channels; ++c) {
    const float b = bias != nullptr ? bias[c] : 0.0f;
    for (int64_t h = 0; h < height; ++h) {
      const float* in = src + ((top + h) * cols + left) * channels + c;
      float* out = dst + (c * height + h) * width;
      for (int64_t w = 0; w < width; ++w) out[w] = in[w * channels] + b;
    }
  }
}

// The storage behind WinogradConv::Scratch, one per thread, grown to the largest layer.
struct ExampleBuffers {
  std::vector<float> image;       // channels-last input or input gradient, padded to the tiles
  std::vector<float> transformed;  // V or dV [tiles][alpha^2][C]
  std::vector<float> products;     // M or dM [tiles][alpha^2][out]
  std::vector<float> output;       // channels-last output or output gradient, tiled
  std::vector<float> tmp;
};


// Per-pass buffers of the calling thread: the transformed weights and weight gradients, which
// the examples' threads share. (A copy of the weights per thread, in each core's own cache,
// made no difference measurable on the cnn's two-thread step, so the work is done once.)
struct PassBuffers {
  std::vector<float> weights;   // U [alpha^2][out][C] or U^T [alpha^2][C][out]
  std::vector<float> gradient;  // dU [alpha^2][out][C]
  std::vector<float> partials;  // each thread's dU (SumOverChunks)
  std::vector<float> tmp;       // the weights' transforms' transposes and intermediates
};

PassBuffers& ThreadPassBuffers() {
  thread_local PassBuffers buffers;
  return buffers;
}

}  // namespace

WinogradConv::Scratch WinogradConv::ThreadScratch() const {
  thread_local ExampleBuffers buffers;
  const int64_t channels = g_.channels, tiles = tiles_high_ * tiles_wide_;
  const auto group = static_cast<int64_t>(examples_per_group_);
  const auto floats = [](int64_t n) { return static_cast<size_t>(n); };
  return Scratch{
      .transformed =
          GrownBuffer(buffers.transformed, floats(group * tile_values_ * tiles * channels)),
      .products = GrownBuffer(buffers.products, floats(group * tile_values_ * tiles * out_)),
      .tiled = GrownBuffer(buffers.output, floats(tiles_high_ * m_ * tiles_wide_ * m_ * out_)),
      .image = GrownBuffer(buffers.image, floats(tiled_height_ * tiled_width_ * channels)),
      .tmp = GrownBuffer(buffers.tmp, floats(tile_values_ * std::max(channels, out_))),
      .workspace = ThreadGemmWorkspace()};
}

bool WinogradSupportsKernel(int64_t kernel) {
  return kernel >= kMinKernel && kernel <= kMaxKernel;
}

WinogradConv::WinogradConv(const ConvGeometry& g, int64_t out_channels)
    : g_(g), out_(out_channels) {
  EDGEFL_CHECK(WinogradSupportsKernel(g.kernel)) << "no Winograd tiles for kernel " << g.kernel;
  m_ = kTileOut;
  alpha_ = AlphaFor(g.kernel);
  tile_values_ = alpha_ * alpha_;
  tiles_high_ = (g.out_height + m_ - 1) / m_;
  tiles_wide_ = (g.out_width + m_ - 1) / m_;
  tiled_height_ = tiles_high_ * m_ + g.kernel - 1;
  tiled_width_ = tiles_wide_ * m_ + g.kernel - 1;
  examples_per_group_ =
      static_cast<size_t>(std::max<int64_t>(1, kGemmRows / (tiles_high_ * tiles_wide_)));
}

// U [alpha^2][out][C] = G g G^T for every (output, input) channel pair, vectorised over the pairs
// after moving the kernel taps to the front: [out][C][k][k] -> [k][k][pairs]. With
// `input_major` the pairs are ordered (C, out) instead, which gives U^T [alpha^2][C][out]:
// the forward GEMM then reads it in place instead of packing it alpha^2 times per example.
// In parallel, split over the leading channel of the pair order; each chunk writes only its
// own columns of the shared buffers.
void WinogradConv::TransformWeights(const float* weight, float* u, bool input_major,
                                    bool parallel) const {
  const int64_t pairs = out_ * g_.channels, taps = g_.kernel * g_.kernel;
  float* by_tap = GrownBuffer(ThreadPassBuffers().tmp,
                              static_cast<size_t>(taps * pairs + alpha_ * g_.kernel * pairs));
  const int64_t channels = g_.channels;
  const int64_t major = input_major ? channels : out_, minor = input_major ? out_ : channels;
  ForEachChunk(static_cast<size_t>(major), parallel, [&](size_t begin, size_t end) {
    const auto p0 = static_cast<int64_t>(begin) * minor, p1 = static_cast<int64_t>(end) * minor;
    // A transpose in blocks of kTransposeBlock pairs, so that both the reads and the writes of
    // a block stay within a few cache lines (one write per pair with stride `pairs` made this
    // copy cost more than the transform).
    if (input_major) {
      for (int64_t o0 = 0; o0 < out_; o0 += kTransposeBlock) {
        const int64_t o1 = std::min(out_, o0 + kTransposeBlock);
        for (auto c = static_cast<int64_t>(begin); c < static_cast<int64_t>(end); ++c) {
          for (int64_t tap = 0; tap < taps; ++tap) {
            float* dst = by_tap + tap * pairs + c * out_;
            for (int64_t o = o0; o < o1; ++o) dst[o] = weight[(o * channels + c) * taps + tap];
          }
        }
      }
    } else {
      for (int64_t b0 = p0; b0 < p1; b0 += kTransposeBlock) {
        const int64_t b1 = std::min(p1, b0 + kTransposeBlock);
        for (int64_t tap = 0; tap < taps; ++tap) {
          for (int64_t pair = b0; pair < b1; ++pair) {
            by_tap[tap * pairs + pair] = weight[pair * taps + tap];
          }
        }
      }
    }
    Sandwich(TransformsFor(g_.kernel).g, Grid{by_tap + p0, g_.kernel * pairs, pairs},
             Grid{u + p0, alpha_ * pairs, pairs}, false, p1 - p0,
             by_tap + taps * pairs + alpha_ * g_.kernel * p0);
  });
}

// V [tiles][alpha^2][C] = B^T d B for every tile of one example x [C, H, W]: tile-major, so
// that each tile's transform writes one contiguous run and GEMM ξ reads rows of stride
// alpha^2 C.
void WinogradConv::TransformInput(const float* x, float* v, float* image, float* scratch) const {
  const int64_t channels = g_.channels;
  ToChannelsLast(x, channels, g_.height, g_.width, image, tiled_height_, tiled_width_, g_.pad,
                 g_.pad);
  const Transforms& t = TransformsFor(g_.kernel);
  for (int64_t ti = 0; ti < tiles_high_; ++ti) {
    for (int64_t tj = 0; tj < tiles_wide_; ++tj) {
      const int64_t tile = ti * tiles_wide_ + tj;
      Transform(t.bt, Grid{image + (ti * m_ * tiled_width_ + tj * m_) * channels,
                       tiled_width_ * channels, channels},
            Grid{v + tile * tile_values_ * channels, alpha_ * channels, channels}, false, channels,
            scratch);
    }
  }
}

void WinogradConv::Forward(size_t batch, const float* x, const float* weight, const float* bias,
                           float* y, bool parallel) const {
  const int64_t channels = g_.channels, tiles = tiles_high_ * tiles_wide_;
  const int64_t value_pairs = out_ * channels;
  const size_t in_size = static_cast<size_t>(channels * g_.height * g_.width);
  const size_t out_size = static_cast<size_t>(out_ * g_.out_pixels());
  float* ut =
      GrownBuffer(ThreadPassBuffers().weights, static_cast<size_t>(tile_values_ * value_pairs));
  TransformWeights(weight, ut, /*input_major=*/true, parallel);
  const Transforms& t = TransformsFor(g_.kernel);
  const int64_t out_cols = tiles_wide_ * m_;
  ForEachChunk(batch, parallel, [&](size_t begin, size_t end) {
    const Scratch scratch = ThreadScratch();
    float *v = scratch.transformed, *products = scratch.products, *tiled = scratch.tiled;
    float *tmp = scratch.tmp, *workspace = scratch.workspace;
    for (size_t first = begin; first < end; first += examples_per_group_) {
      const auto count = static_cast<int64_t>(std::min(examples_per_group_, end - first));
      for (int64_t e = 0; e < count; ++e) {
        TransformInput(x + (first + e) * in_size, v + e * tiles * tile_values_ * channels,
                       scratch.image, tmp);
      }
      // M[ξ] [tiles x out] = V[ξ] [tiles x C] * U[ξ]^T over the group's tiles
      MultiplyEachPosition(tile_values_, Transpose::kNo, Transpose::kNo, count * tiles, out_,
                           channels, {v, channels, tile_values_ * channels},
                           {ut, value_pairs, out_}, 0.0f, products, out_, tile_values_ * out_,
                           workspace);
      for (int64_t e = 0; e < count; ++e) {
        // Y = A^T M A per tile into a channels-last image, then [out, Ho, Wo] with the bias.
        float* m_e = products + e * tiles * tile_values_ * out_;
        for (int64_t ti = 0; ti < tiles_high_; ++ti) {
          for (int64_t tj = 0; tj < tiles_wide_; ++tj) {
            const int64_t tile = ti * tiles_wide_ + tj;
            Transform(t.at, Grid{m_e + tile * tile_values_ * out_, alpha_ * out_, out_},
                      Grid{tiled + (ti * m_ * out_cols + tj * m_) * out_, out_cols * out_, out_},
                      false, out_, tmp);
          }
        }
        FromChannelsLast(tiled, out_cols, 0, 0, out_, g_.out_height, g_.out_width, bias,
                         y + (first + e) * out_size);
      }
    }
  });
}

void WinogradConv::Backward(size_t batch, const float* x, const float* weight, const float* d_out,
                            float* d_weight, float* d_in, bool parallel) const {
  const int64_t channels = g_.channels, tiles = tiles_high_ * tiles_wide_;
  const int64_t value_pairs = out_ * channels;
  const size_t transformed_size = static_cast<size_t>(tile_values_ * value_pairs);
  const size_t in_size = static_cast<size_t>(channels * g_.height * g_.width);
  const size_t out_size = static_cast<size_t>(out_ * g_.out_pixels());
  if (batch == 0) {
    std::fill(d_weight, d_weight + value_pairs * g_.kernel * g_.kernel, 0.0f);
    return;
  }
  PassBuffers& pass = ThreadPassBuffers();
  float* u = GrownBuffer(pass.weights, transformed_size);
  TransformWeights(weight, u, /*input_major=*/false, parallel);
  // dU, summed over each thread's examples and then over threads in thread order
  // (SumOverChunks), so a given thread count always gives the same bits.
  float* du = GrownBuffer(pass.gradient, transformed_size);
  const Transforms& t = TransformsFor(g_.kernel);
  const int64_t out_rows = tiles_high_ * m_, out_cols = tiles_wide_ * m_;

  SumOverChunks(batch, parallel, transformed_size, pass.partials, du,
                [&](size_t begin, size_t end, float* du_chunk) {
    const Scratch scratch = ThreadScratch();
    float *v = scratch.transformed, *dm = scratch.products, *tiled = scratch.tiled;
    float *image = scratch.image, *tmp = scratch.tmp, *workspace = scratch.workspace;
    for (size_t first = begin; first < end; first += examples_per_group_) {
      const auto count = static_cast<int64_t>(std::min(examples_per_group_, end - first));
      for (int64_t e = 0; e < count; ++e) {
        TransformInput(x + (first + e) * in_size, v + e * tiles * tile_values_ * channels, image,
                       tmp);
        // dM = A dY A^T per tile, from dY moved to a channels-last image zero past the edges.
        const float* dy = d_out + (first + e) * out_size;
        float* dm_e = dm + e * tiles * tile_values_ * out_;
        ToChannelsLast(dy, out_, g_.out_height, g_.out_width, tiled, out_rows, out_cols, 0, 0);
        for (int64_t ti = 0; ti < tiles_high_; ++ti) {
          for (int64_t tj = 0; tj < tiles_wide_; ++tj) {
            const int64_t tile = ti * tiles_wide_ + tj;
            Transform(t.a,
                      Grid{tiled + (ti * m_ * out_cols + tj * m_) * out_, out_cols * out_, out_},
                      Grid{dm_e + tile * tile_values_ * out_, alpha_ * out_, out_}, false, out_,
                      tmp);
          }
        }
      }
      // dU[ξ] [out x C] += dM[ξ]^T V[ξ] over the group's tiles
      MultiplyEachPosition(tile_values_, Transpose::kYes, Transpose::kNo, out_, channels,
                           count * tiles, {dm, out_, tile_values_ * out_},
                           {v, channels, tile_values_ * channels}, first == begin ? 0.0f : 1.0f,
                           du_chunk, value_pairs, channels, workspace);
      if (d_in == nullptr) continue;
      // dV[ξ] [tiles x C] = dM[ξ] U[ξ], over V's storage, then dX += B dV B^T per tile.
      MultiplyEachPosition(tile_values_, Transpose::kNo, Transpose::kNo, count * tiles, channels,
                           out_, {dm, out_, tile_values_ * out_}, {u, value_pairs, channels}, 0.0f,
                           v, channels, tile_values_ * channels, workspace);
      for (int64_t e = 0; e < count; ++e) {
        float* dv_e = v + e * tiles * tile_values_ * channels;
        std::fill(image, image + tiled_height_ * tiled_width_ * channels, 0.0f);
        for (int64_t ti = 0; ti < tiles_high_; ++ti) {
          for (int64_t tj = 0; tj < tiles_wide_; ++tj) {
            const int64_t tile = ti * tiles_wide_ + tj;
            Transform(t.b, Grid{dv_e + tile * tile_values_ * channels, alpha_ * channels, channels},
                      Grid{image + (ti * m_ * tiled_width_ + tj * m_) * channels,
                           tiled_width_ * channels, channels},
                      true, channels, tmp);
          }
        }
        FromChannelsLast(image, tiled_width_, g_.pad, g_.pad, channels, g_.height, g_.width,
                         nullptr, d_in + (first + e) * in_size);
      }
    }
  });

  // dW = G^T dU G, vectorised over channel pairs, then back to [out][C][k][k]; in parallel,
  // split over output channels.
  const int64_t taps = g_.kernel * g_.kernel;
  float* by_tap = GrownBuffer(
      pass.tmp, static_cast<size_t>(taps * value_pairs + alpha_ * g_.kernel * value_pairs));
  ForEachChunk(static_cast<size_t>(out_), parallel, [&](size_t begin, size_t end) {
    const auto p0 = static_cast<int64_t>(begin) * channels;
    const auto p1 = static_cast<int64_t>(end) * channels;
    Sandwich(t.gt, Grid{du + p0, alpha_ * value_pairs, value_pairs},
             Grid{by_tap + p0, g_.kernel * value_pairs, value_pairs}, false, p1 - p0,
             by_tap + taps * value_pairs + alpha_ * g_.kernel * p0);
    for (int64_t b0 = p0; b0 < p1; b0 += kTransposeBlock) {
      const int64_t b1 = std::min(p1, b0 + kTransposeBlock);
      for (int64_t pair = b0; pair < b1; ++pair) {
        for (int64_t tap = 0; tap < taps; ++tap) {
          d_weight[pair * taps + tap] = by_tap[tap * value_pairs + pair];
        }
      }
    }
  });
}

}  // namespace edgefl::models::internal

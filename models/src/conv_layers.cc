// Conv2d, MaxPool2d and Flatten on batched NCHW activations (layers.h).
//
// Conv2d runs by Winograd's algorithm where it applies and pays (winograd_conv.h, chosen at
// Build: ConvAlgorithm in layers.h), else as im2col + the dispatched fp32 GEMM, one example
// at a time, as follows. For example n with
// input x_n [C, H, W], the column matrix col [C*k*k, Ho*Wo] holds in row (c, ki, kj) and
// column (oh, ow) the value x_n[c, oh + ki - pad, ow + kj - pad] (0 outside the image), so that
//   Y_n [out, Ho*Wo]  = W [out, C*k*k] * col                 (NN)
//   dW [out, C*k*k]  += dY_n * col^T                          (NT, summed over the batch)
//   dcol [C*k*k, Ho*Wo] = W^T * dY_n, then col2im adds dcol back into dX_n   (TN)
// The column matrix of one example lives in a per-thread buffer made on first use and grown
// only when a larger layer comes (conv2 of the cnn: 800 x 196 floats, 627 KB), so a model's
// scratch does not scale with batch_size * C*k*k*H*W; Backward recomputes it rather than keep
// it from Forward. The tests check every path against finite differences (conv_layers_test.cc).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "edgefl/common/check.h"
#include "edgefl/models/kernels.h"
#include "edgefl/models/layers.h"
#include "conv_geometry.h"
#include "parallel.h"
#include "winograd_conv.h"

namespace edgefl::models {
namespace {

using internal::ConvGeometry;
using internal::ForEachChunk;
using internal::GrownBuffer;
using kernels::Transpose;

// The calling thread's column buffer and padded image; every OpenMP thread that runs a chunk
// has its own.
struct ThreadBuffers {
  std::vector<float> columns;
  std::vector<float> padded;
  std::vector<float> partials;  // per-thread weight gradients (SumOverChunks)
};

// With fewer columns of dW than this per thread, the weight gradient splits over examples.
constexpr size_t kMinWeightColumnsPerThread = 64;

ThreadBuffers& Buffers() {
  thread_local ThreadBuffers buffers;
  return buffers;
}

float* ColumnBuffer(size_t floats) { return GrownBuffer(Buffers().columns, floats); }

// The copy loops below move one output row (14 or 28 floats for the cnn) at a time. GCC's
// -O3 turns such loops into calls to memcpy and memset, one per 14 floats, whose fixed cost
// was about 5% of a cnn training step (perf on BM_TrainStep/cnn); kept as loops they
// vectorise inline.
#if defined(__GNUC__) && !defined(__clang__)
#define EDGEFL_INLINE_COPIES __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define EDGEFL_INLINE_COPIES
#endif

// xp [C, H + 2 pad, W + 2 pad] = x [C, H, W] with a border of `pad` zeros, so that every row
// of the column matrix is a plain copy without bounds checks.
EDGEFL_INLINE_COPIES void PadImage(const ConvGeometry& g, const float* x, float* xp) {
  const int64_t ph = g.padded_height(), pw = g.padded_width();
  for (int64_t c = 0; c < g.channels; ++c) {
    float* plane = xp + c * ph * pw;
    for (int64_t i = 0; i < g.pad * pw; ++i) plane[i] = 0.0f;
    for (int64_t i = (g.pad + g.height) * pw; i < ph * pw; ++i) plane[i] = 0.0f;
    for (int64_t ih = 0; ih < g.height; ++ih) {
      float* row = plane + (ih + g.pad) * pw;
      const float* src = x + (c * g.height + ih) * g.width;
      for (int64_t j = 0; j < g.pad; ++j) row[j] = 0.0f;
      for (int64_t j = 0; j < g.width; ++j) row[g.pad + j] = src[j];
      for (int64_t j = g.pad + g.width; j < pw; ++j) row[j] = 0.0f;
    }
  }
}

// Rows [row_begin, row_end) of col [C*k*k, Ho*Wo] from x [C, H, W] (see the file comment),
// written from the start of `col`. Stride 1: output row oh of kernel tap (ki, kj) is padded
// row oh + ki from column kj on.
EDGEFL_INLINE_COPIES void Im2Col(const ConvGeometry& g, const float* x, int64_t row_begin,
                                 int64_t row_end, float* col) {
  const int64_t ph = g.padded_height(), pw = g.padded_width();
  const float* xp = x;
  if (g.pad > 0) {
    float* padded = GrownBuffer(Buffers().padded, static_cast<size_t>(g.padded_size()));
    PadImage(g, x, padded);
    xp = padded;
  }
  for (int64_t r = row_begin; r < row_end; ++r) {
    const int64_t c = r / (g.kernel * g.kernel);
    const int64_t ki = r / g.kernel % g.kernel;
    const int64_t kj = r % g.kernel;
    float* row = col + (r - row_begin) * g.out_pixels();
    for (int64_t oh = 0; oh < g.out_height; ++oh) {
      const float* src = xp + (c * ph + oh + ki) * pw + kj;
      float* dst = row + oh * g.out_width;
      for (int64_t ow = 0; ow < g.out_width; ++ow) dst[ow] = src[ow];
    }
  }
}

// dx [C, H, W] = the sum of col's entries over the positions Im2Col read them from, added in
// the order (c, ki, kj, oh, ow) into a padded image whose border is then dropped.
EDGEFL_INLINE_COPIES void Col2Im(const ConvGeometry& g, const float* col, float* dx) {
  const int64_t ph = g.padded_height(), pw = g.padded_width();
  float* dxp = g.pad > 0 ? GrownBuffer(Buffers().padded, static_cast<size_t>(g.padded_size())) : dx;
  for (int64_t i = 0; i < g.padded_size(); ++i) dxp[i] = 0.0f;
  for (int64_t c = 0; c < g.channels; ++c) {
    for (int64_t ki = 0; ki < g.kernel; ++ki) {
      for (int64_t kj = 0; kj < g.kernel; ++kj) {
        const float* row = col + ((c * g.kernel + ki) * g.kernel + kj) * g.out_pixels();
        for (int64_t oh = 0; oh < g.out_height; ++oh) {
          const float* src = row + oh * g.out_width;
          float* dst = dxp + (c * ph + oh + ki) * pw + kj;
          for (int64_t ow = 0; ow < g.out_width; ++ow) dst[ow] += src[ow];
        }
      }
    }
  }
  if (g.pad == 0) return;
  for (int64_t c = 0; c < g.channels; ++c) {
    for (int64_t ih = 0; ih < g.height; ++ih) {
      const float* src = dxp + (c * ph + ih + g.pad) * pw + g.pad;
      float* dst = dx + (c * g.height + ih) * g.width;
      for (int64_t j = 0; j < g.width; ++j) dst[j] = src[j];
    }
  }
}

Status ShapeError(std::string_view kind, const std::string& name, const Shape& shape,
                  std::string_view why) {
  return InvalidArgumentError(std::string(kind) + " layer '" + name + "' cannot take input shape " +
                              ShapeToString(shape) + ": " + std::string(why));
}

class Conv2d final : public Layer {
 public:
  Conv2d(std::string name, size_t out_channels, size_t kernel_size, ConvPadding padding,
         DenseInit init, ConvAlgorithm algorithm)
      : Layer(std::move(name)),
        out_(static_cast<int64_t>(out_channels)),
        padding_(padding),
        init_(init),
        algorithm_(algorithm) {
    EDGEFL_CHECK(out_channels > 0 && kernel_size > 0)
        << "conv2d layer " << this->name() << " with no outputs or an empty kernel";
    g_.kernel = static_cast<int64_t>(kernel_size);
  }

  std::string_view kind() const override { return "conv2d"; }

  // Every example costs far more than a fork/join (the cnn's conv2: 10M multiply-adds), so the
  // convolution splits over threads from batch 2. On an idle two-core machine that made the
  // cnn's training step 1.4x faster at batch 10 and 32 (BM_TrainStep/cnn, threads 2 vs 1). On
  // a machine shared with other busy processes OpenMP's spin-waiting can make it slower than
  // one thread: set threads to 1 there. Inside the simulator's per-device thread pool layers
  // never split (ShouldParallelize), so results do not depend on this.
  size_t min_parallel_batch() const override { return 2; }

  Result<Shape> Build(const Shape& input_shape) override {
    if (input_shape.size() != 3) {
      return ShapeError(kind(), name(), input_shape,
                        "expected [channels, height, width] (a flat input needs an input_shape "
                        "such as [1, 28, 28])");
    }
    if (*std::min_element(input_shape.begin(), input_shape.end()) <= 0) {
      return ShapeError(kind(), name(), input_shape, "empty dimension");
    }
    g_.channels = input_shape[0];
    g_.height = input_shape[1];
    g_.width = input_shape[2];
    if (padding_ == ConvPadding::kSame) {
      if (g_.kernel % 2 == 0) {
        return ShapeError(kind(), name(), input_shape,
                          "'same' padding needs an odd kernel, got " + std::to_string(g_.kernel));
      }
      g_.pad = (g_.kernel - 1) / 2;
    } else {
      g_.pad = 0;
      if (g_.height < g_.kernel || g_.width < g_.kernel) {
        return ShapeError(kind(), name(), input_shape,
                          "'valid' padding needs an image at least as large as the kernel " +
                              std::to_string(g_.kernel));
      }
    }
    g_.out_height = g_.height + 2 * g_.pad - g_.kernel + 1;
    g_.out_width = g_.width + 2 * g_.pad - g_.kernel + 1;
    const bool winograd_fits = internal::WinogradSupportsKernel(g_.kernel);
    if (algorithm_ == ConvAlgorithm::kWinograd && !winograd_fits) {
      return ShapeError(kind(), name(), input_shape,
                        "the Winograd algorithm takes kernels of 2 to 5, got " +
                            std::to_string(g_.kernel));
    }
    const auto min_channels = static_cast<int64_t>(kWinogradMinChannels);
    const bool use_winograd =
        algorithm_ == ConvAlgorithm::kWinograd ||
        (algorithm_ == ConvAlgorithm::kAuto && winograd_fits && g_.channels >= min_channels &&
         out_ >= min_channels);
    winograd_.reset(use_winograd ? new internal::WinogradConv(g_, out_) : nullptr);
    return Shape{out_, g_.out_height, g_.out_width};
  }

  void RegisterParameters(ParameterLayout& layout) override {
    weight_offset_ = layout.Add(name() + ".weight", {out_, g_.channels, g_.kernel, g_.kernel});
    bias_offset_ = layout.Add(name() + ".bias", {out_});
  }

  // As Dense (layers.h, DenseInit) with fan_in = C * k * k.
  void InitializeParameters(std::span<float> parameters, Rng& rng) const override {
    const double gain_squared = init_ == DenseInit::kHeUniform ? 6.0 : 3.0;
    const double bound = std::sqrt(gain_squared / static_cast<double>(g_.column_rows()));
    std::span<float> weight = parameters.subspan(weight_offset_, WeightSize());
    for (float& w : weight) w = static_cast<float>((2.0 * rng.Uniform01() - 1.0) * bound);
    std::span<float> bias = parameters.subspan(bias_offset_, static_cast<size_t>(out_));
    std::fill(bias.begin(), bias.end(), 0.0f);
  }

  // Split over examples.
  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override {
    const size_t batch = pass.batch_size;
    EDGEFL_CHECK(in.size() == batch * InSize() && out.size() == batch * OutSize()) << name();
    const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
    const float* weight = pass.parameters.data() + weight_offset_;
    const float* bias = pass.parameters.data() + bias_offset_;
    if (winograd_) {
      winograd_->Forward(batch, in.data(), weight, bias, out.data(), pass.parallel);
      return;
    }
    const auto rows = static_cast<size_t>(g_.column_rows());
    const auto pixels = static_cast<size_t>(g_.out_pixels());
    ForEachChunk(batch, pass.parallel, [&](size_t begin, size_t end) {
      float* col = IsPointwise() ? nullptr : ColumnBuffer(rows * pixels);
      float* workspace = internal::ThreadGemmWorkspace();
      for (size_t n = begin; n < end; ++n) {
        const float* x = in.data() + n * InSize();
        if (!IsPointwise()) Im2Col(g_, x, 0, g_.column_rows(), col);
        float* y = out.data() + n * OutSize();
        for (int64_t o = 0; o < out_; ++o) {
          std::fill(y + static_cast<size_t>(o) * pixels, y + static_cast<size_t>(o + 1) * pixels,
                    bias[o]);
        }
        gemm(Transpose::kNo, Transpose::kNo, static_cast<size_t>(out_), pixels, rows, 1.0f, weight,
             rows, IsPointwise() ? x : col, pixels, 1.0f, y, pixels, workspace);
      }
    });
  }

  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override {
    const size_t batch = pass.batch_size;
    EDGEFL_CHECK(in.size() == batch * InSize() && d_out.size() == batch * OutSize()) << name();
    EDGEFL_CHECK(d_in.empty() || d_in.size() == batch * InSize()) << name();
    const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
    const float* weight = pass.parameters.data() + weight_offset_;
    float* d_weight = pass.gradients.data() + weight_offset_;
    float* d_bias = pass.gradients.data() + bias_offset_;
    const auto rows = static_cast<size_t>(g_.column_rows());
    const auto pixels = static_cast<size_t>(g_.out_pixels());

    // db[o] = sum over examples and pixels of dY[n, o, :], in kLanes running sums: one float
    // chain is bound by the add's latency (it was 3% of a cnn step) and the compiler may not
    // reorder it, but it vectorises independent lanes. Split over channels, each summed whole
    // by one thread.
    constexpr size_t kLanes = 16;
    ForEachChunk(static_cast<size_t>(out_), pass.parallel, [&](size_t begin, size_t end) {
      for (size_t o = begin; o < end; ++o) {
        float lanes[kLanes] = {};
        for (size_t n = 0; n < batch; ++n) {
          const float* dy = d_out.data() + n * OutSize() + o * pixels;
          size_t p = 0;
          for (; p + kLanes <= pixels; p += kLanes) {
            for (size_t j = 0; j < kLanes; ++j) lanes[j] += dy[p + j];
          }
          for (; p < pixels; ++p) lanes[p % kLanes] += dy[p];
        }
        float sum = 0.0f;
        for (float lane : lanes) sum += lane;
        d_bias[o] = sum;
      }
    });
    if (winograd_) {
      winograd_->Backward(batch, in.data(), weight, d_out.data(), d_weight,
                          d_in.empty() ? nullptr : d_in.data(), pass.parallel);
      return;
    }
    // dW = sum_n dY_n col_n^T. With few columns (a first layer's C k^2: 25 for the cnn's
    // conv1), split over examples: each thread sums its examples' products whole into its own
    // partial dW, and the partials are added in thread order (SumOverChunks). Split over 25
    // columns, each thread had a GEMM of 12 or 13 columns on 32-wide register tiles, and two
    // threads took longer than one.
    if (pass.parallel && rows < kMinWeightColumnsPerThread * static_cast<size_t>(NumThreads())) {
      const auto accumulate = [&](size_t begin, size_t end, float* partial) {
        float* col = IsPointwise() ? nullptr : ColumnBuffer(rows * pixels);
        float* workspace = internal::ThreadGemmWorkspace();
        for (size_t n = begin; n < end; ++n) {
          const float* x = in.data() + n * InSize();
          if (!IsPointwise()) Im2Col(g_, x, 0, g_.column_rows(), col);
          gemm(Transpose::kNo, Transpose::kYes, static_cast<size_t>(out_), rows, pixels, 1.0f,
               d_out.data() + n * OutSize(), pixels, IsPointwise() ? x : col, pixels,
               n == begin ? 0.0f : 1.0f, partial, rows, workspace);
        }
      };
      internal::SumOverChunks(batch, true, WeightSize(), Buffers().partials, d_weight, accumulate);
    } else {
      // Else split over the columns of dW (the rows of col), so that no two threads write the
      // same values and each builds only its own rows of every example's column matrix. Each
      // GEMM keeps all out_ rows: the AVX-512 and AVX2 kernels choose their path from the row
      // count and depth, not the column count, so every value is summed in the same order
      // whatever the number of threads and a threaded pass gives the serial pass's bits there
      // (where a level falls back to Eigen, whose blocking also looks at the column count, the
      // two may differ in rounding).
      ForEachChunk(rows, pass.parallel, [&](size_t begin, size_t end) {
        float* col = IsPointwise() ? nullptr : ColumnBuffer((end - begin) * pixels);
        float* workspace = internal::ThreadGemmWorkspace();
        for (size_t n = 0; n < batch; ++n) {
          const float* x = in.data() + n * InSize();
          if (!IsPointwise()) {
            Im2Col(g_, x, static_cast<int64_t>(begin), static_cast<int64_t>(end), col);
          }
          gemm(Transpose::kNo, Transpose::kYes, static_cast<size_t>(out_), end - begin, pixels,
               1.0f, d_out.data() + n * OutSize(), pixels,
               IsPointwise() ? x + begin * pixels : col, pixels, n == 0 ? 0.0f : 1.0f,
               d_weight + begin, rows, workspace);
        }
      });
    }
    // dX_n = col2im(W^T dY_n), split over examples.
    if (d_in.empty()) return;
    ForEachChunk(batch, pass.parallel, [&](size_t begin, size_t end) {
      float* d_col = ColumnBuffer(rows * pixels);
      float* workspace = internal::ThreadGemmWorkspace();
      for (size_t n = begin; n < end; ++n) {
        float* dx = d_in.data() + n * InSize();
        gemm(Transpose::kYes, Transpose::kNo, rows, pixels, static_cast<size_t>(out_), 1.0f, weight,
             rows, d_out.data() + n * OutSize(), pixels, 0.0f, IsPointwise() ? dx : d_col, pixels,
             workspace);
        if (!IsPointwise()) Col2Im(g_, d_col, dx);
      }
    });
  }

 private:
  // A 1x1 kernel without padding reads the input as its own column matrix.
  bool IsPointwise() const { return g_.kernel == 1 && g_.pad == 0; }
  size_t InSize() const { return static_cast<size_t>(g_.channels * g_.height * g_.width); }
  size_t OutSize() const { return static_cast<size_t>(out_ * g_.out_pixels()); }
  size_t WeightSize() const { return static_cast<size_t>(out_ * g_.column_rows()); }

  int64_t out_;
  ConvPadding padding_;
  DenseInit init_;
  ConvAlgorithm algorithm_;
  ConvGeometry g_;
  std::unique_ptr<internal::WinogradConv> winograd_;  // set by Build when it computes
  size_t weight_offset_ = 0;
  size_t bias_offset_ = 0;
};

// Non-overlapping max over size x size windows (stride = size); rows and columns past the
// last whole window are dropped, as PyTorch's MaxPool2d does by default. The scratch keeps,
// for every output, the index of its maximum within the example's input, as a float: exact
// since Build caps the input at 2^24 values. 2x2 windows, the common case, run on the
// vectorised kernels (kernels.h, max_pool2x2_f32), which keep the same argmax and ties rule.
class MaxPool2d final : public Layer {
 public:
  MaxPool2d(std::string name, size_t pool_size)
      : Layer(std::move(name)), size_(static_cast<int64_t>(pool_size)) {
    EDGEFL_CHECK(pool_size > 0) << "max-pool layer " << this->name() << " with window 0";
  }

  std::string_view kind() const override { return "maxpool2d"; }

  Result<Shape> Build(const Shape& input_shape) override {
    if (input_shape.size() != 3) {
      return ShapeError(kind(), name(), input_shape, "expected [channels, height, width]");
    }
    if (input_shape[0] <= 0 || input_shape[1] < size_ || input_shape[2] < size_) {
      return ShapeError(
          kind(), name(), input_shape,
          "smaller than one " + std::to_string(size_) + "x" + std::to_string(size_) + " window");
    }
    if (NumElements(input_shape) > (size_t{1} << 24)) {
      return ShapeError(kind(), name(), input_shape, "more than 2^24 values per example");
    }
    channels_ = input_shape[0];
    height_ = input_shape[1];
    width_ = input_shape[2];
    out_height_ = height_ / size_;
    out_width_ = width_ / size_;
    return Shape{channels_, out_height_, out_width_};
  }

  size_t scratch_per_example() const override { return OutSize(); }
  size_t min_parallel_batch() const override {
    return internal::MinParallelBatchForValues(InSize());
  }

  // Split over examples.
  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override {
    const size_t batch = pass.batch_size;
    EDGEFL_CHECK(in.size() == batch * InSize() && out.size() == batch * OutSize() &&
                 scratch.size() == batch * OutSize())
        << name();
    const kernels::MaxPool2x2F32Fn pool2x2 = kernels::Kernels().max_pool2x2_f32;
    ForEachChunk(batch, pass.parallel, [&](size_t begin, size_t end) {
      for (size_t n = begin; n < end; ++n) {
        const float* x = in.data() + n * InSize();
        float* y = out.data() + n * OutSize();
        float* argmax = scratch.data() + n * OutSize();
        if (size_ == 2) {
          pool2x2(Size(channels_), Size(height_), Size(width_), x, y, argmax);
        } else {
          ForwardWindows(x, y, argmax);
        }
      }
    });
  }

  // dL/dx is dL/dy at each window's maximum (the first one on ties) and 0 elsewhere.
  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override {
    if (d_in.empty()) return;
    const size_t batch = pass.batch_size;
    EDGEFL_CHECK(d_in.size() == batch * InSize() && d_out.size() == batch * OutSize()) << name();
    const kernels::MaxPool2x2BackwardF32Fn pool2x2 = kernels::Kernels().max_pool2x2_backward_f32;
    ForEachChunk(batch, pass.parallel, [&](size_t begin, size_t end) {
      for (size_t n = begin; n < end; ++n) {
        const float* dy = d_out.data() + n * OutSize();
        const float* argmax = scratch.data() + n * OutSize();
        float* dx = d_in.data() + n * InSize();
        if (size_ == 2) {
          pool2x2(Size(channels_), Size(height_), Size(width_), dy, argmax, dx);
          continue;
        }
        std::fill(dx, dx + InSize(), 0.0f);
        for (size_t o = 0; o < OutSize(); ++o) dx[static_cast<size_t>(argmax[o])] += dy[o];
      }
    });
  }

 private:
  static size_t Size(int64_t n) { return static_cast<size_t>(n); }

  // Windows of other sizes: the first maximum of every window of one example, without
  // branches: the index is an integer select (a conditional move) and the value a max, both on
  // registers. Branching on the comparison (mispredicted on real activations) or re-reading
  // x[best] after each select (a chain of dependent loads) each made max-pooling several times
  // slower.
  void ForwardWindows(const float* x, float* y, float* argmax) const {
    for (int64_t c = 0; c < channels_; ++c) {
      for (int64_t oh = 0; oh < out_height_; ++oh) {
        for (int64_t ow = 0; ow < out_width_; ++ow) {
          int64_t best = (c * height_ + oh * size_) * width_ + ow * size_;
          float value = x[best];
          for (int64_t di = 0; di < size_; ++di) {
            const int64_t row = (c * height_ + oh * size_ + di) * width_ + ow * size_;
            for (int64_t dj = 0; dj < size_; ++dj) {
              const float candidate = x[row + dj];
              best = candidate > value ? row + dj : best;
              value = std::max(value, candidate);
            }
          }
          const int64_t o = (c * out_height_ + oh) * out_width_ + ow;
          y[o] = value;
          argmax[o] = static_cast<float>(best);
        }
      }
    }
  }

  size_t InSize() const { return static_cast<size_t>(channels_ * height_ * width_); }
  size_t OutSize() const { return static_cast<size_t>(channels_ * out_height_ * out_width_); }

  int64_t size_;
  int64_t channels_ = 0, height_ = 0, width_ = 0;
  int64_t out_height_ = 0, out_width_ = 0;
};

// [C, H, W] -> [C*H*W]: the same floats, copied, since each layer writes its own buffer.
class Flatten final : public Layer {
 public:
  using Layer::Layer;

  std::string_view kind() const override { return "flatten"; }

  Result<Shape> Build(const Shape& input_shape) override {
    size_ = NumElements(input_shape);
    if (size_ == 0) return ShapeError(kind(), name(), input_shape, "empty dimension");
    return Shape{static_cast<int64_t>(size_)};
  }

  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override {
    EDGEFL_CHECK(in.size() == pass.batch_size * size_ && out.size() == in.size()) << name();
    std::copy(in.begin(), in.end(), out.begin());
  }

  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override {
    if (d_in.empty()) return;
    EDGEFL_CHECK(d_out.size() == d_in.size() && d_in.size() == pass.batch_size * size_) << name();
    std::copy(d_out.begin(), d_out.end(), d_in.begin());
  }

 private:
  size_t size_ = 0;
};

}  // namespace

std::unique_ptr<Layer> MakeConv2d(std::string name, size_t out_channels, size_t kernel_size,
                                  ConvPadding padding, DenseInit init, ConvAlgorithm algorithm) {
  return std::make_unique<Conv2d>(std::move(name), out_channels, kernel_size, padding, init,
                                  algorithm);
}

std::unique_ptr<Layer> MakeMaxPool2d(std::string name, size_t pool_size) {
  return std::make_unique<MaxPool2d>(std::move(name), pool_size);
}

std::unique_ptr<Layer> MakeFlatten(std::string name) {
  return std::make_unique<Flatten>(std::move(name));
}

}  // namespace edgefl::models

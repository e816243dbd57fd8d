// The layers of a small decoder-only transformer (charlm.h): byte + position embedding, layer norm,
// GELU, position-wise dense and causal multi-head self-attention.
//
// Every layer here sees an example as a sequence: activations are row-major [batch, T, d], so a
// batch is batch * T rows of d floats, and the position-wise products run as one GEMM over all
// those rows on the dispatched fp32 kernel (kernels.h). Work is split over OpenMP threads only when
// the model sets pass.parallel (parallel.h); parameter gradients are reduced serially or split by
// output row so that no two threads write the same float.
#include <algorithm>
#include <cmath>
#include <vector>

#include "edgefl/common/check.h"
#include "edgefl/models/kernels.h"
#include "edgefl/models/layers.h"
#include "parallel.h"
#include "transformer_layers.h"

namespace edgefl::models {
namespace {

using internal::ForEachChunk;
using internal::ThreadGemmWorkspace;
using kernels::Transpose;

// Y[rows, out] = X[rows, in] W[out, in]^T + b, split over rows.
void LinearForward(bool parallel, size_t rows, size_t in, size_t out, const float* x,
                   const float* w, const float* b, float* y) {
  const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
  ForEachChunk(rows, parallel, [&](size_t begin, size_t end) {
    for (size_t r = begin; r < end; ++r) std::copy(b, b + out, y + r * out);
    gemm(Transpose::kNo, Transpose::kYes, end - begin, out, in, 1.0f, x + begin * in, in, w, in,
         1.0f, y + begin * out, out, ThreadGemmWorkspace());
  });
}

// Overwrites dW = dY^T X and db = colsum(dY); when dx is not null, dX = dY W.
void LinearBackward(bool parallel, size_t rows, size_t in, size_t out, const float* x,
                    const float* w, const float* dy, float* dw, float* db, float* dx) {
  const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
  ForEachChunk(out, parallel, [&](size_t begin, size_t end) {
    gemm(Transpose::kYes, Transpose::kNo, end - begin, in, rows, 1.0f, dy + begin, out, x, in, 0.0f,
         dw + begin * in, in, ThreadGemmWorkspace());
  });
  std::fill(db, db + out, 0.0f);
  for (size_t r = 0; r < rows; ++r) {
    const float* row = dy + r * out;
    for (size_t o = 0; o < out; ++o) db[o] += row[o];
  }
  if (dx == nullptr) return;
  ForEachChunk(rows, parallel, [&](size_t begin, size_t end) {
    gemm(Transpose::kNo, Transpose::kNo, end - begin, in, out, 1.0f, dy + begin * out, out, w, in,
         0.0f, dx + begin * in, in, ThreadGemmWorkspace());
  });
}

// U(-b, b) with b = sqrt(3 / fan_in): unit-gain LeCun-uniform (layers.h, DenseInit).
void FillLeCun(std::span<float> w, size_t fan_in, double gain_squared, Rng& rng) {
  const double bound = std::sqrt(gain_squared / static_cast<double>(fan_in));
  for (float& v : w) v = static_cast<float>((2.0 * rng.Uniform01() - 1.0) * bound);
}

Status RequireSequence(const std::string& name, std::string_view kind, const Shape& shape) {
  if (shape.size() != 2 || shape[0] <= 0 || shape[1] <= 0) {
    return InvalidArgumentError(std::string(kind) + " layer '" + name +
                                "' needs input shape [T, d], got " + ShapeToString(shape));
  }
  return OkStatus();
}

// ---------------------------------------------------------------------------------------------

class Embedding final : public Layer {
 public:
  Embedding(std::string name, size_t vocab_size, size_t dim)
      : Layer(std::move(name)), vocab_(vocab_size), dim_(dim) {
    EDGEFL_CHECK(vocab_size > 0 && dim > 0) << this->name();
  }
  std::string_view kind() const override { return "embedding"; }

  Result<Shape> Build(const Shape& input_shape) override {
    if (input_shape.size() != 1 || input_shape[0] <= 0) {
      return InvalidArgumentError("embedding layer '" + name() + "' needs input shape [T], got " +
                                  ShapeToString(input_shape));
    }
    context_ = static_cast<size_t>(input_shape[0]);
    return Shape{input_shape[0], static_cast<int64_t>(dim_)};
  }
  void RegisterParameters(ParameterLayout& layout) override {
    token_offset_ =
        layout.Add(name() + ".token", {static_cast<int64_t>(vocab_), static_cast<int64_t>(dim_)});
    position_offset_ = layout.Add(name() + ".position",
                                  {static_cast<int64_t>(context_), static_cast<int64_t>(dim_)});
  }
  // N(0, 0.02^2) as GPT-2 does, through a uniform of the same variance (Rng::Normal would do as
  // well; uniform keeps the bound explicit): U(-b, b) with b = 0.02 sqrt(3).
  void InitializeParameters(std::span<float> parameters, Rng& rng) const override {
    const double bound = 0.02 * std::sqrt(3.0);
    for (float& v : parameters.subspan(token_offset_, (vocab_ + context_) * dim_)) {
      v = static_cast<float>((2.0 * rng.Uniform01() - 1.0) * bound);
    }
  }

  // out[b, t, :] = token[in[b, t]] + position[t]. Inputs are token ids stored as floats.
  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override {
    EDGEFL_CHECK(in.size() == pass.batch_size * context_ && out.size() == in.size() * dim_)
        << name();
    const float* token = pass.parameters.data() + token_offset_;
    const float* position = pass.parameters.data() + position_offset_;
    for (size_t r = 0; r < in.size(); ++r) {
      const size_t id = TokenId(in[r]);
      const float* e = token + id * dim_;
      const float* p = position + (r % context_) * dim_;
      float* y = out.data() + r * dim_;
      for (size_t j = 0; j < dim_; ++j) y[j] = e[j] + p[j];
    }
  }

  // The input is discrete: there is no d_in (callers pass it empty; it is left untouched).
  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override {
    EDGEFL_CHECK(d_out.size() == in.size() * dim_) << name();
    float* d_token = pass.gradients.data() + token_offset_;
    float* d_position = pass.gradients.data() + position_offset_;
    std::fill(d_token, d_token + (vocab_ + context_) * dim_, 0.0f);
    for (size_t r = 0; r < in.size(); ++r) {
      const float* dy = d_out.data() + r * dim_;
      float* de = d_token + TokenId(in[r]) * dim_;
      float* dp = d_position + (r % context_) * dim_;
      for (size_t j = 0; j < dim_; ++j) {
        de[j] += dy[j];
        dp[j] += dy[j];
      }
    }
    if (!d_in.empty()) std::fill(d_in.begin(), d_in.end(), 0.0f);
  }

 private:
  size_t TokenId(float value) const {
    EDGEFL_CHECK(value >= 0.0f && value < static_cast<float>(vocab_) && value == std::floor(value))
        << "embedding " << name() << ": token id " << value << " outside [0, " << vocab_ << ")";
    return static_cast<size_t>(value);
  }

  size_t vocab_;
  size_t dim_;
  size_t context_ = 0;
  size_t token_offset_ = 0;
  size_t position_offset_ = 0;
};

// ---------------------------------------------------------------------------------------------

// Ba et al. 2016, over the last dimension, with eps = 1e-5 (PyTorch's default).
class LayerNorm final : public Layer {
 public:
  using Layer::Layer;
  std::string_view kind() const override { return "layer_norm"; }

  Result<Shape> Build(const Shape& input_shape) override {
    if (input_shape.empty() || input_shape.back() <= 0) {
      return InvalidArgumentError("layer_norm layer '" + name() + "' cannot take input shape " +
                                  ShapeToString(input_shape));
    }
    dim_ = static_cast<size_t>(input_shape.back());
    rows_per_example_ = NumElements(input_shape) / dim_;
    return input_shape;
  }
  void RegisterParameters(ParameterLayout& layout) override {
    gamma_offset_ = layout.Add(name() + ".gamma", {static_cast<int64_t>(dim_)});
    beta_offset_ = layout.Add(name() + ".beta", {static_cast<int64_t>(dim_)});
  }
  void InitializeParameters(std::span<float> parameters, Rng& rng) const override {
    std::fill_n(parameters.begin() + gamma_offset_, dim_, 1.0f);
    std::fill_n(parameters.begin() + beta_offset_, dim_, 0.0f);
  }
  // Mean and 1/stddev of each row.
  size_t scratch_per_example() const override { return 2 * rows_per_example_; }

  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override {
    const size_t rows = pass.batch_size * rows_per_example_;
    EDGEFL_CHECK(in.size() == rows * dim_ && out.size() == in.size() && scratch.size() == 2 * rows)
        << name();
    const float* gamma = pass.parameters.data() + gamma_offset_;
    const float* beta = pass.parameters.data() + beta_offset_;
    ForEachChunk(rows, pass.parallel, [&](size_t begin, size_t end) {
      for (size_t r = begin; r < end; ++r) {
        const float* x = in.data() + r * dim_;
        float* y = out.data() + r * dim_;
        float mean = 0.0f;
        for (size_t j = 0; j < dim_; ++j) mean += x[j];
        mean /= static_cast<float>(dim_);
        // Two passes: the variance of centred values does not cancel catastrophically.
        float variance = 0.0f;
        for (size_t j = 0; j < dim_; ++j) variance += (x[j] - mean) * (x[j] - mean);
        variance /= static_cast<float>(dim_);
        const float rstd = 1.0f / std::sqrt(variance + kEps);
        for (size_t j = 0; j < dim_; ++j) y[j] = (x[j] - mean) * rstd * gamma[j] + beta[j];
        scratch[2 * r] = mean;
        scratch[2 * r + 1] = rstd;
      }
    });
  }

  // With xhat = (x - mean) rstd and g = dy * gamma: dx = rstd (g - mean(g) - xhat mean(g xhat));
  // dgamma = sum dy xhat; dbeta = sum dy.
  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override {
    const size_t rows = pass.batch_size * rows_per_example_;
    EDGEFL_CHECK(in.size() == rows * dim_ && d_out.size() == in.size()) << name();
    const float* gamma = pass.parameters.data() + gamma_offset_;
    float* d_gamma = pass.gradients.data() + gamma_offset_;
    float* d_beta = pass.gradients.data() + beta_offset_;
    std::fill(d_gamma, d_gamma + dim_, 0.0f);
    std::fill(d_beta, d_beta + dim_, 0.0f);
    for (size_t r = 0; r < rows; ++r) {
      const float* x = in.data() + r * dim_;
      const float* dy = d_out.data() + r * dim_;
      const float mean = scratch[2 * r];
      const float rstd = scratch[2 * r + 1];
      for (size_t j = 0; j < dim_; ++j) {
        d_gamma[j] += dy[j] * (x[j] - mean) * rstd;
        d_beta[j] += dy[j];
      }
    }
    if (d_in.empty()) return;
    EDGEFL_CHECK(d_in.size() == in.size()) << name();
    ForEachChunk(rows, pass.parallel, [&](size_t begin, size_t end) {
      for (size_t r = begin; r < end; ++r) {
        const float* x = in.data() + r * dim_;
        const float* dy = d_out.data() + r * dim_;
        float* dx = d_in.data() + r * dim_;
        const float mean = scratch[2 * r];
        const float rstd = scratch[2 * r + 1];
        float mean_g = 0.0f;
        float mean_gx = 0.0f;
        for (size_t j = 0; j < dim_; ++j) {
          const float g = dy[j] * gamma[j];
          mean_g += g;
          mean_gx += g * (x[j] - mean) * rstd;
        }
        mean_g /= static_cast<float>(dim_);
        mean_gx /= static_cast<float>(dim_);
        for (size_t j = 0; j < dim_; ++j) {
          dx[j] = rstd * (dy[j] * gamma[j] - mean_g - (x[j] - mean) * rstd * mean_gx);
        }
      }
    });
  }

 private:
  static constexpr float kEps = 1e-5f;
  size_t dim_ = 0;
  size_t rows_per_example_ = 0;
  size_t gamma_offset_ = 0;
  size_t beta_offset_ = 0;
};

// ---------------------------------------------------------------------------------------------

// GELU, tanh approximation (Hendrycks & Gimpel 2016, eq. in section 2; GPT-2's "gelu_new"): y = 0.5
// x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3). Not the exact erf form.
class Gelu final : public Layer {
 public:
  using Layer::Layer;
  std::string_view kind() const override { return "gelu"; }
  Result<Shape> Build(const Shape& input_shape) override { return input_shape; }

  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override {
    EDGEFL_CHECK(out.size() == in.size()) << name();
    ForEachChunk(in.size(), pass.parallel, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        const float x = in[i];
        out[i] = 0.5f * x * (1.0f + FastTanh(kSqrt2OverPi * (x + kCubic * x * x * x)));
      }
    });
  }
  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override {
    if (d_in.empty()) return;
    EDGEFL_CHECK(d_out.size() == in.size() && d_in.size() == in.size()) << name();
    ForEachChunk(in.size(), pass.parallel, [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end; ++i) {
        const float x = in[i];
        const float t = FastTanh(kSqrt2OverPi * (x + kCubic * x * x * x));
        const float du = kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
        d_in[i] = d_out[i] * (0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * du);
      }
    });
  }

 private:
  // tanh(u) = 1 - 2 / (exp(2u) + 1): one expf instead of libm's tanhf, which goes through expm1f
  // and took 40% of a charlm step. Exact at both tails (exp overflows to inf -> 1, underflows to 0
  // -> -1); near 0 it loses relative accuracy to cancellation, but its absolute error stays ~1e-7,
  // and GELU uses 1 + tanh, so that is all that matters.
  static float FastTanh(float u) { return 1.0f - 2.0f / (std::exp(2.0f * u) + 1.0f); }
  static constexpr float kSqrt2OverPi = 0.7978845608028654f;
  static constexpr float kCubic = 0.044715f;
};

// ---------------------------------------------------------------------------------------------

// y[t] = W x[t] + b for every position: input [T, in] -> [T, out].
class PositionwiseDense final : public Layer {
 public:
  PositionwiseDense(std::string name, size_t out_features, DenseInit init)
      : Layer(std::move(name)), out_(out_features), init_(init) {
    EDGEFL_CHECK(out_features > 0) << this->name();
  }
  std::string_view kind() const override { return "positionwise_dense"; }

  Result<Shape> Build(const Shape& input_shape) override {
    EDGEFL_RETURN_IF_ERROR(RequireSequence(name(), kind(), input_shape));
    context_ = static_cast<size_t>(input_shape[0]);
    in_ = static_cast<size_t>(input_shape[1]);
    return Shape{input_shape[0], static_cast<int64_t>(out_)};
  }
  void RegisterParameters(ParameterLayout& layout) override {
    weight_offset_ =
        layout.Add(name() + ".weight", {static_cast<int64_t>(out_), static_cast<int64_t>(in_)});
    bias_offset_ = layout.Add(name() + ".bias", {static_cast<int64_t>(out_)});
  }
  void InitializeParameters(std::span<float> parameters, Rng& rng) const override {
    FillLeCun(parameters.subspan(weight_offset_, out_ * in_), in_,
              init_ == DenseInit::kHeUniform ? 6.0 : 3.0, rng);
    std::fill_n(parameters.begin() + bias_offset_, out_, 0.0f);
  }
  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override {
    const size_t rows = pass.batch_size * context_;
    EDGEFL_CHECK(in.size() == rows * in_ && out.size() == rows * out_) << name();
    LinearForward(pass.parallel, rows, in_, out_, in.data(),
                  pass.parameters.data() + weight_offset_, pass.parameters.data() + bias_offset_,
                  out.data());
  }
  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override {
    const size_t rows = pass.batch_size * context_;
    EDGEFL_CHECK(in.size() == rows * in_ && d_out.size() == rows * out_) << name();
    EDGEFL_CHECK(d_in.empty() || d_in.size() == in.size()) << name();
    LinearBackward(pass.parallel, rows, in_, out_, in.data(),
                   pass.parameters.data() + weight_offset_, d_out.data(),
                   pass.gradients.data() + weight_offset_, pass.gradients.data() + bias_offset_,
                   d_in.empty() ? nullptr : d_in.data());
  }

 private:
  size_t out_;
  DenseInit init_;
  size_t context_ = 0;
  size_t in_ = 0;
  size_t weight_offset_ = 0;
  size_t bias_offset_ = 0;
};

// ---------------------------------------------------------------------------------------------

// Causal multi-head self-attention (Vaswani et al. 2017, section 3.2) with a fused QKV projection:
// qkv = x Wqkv^T + bqkv ([T, 3d]: q | k | v, head h in columns [h dh, (h+1) dh) of each), per head
// P = softmax(q k^T / sqrt(dh) + causal mask), ctx = P v, out = ctx Wo^T + bo. Scratch per example:
// qkv [T, 3d], P [H, T, T], ctx [T, d], and backward workspace d_qkv [T, 3d], d_ctx [T, d], dP [H,
// T, T]; 850 KB at T = d = 128, H = 4. Without `project` it is the core alone (the attention core
// of transformer_layers.h): input qkv [T, 3d], output ctx [T, d], no parameters, so that a model can
// run the two projections as layers of their own (frozen, quantized or LoRA-adapted).
class CausalSelfAttention final : public Layer {
 public:
  CausalSelfAttention(std::string name, size_t num_heads, bool project = true)
      : Layer(std::move(name)), heads_(num_heads), project_(project) {
    EDGEFL_CHECK(num_heads > 0) << this->name();
  }
  std::string_view kind() const override { return "causal_self_attention"; }

  Result<Shape> Build(const Shape& input_shape) override {
    EDGEFL_RETURN_IF_ERROR(RequireSequence(name(), kind(), input_shape));
    context_ = static_cast<size_t>(input_shape[0]);
    dim_ = static_cast<size_t>(input_shape[1]);
    if (!project_) {
      if (dim_ % 3 != 0) {
        return InvalidArgumentError("attention core '" + name() + "' needs input [T, 3d], got " +
                                    ShapeToString(input_shape));
      }
      dim_ /= 3;
    }
    if (dim_ % heads_ != 0) {
      return InvalidArgumentError("attention layer '" + name() + "': d = " + std::to_string(dim_) +
                                  " is not a multiple of " + std::to_string(heads_) + " heads");
    }
    head_dim_ = dim_ / heads_;
    return Shape{input_shape[0], static_cast<int64_t>(dim_)};
  }
  void RegisterParameters(ParameterLayout& layout) override {
    if (!project_) return;
    const auto d = static_cast<int64_t>(dim_);
    qkv_weight_ = layout.Add(name() + ".qkv.weight", {3 * d, d});
    qkv_bias_ = layout.Add(name() + ".qkv.bias", {3 * d});
    proj_weight_ = layout.Add(name() + ".proj.weight", {d, d});
    proj_bias_ = layout.Add(name() + ".proj.bias", {d});
  }
  void InitializeParameters(std::span<float> parameters, Rng& rng) const override {
    if (!project_) return;
    FillLeCun(parameters.subspan(qkv_weight_, 3 * dim_ * dim_), dim_, 3.0, rng);
    std::fill_n(parameters.begin() + qkv_bias_, 3 * dim_, 0.0f);
    FillLeCun(parameters.subspan(proj_weight_, dim_ * dim_), dim_, 3.0, rng);
    std::fill_n(parameters.begin() + proj_bias_, dim_, 0.0f);
  }
  size_t scratch_per_example() const override { return 2 * (QkvSize() + ProbSize() + CtxSize()); }

  void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
               std::span<float> scratch) const override {
    const size_t batch = pass.batch_size;
    const size_t rows = batch * context_;
    EDGEFL_CHECK(in.size() == rows * InWidth() && out.size() == rows * dim_ &&
                 scratch.size() == batch * scratch_per_example())
        << name();
    float* qkv = scratch.data();
    float* probs = qkv + batch * QkvSize();
    float* ctx = probs + batch * ProbSize();
    const float* p = pass.parameters.data();
    if (project_) {
      LinearForward(pass.parallel, rows, dim_, 3 * dim_, in.data(), p + qkv_weight_,
                    p + qkv_bias_, qkv);
    } else {
      std::copy(in.begin(), in.end(), qkv);
    }
    const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
    const size_t ld = 3 * dim_;
    ForEachChunk(batch * heads_, pass.parallel, [&](size_t begin, size_t end) {
      for (size_t bh = begin; bh < end; ++bh) {
        const size_t b = bh / heads_;
        const size_t h = bh % heads_;
        const float* q = qkv + b * QkvSize() + h * head_dim_;
        const float* k = q + dim_;
        const float* v = q + 2 * dim_;
        float* s = probs + b * ProbSize() + h * context_ * context_;
        // S = scale q k^T. The upper triangle is computed and then masked: at T = 128 the saved
        // work is not worth a triangular kernel.
        gemm(Transpose::kNo, Transpose::kYes, context_, context_, head_dim_, scale, q, ld, k, ld,
             0.0f, s, context_, ThreadGemmWorkspace());
        for (size_t t = 0; t < context_; ++t) {
          float* row = s + t * context_;
          // Stable softmax over the allowed keys j <= t: subtract the row's max first.
          const float m = *std::max_element(row, row + t + 1);
          float sum = 0.0f;
          for (size_t j = 0; j <= t; ++j) sum += (row[j] = std::exp(row[j] - m));
          const float inverse = 1.0f / sum;
          for (size_t j = 0; j <= t; ++j) row[j] *= inverse;
          std::fill(row + t + 1, row + context_, 0.0f);
        }
        gemm(Transpose::kNo, Transpose::kNo, context_, head_dim_, context_, 1.0f, s, context_, v,
             ld, 0.0f, ctx + b * CtxSize() + h * head_dim_, dim_, ThreadGemmWorkspace());
      }
    });
    if (!project_) {
      std::copy(ctx, ctx + rows * dim_, out.data());
      return;
    }
    LinearForward(pass.parallel, rows, dim_, dim_, ctx, p + proj_weight_, p + proj_bias_,
                  out.data());
  }

  void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                std::span<const float> d_out, std::span<float> d_in,
                std::span<float> scratch) const override {
    const size_t batch = pass.batch_size;
    const size_t rows = batch * context_;
    EDGEFL_CHECK(in.size() == rows * InWidth() && d_out.size() == rows * dim_ &&
                 scratch.size() == batch * scratch_per_example())
        << name();
    EDGEFL_CHECK(d_in.empty() || d_in.size() == in.size()) << name();
    float* qkv = scratch.data();
    float* probs = qkv + batch * QkvSize();
    float* ctx = probs + batch * ProbSize();
    float* d_qkv = ctx + batch * CtxSize();
    float* d_probs = d_qkv + batch * QkvSize();
    float* d_ctx = d_probs + batch * ProbSize();
    const float* p = pass.parameters.data();
    float* g = pass.gradients.data();
    if (project_) {
      LinearBackward(pass.parallel, rows, dim_, dim_, ctx, p + proj_weight_, d_out.data(),
                     g + proj_weight_, g + proj_bias_, d_ctx);
    } else {
      std::copy(d_out.begin(), d_out.end(), d_ctx);
    }
    const kernels::GemmF32Fn gemm = kernels::Kernels().gemm_f32;
    const float scale = 1.0f / std::sqrt(static_cast<float>(head_dim_));
    const size_t ld = 3 * dim_;
    ForEachChunk(batch * heads_, pass.parallel, [&](size_t begin, size_t end) {
      for (size_t bh = begin; bh < end; ++bh) {
        const size_t b = bh / heads_;
        const size_t h = bh % heads_;
        const size_t offset = b * QkvSize() + h * head_dim_;
        const float* q = qkv + offset;
        const float* k = q + dim_;
        const float* v = q + 2 * dim_;
        float* dq = d_qkv + offset;
        float* dk = dq + dim_;
        float* dv = dq + 2 * dim_;
        const float* s = probs + b * ProbSize() + h * context_ * context_;
        float* ds = d_probs + b * ProbSize() + h * context_ * context_;
        const float* dc = d_ctx + b * CtxSize() + h * head_dim_;
        // dP = dctx v^T; dv = P^T dctx.
        gemm(Transpose::kNo, Transpose::kYes, context_, context_, head_dim_, 1.0f, dc, dim_, v, ld,
             0.0f, ds, context_, ThreadGemmWorkspace());
        gemm(Transpose::kYes, Transpose::kNo, context_, head_dim_, context_, 1.0f, s, context_, dc,
             dim_, 0.0f, dv, ld, ThreadGemmWorkspace());
        // Softmax backward: dS = P (dP - rowsum(dP P)), times the 1/sqrt(dh) of the scores. Masked
        // entries have P = 0 and so dS = 0.
        for (size_t t = 0; t < context_; ++t) {
          const float* pr = s + t * context_;
          float* dr = ds + t * context_;
          float dot = 0.0f;
          for (size_t j = 0; j <= t; ++j) dot += dr[j] * pr[j];
          for (size_t j = 0; j <= t; ++j) dr[j] = scale * pr[j] * (dr[j] - dot);
          std::fill(dr + t + 1, dr + context_, 0.0f);
        }
        // dq = dS k; dk = dS^T q.
        gemm(Transpose::kNo, Transpose::kNo, context_, head_dim_, context_, 1.0f, ds, context_, k,
             ld, 0.0f, dq, ld, ThreadGemmWorkspace());
        gemm(Transpose::kYes, Transpose::kNo, context_, head_dim_, context_, 1.0f, ds, context_, q,
             ld, 0.0f, dk, ld, ThreadGemmWorkspace());
      }
    });
    if (!project_) {
      if (!d_in.empty()) std::copy(d_qkv, d_qkv + rows * 3 * dim_, d_in.data());
      return;
    }
    LinearBackward(pass.parallel, rows, dim_, 3 * dim_, in.data(), p + qkv_weight_, d_qkv,
                   g + qkv_weight_, g + qkv_bias_, d_in.empty() ? nullptr : d_in.data());
  }

 private:
  size_t InWidth() const { return project_ ? dim_ : 3 * dim_; }
  size_t QkvSize() const { return context_ * 3 * dim_; }
  size_t ProbSize() const { return heads_ * context_ * context_; }
  size_t CtxSize() const { return context_ * dim_; }

  size_t heads_;
  bool project_;
  size_t context_ = 0;
  size_t dim_ = 0;
  size_t head_dim_ = 0;
  size_t qkv_weight_ = 0;
  size_t qkv_bias_ = 0;
  size_t proj_weight_ = 0;
  size_t proj_bias_ = 0;
};

}  // namespace

std::unique_ptr<Layer> MakeEmbedding(std::string name, size_t vocab_size, size_t dim) {
  return std::make_unique<Embedding>(std::move(name), vocab_size, dim);
}
std::unique_ptr<Layer> MakeLayerNorm(std::string name) {
  return std::make_unique<LayerNorm>(std::move(name));
}
std::unique_ptr<Layer> MakeGelu(std::string name) {
  return std::make_unique<Gelu>(std::move(name));
}
std::unique_ptr<Layer> MakePositionwiseDense(std::string name, size_t out_features,
                                             DenseInit init) {
  return std::make_unique<PositionwiseDense>(std::move(name), out_features, init);
}
std::unique_ptr<Layer> MakeCausalSelfAttention(std::string name, size_t num_heads) {
  return std::make_unique<CausalSelfAttention>(std::move(name), num_heads);
}
std::unique_ptr<Layer> internal::MakeCausalAttentionCore(std::string name, size_t num_heads) {
  return std::make_unique<CausalSelfAttention>(std::move(name), num_heads, /*project=*/false);
}

}  // namespace edgefl::models

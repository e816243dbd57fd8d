#include "edgefl/models/charlm.h"

#include <algorithm>
#include <string>
#include <vector>

#include "edgefl/common/check.h"
#include "edgefl/common/random.h"
#include "edgefl/models/layers.h"
#include "parallel.h"

namespace edgefl::models {

Status CharLmConfig::Validate() const {
  if (context < 1 || context > 4096) {
    return InvalidArgumentError("context must be in [1, 4096], got " + std::to_string(context));
  }
  if (num_heads < 1) return InvalidArgumentError("num_heads must be >= 1, got 0");
  if (d_model < 1 || d_model % num_heads != 0) {
    return InvalidArgumentError("d_model must be a positive multiple of num_heads (" +
                                std::to_string(num_heads) + "), got " + std::to_string(d_model));
  }
  if (num_layers < 1 || num_layers > 64) {
    return InvalidArgumentError("num_layers must be in [1, 64], got " + std::to_string(num_layers));
  }
  if (vocab_size < 2 || vocab_size > 256) {
    return InvalidArgumentError("vocab_size must be in [2, 256], got " +
                                std::to_string(vocab_size));
  }
  return OkStatus();
}

size_t CharLmParameterCount(const CharLmConfig& c) {
  const size_t d = c.d_model;
  const size_t block = 4 * d + (4 * d * d + 4 * d) + (8 * d * d + 5 * d);
  return (c.vocab_size + c.context) * d + c.num_layers * block + 2 * d + c.vocab_size * d +
         c.vocab_size;
}

namespace {

// Rows of the model's activations, sized for capacity_ examples. Each block keeps the input of
// every sublayer for Backward; the residual stream is stream[0] (embedding output) and stream[i +
// 1] (output of block i), with mid[i] the stream between block i's two halves.
class CharLm final : public Model {
 public:
  explicit CharLm(const CharLmConfig& config) : config_(config), name_("charlm") {}

  Status Build() {
    const auto t = static_cast<int64_t>(config_.context);
    const auto d = static_cast<int64_t>(config_.d_model);
    embedding_ = MakeEmbedding("embed", config_.vocab_size, config_.d_model);
    EDGEFL_RETURN_IF_ERROR(embedding_->Build(Shape{t}).status());
    embedding_->RegisterParameters(layout_);
    for (size_t i = 0; i < config_.num_layers; ++i) {
      const std::string prefix = "block" + std::to_string(i) + ".";
      Block block;
      block.ln1 = MakeLayerNorm(prefix + "ln1");
      block.attn = MakeCausalSelfAttention(prefix + "attn", config_.num_heads);
      block.ln2 = MakeLayerNorm(prefix + "ln2");
      block.fc1 =
          MakePositionwiseDense(prefix + "fc1", 4 * config_.d_model, DenseInit::kLeCunUniform);
      block.gelu = MakeGelu(prefix + "gelu");
      block.fc2 = MakePositionwiseDense(prefix + "fc2", config_.d_model, DenseInit::kLeCunUniform);
      for (Layer* layer : {block.ln1.get(), block.attn.get(), block.ln2.get()}) {
        EDGEFL_RETURN_IF_ERROR(layer->Build(Shape{t, d}).status());
        layer->RegisterParameters(layout_);
      }
      EDGEFL_RETURN_IF_ERROR(block.fc1->Build(Shape{t, d}).status());
      block.fc1->RegisterParameters(layout_);
      EDGEFL_RETURN_IF_ERROR(block.gelu->Build(Shape{t, 4 * d}).status());
      EDGEFL_RETURN_IF_ERROR(block.fc2->Build(Shape{t, 4 * d}).status());
      block.fc2->RegisterParameters(layout_);
      blocks_.push_back(std::move(block));
    }
    final_norm_ = MakeLayerNorm("ln_f");
    EDGEFL_RETURN_IF_ERROR(final_norm_->Build(Shape{t, d}).status());
    final_norm_->RegisterParameters(layout_);
    head_ = MakePositionwiseDense("head", config_.vocab_size, DenseInit::kLeCunUniform);
    EDGEFL_RETURN_IF_ERROR(head_->Build(Shape{t, d}).status());
    head_->RegisterParameters(layout_);
    EDGEFL_CHECK_EQ(layout_.size(), CharLmParameterCount(config_));
    parameters_.assign(layout_.size(), 0.0f);
    gradients_.assign(layout_.size(), 0.0f);
    return OkStatus();
  }

  const std::string& name() const override { return name_; }
  const ParameterLayout& layout() const override { return layout_; }
  size_t input_size() const override { return config_.context; }
  size_t num_classes() const override { return config_.vocab_size; }
  size_t targets_per_example() const override { return config_.context; }
  std::span<float> parameters() override { return parameters_; }
  std::span<const float> parameters() const override { return parameters_; }
  std::span<float> gradients() override { return gradients_; }

  // Every layer draws from its own stream, numbered in build order. The residual projections
  // (attn.proj, fc2) keep their unit-gain init: GPT-2's 1/sqrt(2 L) rescale of them is
  // deliberately left out (not tried here).
  void InitializeParameters(uint64_t seed) override {
    uint64_t stream = 0;
    ForEachLayer([&](const Layer& layer) {
      Rng rng(DeriveSeed(seed, stream++));
      layer.InitializeParameters(parameters_, rng);
    });
  }

  void Forward(std::span<const float> inputs, size_t batch_size, std::span<float> logits) override {
    EDGEFL_CHECK(batch_size > 0);
    EDGEFL_CHECK_EQ(inputs.size(), batch_size * config_.context);
    EDGEFL_CHECK_EQ(logits.size(), batch_size * config_.context * config_.vocab_size);
    Reserve(batch_size);
    RunForward(inputs, batch_size, logits);
  }

  float ForwardBackward(const Batch& batch) override {
    const size_t n = batch.batch_size;
    const size_t t = config_.context;
    EDGEFL_CHECK(n > 0);
    EDGEFL_CHECK_EQ(batch.inputs.size(), n * t);
    EDGEFL_CHECK_EQ(batch.labels.size(), n * t);
    Reserve(n);
    std::span<float> logits = Slice(logits_, n * t * config_.vocab_size);
    RunForward(batch.inputs, n, logits);
    std::span<float> d_logits = Slice(d_logits_, logits.size());
    const float loss = SoftmaxCrossEntropy(logits, batch.labels, config_.vocab_size, d_logits);

    const PassContext pass{.batch_size = n,
                           .parameters = parameters_,
                           .gradients = gradients_,
                           .parallel = Parallel(n)};
    const size_t width = n * t * config_.d_model;
    std::span<float> d_stream = Slice(d_stream_, width);  // dL/d(residual stream)
    std::span<float> d_a = Slice(d_a_, width);
    std::span<float> d_hidden = Slice(d_hidden_, 4 * width);
    std::span<float> d_hidden2 = Slice(d_hidden2_, 4 * width);

    head_->Backward(pass, Slice(final_norm_out_, width), logits, d_logits, d_a, {});
    final_norm_->Backward(pass, Slice(stream_.back(), width), Slice(final_norm_out_, width), d_a,
                          d_stream, Scratch(final_norm_scratch_, *final_norm_, n));
    for (size_t i = blocks_.size(); i-- > 0;) {
      Block& b = blocks_[i];
      // x_out = mid + fc2(gelu(fc1(ln2(mid)))): d_stream flows to mid unchanged, plus the MLP's.
      b.fc2->Backward(pass, Slice(b.gelu_out, 4 * width), {}, d_stream, d_hidden, {});
      b.gelu->Backward(pass, Slice(b.fc1_out, 4 * width), {}, d_hidden, d_hidden2, {});
      b.fc1->Backward(pass, Slice(b.ln2_out, width), {}, d_hidden2, d_a, {});
      AddLayerNormGradient(pass, *b.ln2, Slice(b.mid, width), Slice(b.ln2_out, width),
                           Scratch(b.ln2_scratch, *b.ln2, n), d_a, d_stream);
      // mid = x_in + attn(ln1(x_in)).
      std::span<float> d_ln1 = d_hidden.first(width);
      b.attn->Backward(pass, Slice(b.ln1_out, width), {}, d_stream, d_ln1,
                       Scratch(b.attn_scratch, *b.attn, n));
      AddLayerNormGradient(pass, *b.ln1, Slice(stream_[i], width), Slice(b.ln1_out, width),
                           Scratch(b.ln1_scratch, *b.ln1, n), d_ln1, d_stream);
    }
    embedding_->Backward(pass, batch.inputs, Slice(stream_[0], width), d_stream, {}, {});
    return loss;
  }

 private:
  struct Block {
    std::unique_ptr<Layer> ln1, attn, ln2, fc1, gelu, fc2;
    std::vector<float> ln1_out, ln1_scratch, attn_scratch, mid, ln2_out, ln2_scratch, fc1_out,
        gelu_out;
  };

  template <typename Fn>
  void ForEachLayer(Fn&& fn) const {
    fn(*embedding_);
    for (const Block& b : blocks_) {
      for (const Layer* layer :
           {b.ln1.get(), b.attn.get(), b.ln2.get(), b.fc1.get(), b.gelu.get(), b.fc2.get()}) {
        fn(*layer);
      }
    }
    fn(*final_norm_);
    fn(*head_);
  }

  // Large products pay for threads at any batch: one example is T rows.
  bool Parallel(size_t batch_size) const {
    return internal::ShouldParallelize(batch_size * config_.context);
  }

  static std::span<float> Slice(std::vector<float>& v, size_t n) {
    EDGEFL_CHECK_LE(n, v.size());
    return std::span<float>(v).first(n);
  }
  static std::span<float> Scratch(std::vector<float>& v, const Layer& layer, size_t n) {
    return Slice(v, n * layer.scratch_per_example());
  }

  // d_stream += dL/d(x) through layer norm `ln` whose output gradient is `d_out`.
  void AddLayerNormGradient(const PassContext& pass, const Layer& ln, std::span<float> in,
                            std::span<float> out, std::span<float> scratch, std::span<float> d_out,
                            std::span<float> d_stream) {
    std::span<float> d_in = Slice(d_tmp_, in.size());
    ln.Backward(pass, in, out, d_out, d_in, scratch);
    for (size_t i = 0; i < d_stream.size(); ++i) d_stream[i] += d_in[i];
  }

  void Reserve(size_t batch_size) {
    if (batch_size <= capacity_) return;
    const size_t rows = batch_size * config_.context;
    const size_t width = rows * config_.d_model;
    auto size = [](std::vector<float>& v, size_t n) { v.assign(n, 0.0f); };
    stream_.resize(blocks_.size() + 1);
    for (std::vector<float>& s : stream_) size(s, width);
    for (Block& b : blocks_) {
      size(b.ln1_out, width);
      size(b.ln1_scratch, batch_size * b.ln1->scratch_per_example());
      size(b.attn_scratch, batch_size * b.attn->scratch_per_example());
      size(b.mid, width);
      size(b.ln2_out, width);
      size(b.ln2_scratch, batch_size * b.ln2->scratch_per_example());
      size(b.fc1_out, 4 * width);
      size(b.gelu_out, 4 * width);
    }
    size(final_norm_out_, width);
    size(final_norm_scratch_, batch_size * final_norm_->scratch_per_example());
    size(logits_, rows * config_.vocab_size);
    size(d_logits_, rows * config_.vocab_size);
    size(d_stream_, width);
    size(d_a_, width);
    size(d_tmp_, width);
    size(d_hidden_, 4 * width);
    size(d_hidden2_, 4 * width);
    capacity_ = batch_size;
  }

  void RunForward(std::span<const float> inputs, size_t n, std::span<float> logits) {
    const PassContext pass{
        .batch_size = n, .parameters = parameters_, .gradients = {}, .parallel = Parallel(n)};
    const size_t width = n * config_.context * config_.d_model;
    embedding_->Forward(pass, inputs, Slice(stream_[0], width), {});
    for (size_t i = 0; i < blocks_.size(); ++i) {
      Block& b = blocks_[i];
      std::span<float> x = Slice(stream_[i], width);
      std::span<float> mid = Slice(b.mid, width);
      std::span<float> x_out = Slice(stream_[i + 1], width);
      b.ln1->Forward(pass, x, Slice(b.ln1_out, width), Scratch(b.ln1_scratch, *b.ln1, n));
      b.attn->Forward(pass, Slice(b.ln1_out, width), mid, Scratch(b.attn_scratch, *b.attn, n));
      for (size_t j = 0; j < width; ++j) mid[j] += x[j];
      b.ln2->Forward(pass, mid, Slice(b.ln2_out, width), Scratch(b.ln2_scratch, *b.ln2, n));
      b.fc1->Forward(pass, Slice(b.ln2_out, width), Slice(b.fc1_out, 4 * width), {});
      b.gelu->Forward(pass, Slice(b.fc1_out, 4 * width), Slice(b.gelu_out, 4 * width), {});
      b.fc2->Forward(pass, Slice(b.gelu_out, 4 * width), x_out, {});
      for (size_t j = 0; j < width; ++j) x_out[j] += mid[j];
    }
    final_norm_->Forward(pass, Slice(stream_.back(), width), Slice(final_norm_out_, width),
                         Scratch(final_norm_scratch_, *final_norm_, n));
    head_->Forward(pass, Slice(final_norm_out_, width), logits, {});
  }

  CharLmConfig config_;
  std::string name_;
  ParameterLayout layout_;
  std::vector<float> parameters_;
  std::vector<float> gradients_;
  std::unique_ptr<Layer> embedding_;
  std::vector<Block> blocks_;
  std::unique_ptr<Layer> final_norm_;
  std::unique_ptr<Layer> head_;

  size_t capacity_ = 0;
  std::vector<std::vector<float>> stream_;
  std::vector<float> final_norm_out_, final_norm_scratch_, logits_, d_logits_, d_stream_, d_a_,
      d_tmp_, d_hidden_, d_hidden2_;
};

}  // namespace

Result<std::unique_ptr<Model>> CreateCharLm(const CharLmConfig& config) {
  EDGEFL_RETURN_IF_ERROR(config.Validate().WithContext("charlm config"));
  auto model = std::make_unique<CharLm>(config);
  EDGEFL_RETURN_IF_ERROR(model->Build());
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace edgefl::models

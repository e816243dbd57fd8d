#include "edgefl/models/charlm.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "adapted_model.h"
#include "edgefl/common/check.h"
#include "edgefl/common/random.h"
#include "edgefl/models/layers.h"
#include "parallel.h"
#include "transformer_layers.h"

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

// How a CharLm holds its weights. kTrainable: every parameter is in the model's buffer (pretraining,
// full fine-tuning). kFrozen: the dense projections are FrozenDense layers (fp32, int8 or int4), the
// embeddings and layer norms sit in a frozen fp32 buffer of their own, and the model's buffer holds
// only the LoRA adapters of the projections that have one.
enum class Mode { kTrainable, kFrozen };

// Rows of the model's activations, sized for capacity_ examples. Each block keeps the input of
// every sublayer for Backward; the residual stream is stream[0] (embedding output) and stream[i +
// 1] (output of block i), with mid[i] the stream between block i's two halves.
//
// The projections differ by mode: kTrainable uses position-wise dense layers over [batch, T, in];
// kFrozen uses FrozenDense / LoraDense, which see one row per position (a pass of batch * T rows).
class CharLm final : public Model, public internal::MergeableLora {
 public:
  CharLm(const CharLmConfig& config, Mode mode) : config_(config), mode_(mode), name_("charlm") {}

  // kFrozen: `base` and `lora` must be given (lora may have no targets).
  Status Build(const TensorMap* base = nullptr, const LoraOptions* lora = nullptr,
               const std::set<std::string, std::less<>>* targets = nullptr) {
    const auto t = static_cast<int64_t>(config_.context);
    const auto d = static_cast<int64_t>(config_.d_model);
    ParameterLayout& dense_layout = mode_ == Mode::kFrozen ? base_layout_ : layout_;
    auto add = [&](Layer& layer, const Shape& shape) -> Status {
      EDGEFL_RETURN_IF_ERROR(layer.Build(shape).status());
      layer.RegisterParameters(dense_layout);
      return OkStatus();
    };
    // A projection "name" with `out` outputs over [T, in] inputs.
    auto projection = [&](const std::string& name, int64_t in,
                          int64_t out) -> Result<std::unique_ptr<Layer>> {
      if (mode_ == Mode::kTrainable) {
        std::unique_ptr<Layer> layer =
            MakePositionwiseDense(name, static_cast<size_t>(out), DenseInit::kLeCunUniform);
        EDGEFL_RETURN_IF_ERROR(add(*layer, Shape{t, in}));
        return layer;
      }
      EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<FrozenDense> frozen,
                              FrozenDense::FromTensors(name, *base));
      // Build first: an int4 layer learns its exact `in` from it (quantized.h).
      EDGEFL_RETURN_IF_ERROR(frozen->Build(Shape{in}).status());
      if (frozen->out_features() != static_cast<size_t>(out) ||
          frozen->in_features() != static_cast<size_t>(in)) {
        return InvalidArgumentError(
            "charlm base tensor '" + name + ".weight' is [" +
            std::to_string(frozen->out_features()) + ", " + std::to_string(frozen->in_features()) +
            "], expected [" + std::to_string(out) + ", " + std::to_string(in) + "]");
      }
      const bool adapted = targets->contains(name) ||
                           targets->contains(name.substr(name.find_last_of('.') + 1));
      std::unique_ptr<Layer> layer;
      if (adapted) {
        if (lora->rank > static_cast<size_t>(std::min(in, out))) {
          return InvalidArgumentError("LoRA rank " + std::to_string(lora->rank) +
                                      " exceeds min(in, out) = " +
                                      std::to_string(std::min(in, out)) + " of '" + name + "'");
        }
        layer = std::make_unique<LoraDense>(*frozen, *lora);
      }
      frozen_.push_back(std::move(frozen));
      if (!adapted) return std::unique_ptr<Layer>(std::make_unique<Borrowed>(*frozen_.back()));
      EDGEFL_RETURN_IF_ERROR(layer->Build(Shape{in}).status());
      layer->RegisterParameters(layout_);
      return layer;
    };

    embedding_ = MakeEmbedding("embed", config_.vocab_size, config_.d_model);
    EDGEFL_RETURN_IF_ERROR(add(*embedding_, Shape{t}));
    for (size_t i = 0; i < config_.num_layers; ++i) {
      const std::string prefix = "block" + std::to_string(i) + ".";
      Block block;
      block.ln1 = MakeLayerNorm(prefix + "ln1");
      EDGEFL_RETURN_IF_ERROR(add(*block.ln1, Shape{t, d}));
      EDGEFL_ASSIGN_OR_RETURN(block.qkv, projection(prefix + "attn.qkv", d, 3 * d));
      block.attn = internal::MakeCausalAttentionCore(prefix + "attn", config_.num_heads);
      EDGEFL_RETURN_IF_ERROR(add(*block.attn, Shape{t, 3 * d}));
      EDGEFL_ASSIGN_OR_RETURN(block.proj, projection(prefix + "attn.proj", d, d));
      block.ln2 = MakeLayerNorm(prefix + "ln2");
      EDGEFL_RETURN_IF_ERROR(add(*block.ln2, Shape{t, d}));
      EDGEFL_ASSIGN_OR_RETURN(block.fc1, projection(prefix + "fc1", d, 4 * d));
      block.gelu = MakeGelu(prefix + "gelu");
      EDGEFL_RETURN_IF_ERROR(add(*block.gelu, Shape{t, 4 * d}));
      EDGEFL_ASSIGN_OR_RETURN(block.fc2, projection(prefix + "fc2", 4 * d, d));
      blocks_.push_back(std::move(block));
    }
    final_norm_ = MakeLayerNorm("ln_f");
    EDGEFL_RETURN_IF_ERROR(add(*final_norm_, Shape{t, d}));
    EDGEFL_ASSIGN_OR_RETURN(head_, projection("head", d, static_cast<int64_t>(config_.vocab_size)));
    if (mode_ == Mode::kTrainable) {
      EDGEFL_CHECK_EQ(layout_.size(), CharLmParameterCount(config_));
    } else {
      base_parameters_.assign(base_layout_.size(), 0.0f);
      for (const ParameterSpec& spec : base_layout_.specs()) {
        const auto tensor = base->find(spec.name);
        if (tensor == base->end()) {
          return NotFoundError("charlm base has no tensor '" + spec.name + "'");
        }
        if (tensor->second.shape != spec.shape) {
          return InvalidArgumentError("charlm base tensor '" + spec.name + "' has shape " +
                                      ShapeToString(tensor->second.shape) + ", expected " +
                                      ShapeToString(spec.shape));
        }
        EDGEFL_ASSIGN_OR_RETURN(std::vector<float> values,
                                TensorToF32(tensor->second, spec.name));
        std::copy(values.begin(), values.end(), base_parameters_.begin() + spec.offset);
      }
      // Layer norms write their (unused) parameter gradients here.
      base_gradients_.assign(base_layout_.size(), 0.0f);
    }
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

  // Every layer draws from its own stream, numbered in build order (kFrozen: only the adapters
  // draw). The residual projections (attn.proj, fc2) keep their unit-gain init: GPT-2's
  // 1/sqrt(2 L) rescale of them is deliberately left out (not tried here).
  void InitializeParameters(uint64_t seed) override {
    uint64_t stream = 0;
    ForEachLayer([&](const Layer& layer) {
      Rng rng(DeriveSeed(seed, stream++));
      if (mode_ == Mode::kTrainable || layer.kind() == "lora_dense") {
        layer.InitializeParameters(parameters_, rng);
      }
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

    const PassContext pass = Pass(n, /*backward=*/true);
    const PassContext proj = ProjectionPass(n, /*backward=*/true);
    const size_t width = n * t * config_.d_model;
    std::span<float> d_stream = Slice(d_stream_, width);  // dL/d(residual stream)
    std::span<float> d_a = Slice(d_a_, width);
    std::span<float> d_hidden = Slice(d_hidden_, 4 * width);
    std::span<float> d_hidden2 = Slice(d_hidden2_, 4 * width);

    head_->Backward(proj, Slice(final_norm_out_, width), logits, d_logits, d_a,
                    ProjectionScratch(head_scratch_, *head_, n));
    final_norm_->Backward(pass, Slice(stream_.back(), width), Slice(final_norm_out_, width), d_a,
                          d_stream, Scratch(final_norm_scratch_, *final_norm_, n));
    for (size_t i = blocks_.size(); i-- > 0;) {
      Block& b = blocks_[i];
      // x_out = mid + fc2(gelu(fc1(ln2(mid)))): d_stream flows to mid unchanged, plus the MLP's.
      b.fc2->Backward(proj, Slice(b.gelu_out, 4 * width), {}, d_stream, d_hidden,
                      ProjectionScratch(b.fc2_scratch, *b.fc2, n));
      b.gelu->Backward(pass, Slice(b.fc1_out, 4 * width), {}, d_hidden, d_hidden2, {});
      b.fc1->Backward(proj, Slice(b.ln2_out, width), {}, d_hidden2, d_a,
                      ProjectionScratch(b.fc1_scratch, *b.fc1, n));
      AddLayerNormGradient(pass, *b.ln2, Slice(b.mid, width), Slice(b.ln2_out, width),
                           Scratch(b.ln2_scratch, *b.ln2, n), d_a, d_stream);
      // mid = x_in + proj(core(qkv(ln1(x_in)))).
      std::span<float> d_ctx = d_a;
      b.proj->Backward(proj, Slice(b.ctx, width), {}, d_stream, d_ctx,
                       ProjectionScratch(b.proj_scratch, *b.proj, n));
      std::span<float> d_qkv = d_hidden.first(3 * width);
      b.attn->Backward(pass, Slice(b.qkv_out, 3 * width), {}, d_ctx, d_qkv,
                       Scratch(b.attn_scratch, *b.attn, n));
      std::span<float> d_ln1 = d_hidden2.first(width);
      b.qkv->Backward(proj, Slice(b.ln1_out, width), {}, d_qkv, d_ln1,
                      ProjectionScratch(b.qkv_scratch, *b.qkv, n));
      AddLayerNormGradient(pass, *b.ln1, Slice(stream_[i], width), Slice(b.ln1_out, width),
                           Scratch(b.ln1_scratch, *b.ln1, n), d_ln1, d_stream);
    }
    if (mode_ == Mode::kTrainable) {
      embedding_->Backward(pass, batch.inputs, Slice(stream_[0], width), d_stream, {}, {});
    }
    return loss;
  }

  // MergeLora (lora.h): every projection's W~ (+ scale B A when adapted) and bias, and every
  // frozen fp32 tensor, written into a trainable charlm of the same config.
  Status MergeInto(Model& dense) const override {
    if (mode_ != Mode::kFrozen) {
      return InvalidArgumentError("charlm has no frozen base to merge adapters into");
    }
    for (const std::unique_ptr<FrozenDense>& frozen : frozen_) {
      const std::span<const float> base_weight = frozen->DequantizedWeight();
      std::vector<float> weight(base_weight.begin(), base_weight.end());
      for (const LoraDense* adapted : AdaptedLayers()) {
        if (&adapted->base() == frozen.get()) adapted->adapter().MergeInto(parameters_, weight);
      }
      EDGEFL_RETURN_IF_ERROR(WriteTensor(dense, frozen->name() + ".weight", weight));
      EDGEFL_RETURN_IF_ERROR(WriteTensor(dense, frozen->name() + ".bias", frozen->bias()));
    }
    for (const ParameterSpec& spec : base_layout_.specs()) {
      EDGEFL_RETURN_IF_ERROR(WriteTensor(
          dense, spec.name, std::span<const float>(base_parameters_).subspan(spec.offset, spec.size)));
    }
    return OkStatus();
  }

 private:
  // A non-owning view of a frozen projection (owned by frozen_), so that adapted and plain
  // projections are held alike.
  class Borrowed final : public Layer {
   public:
    explicit Borrowed(const Layer& layer) : Layer(layer.name()), layer_(layer) {}
    std::string_view kind() const override { return layer_.kind(); }
    Result<Shape> Build(const Shape&) override { return InternalError("already built"); }
    size_t scratch_per_example() const override { return layer_.scratch_per_example(); }
    void Forward(const PassContext& pass, std::span<const float> in, std::span<float> out,
                 std::span<float> scratch) const override {
      layer_.Forward(pass, in, out, scratch);
    }
    void Backward(const PassContext& pass, std::span<const float> in, std::span<const float> out,
                  std::span<const float> d_out, std::span<float> d_in,
                  std::span<float> scratch) const override {
      layer_.Backward(pass, in, out, d_out, d_in, scratch);
    }

   private:
    const Layer& layer_;
  };

  struct Block {
    std::unique_ptr<Layer> ln1, qkv, attn, proj, ln2, fc1, gelu, fc2;
    std::vector<float> ln1_out, ln1_scratch, qkv_out, qkv_scratch, attn_scratch, ctx, proj_scratch,
        mid, ln2_out, ln2_scratch, fc1_out, fc1_scratch, gelu_out, fc2_scratch;
  };

  template <typename Fn>
  void ForEachLayer(Fn&& fn) const {
    fn(*embedding_);
    for (const Block& b : blocks_) {
      for (const Layer* layer : {b.ln1.get(), b.qkv.get(), b.attn.get(), b.proj.get(), b.ln2.get(),
                                 b.fc1.get(), b.gelu.get(), b.fc2.get()}) {
        fn(*layer);
      }
    }
    fn(*final_norm_);
    fn(*head_);
  }

  std::vector<const LoraDense*> AdaptedLayers() const {
    std::vector<const LoraDense*> adapted;
    ForEachLayer([&](const Layer& layer) {
      if (const auto* lora = dynamic_cast<const LoraDense*>(&layer)) adapted.push_back(lora);
    });
    return adapted;
  }

  static Status WriteTensor(Model& dense, const std::string& name, std::span<const float> values) {
    Result<std::span<float>> view = dense.layout().View(dense.parameters(), name);
    if (!view.ok()) return view.status().WithContext("merging charlm into '" + dense.name() + "'");
    if (view->size() != values.size()) {
      return InvalidArgumentError("tensor '" + name + "' has " + std::to_string(view->size()) +
                                  " values in '" + dense.name() + "', expected " +
                                  std::to_string(values.size()));
    }
    std::copy(values.begin(), values.end(), view->begin());
    return OkStatus();
  }

  // Large products pay for threads at any batch: one example is T rows.
  bool Parallel(size_t batch_size) const {
    return internal::ShouldParallelize(batch_size * config_.context);
  }

  // The pass of the embedding, norms, GELU and attention core: the model's own buffers, or the
  // frozen fp32 buffer (and its scratch gradients) in kFrozen.
  PassContext Pass(size_t n, bool backward) {
    const bool frozen = mode_ == Mode::kFrozen;
    return PassContext{
        .batch_size = n,
        .parameters = frozen ? std::span<const float>(base_parameters_) : parameters_,
        .gradients = backward ? (frozen ? std::span<float>(base_gradients_) : gradients_)
                              : std::span<float>(),
        .parallel = Parallel(n)};
  }
  // The pass of the projections: in kFrozen one row per position, and the buffers are the
  // adapters'.
  PassContext ProjectionPass(size_t n, bool backward) {
    return PassContext{.batch_size = ProjectionRows(n),
                       .parameters = parameters_,
                       .gradients = backward ? gradients_ : std::span<float>(),
                       .parallel = Parallel(n)};
  }
  size_t ProjectionRows(size_t n) const {
    return mode_ == Mode::kFrozen ? n * config_.context : n;
  }

  static std::span<float> Slice(std::vector<float>& v, size_t n) {
    EDGEFL_CHECK_LE(n, v.size());
    return std::span<float>(v).first(n);
  }
  static std::span<float> Scratch(std::vector<float>& v, const Layer& layer, size_t n) {
    return Slice(v, n * layer.scratch_per_example());
  }
  std::span<float> ProjectionScratch(std::vector<float>& v, const Layer& layer, size_t n) const {
    return Slice(v, ProjectionRows(n) * layer.scratch_per_example());
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
    auto projection = [&](std::vector<float>& v, const Layer& layer) {
      size(v, ProjectionRows(batch_size) * layer.scratch_per_example());
    };
    stream_.resize(blocks_.size() + 1);
    for (std::vector<float>& s : stream_) size(s, width);
    for (Block& b : blocks_) {
      size(b.ln1_out, width);
      size(b.ln1_scratch, batch_size * b.ln1->scratch_per_example());
      size(b.qkv_out, 3 * width);
      projection(b.qkv_scratch, *b.qkv);
      size(b.attn_scratch, batch_size * b.attn->scratch_per_example());
      size(b.ctx, width);
      projection(b.proj_scratch, *b.proj);
      size(b.mid, width);
      size(b.ln2_out, width);
      size(b.ln2_scratch, batch_size * b.ln2->scratch_per_example());
      size(b.fc1_out, 4 * width);
      projection(b.fc1_scratch, *b.fc1);
      size(b.gelu_out, 4 * width);
      projection(b.fc2_scratch, *b.fc2);
    }
    size(final_norm_out_, width);
    size(final_norm_scratch_, batch_size * final_norm_->scratch_per_example());
    projection(head_scratch_, *head_);
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
    const PassContext pass = Pass(n, /*backward=*/false);
    const PassContext proj = ProjectionPass(n, /*backward=*/false);
    const size_t width = n * config_.context * config_.d_model;
    embedding_->Forward(pass, inputs, Slice(stream_[0], width), {});
    for (size_t i = 0; i < blocks_.size(); ++i) {
      Block& b = blocks_[i];
      std::span<float> x = Slice(stream_[i], width);
      std::span<float> mid = Slice(b.mid, width);
      std::span<float> x_out = Slice(stream_[i + 1], width);
      b.ln1->Forward(pass, x, Slice(b.ln1_out, width), Scratch(b.ln1_scratch, *b.ln1, n));
      b.qkv->Forward(proj, Slice(b.ln1_out, width), Slice(b.qkv_out, 3 * width),
                     ProjectionScratch(b.qkv_scratch, *b.qkv, n));
      b.attn->Forward(pass, Slice(b.qkv_out, 3 * width), Slice(b.ctx, width),
                      Scratch(b.attn_scratch, *b.attn, n));
      b.proj->Forward(proj, Slice(b.ctx, width), mid, ProjectionScratch(b.proj_scratch, *b.proj, n));
      for (size_t j = 0; j < width; ++j) mid[j] += x[j];
      b.ln2->Forward(pass, mid, Slice(b.ln2_out, width), Scratch(b.ln2_scratch, *b.ln2, n));
      b.fc1->Forward(proj, Slice(b.ln2_out, width), Slice(b.fc1_out, 4 * width),
                     ProjectionScratch(b.fc1_scratch, *b.fc1, n));
      b.gelu->Forward(pass, Slice(b.fc1_out, 4 * width), Slice(b.gelu_out, 4 * width), {});
      b.fc2->Forward(proj, Slice(b.gelu_out, 4 * width), x_out,
                     ProjectionScratch(b.fc2_scratch, *b.fc2, n));
      for (size_t j = 0; j < width; ++j) x_out[j] += mid[j];
    }
    final_norm_->Forward(pass, Slice(stream_.back(), width), Slice(final_norm_out_, width),
                         Scratch(final_norm_scratch_, *final_norm_, n));
    head_->Forward(proj, Slice(final_norm_out_, width), logits,
                   ProjectionScratch(head_scratch_, *head_, n));
  }

  CharLmConfig config_;
  Mode mode_;
  std::string name_;
  ParameterLayout layout_;
  std::vector<float> parameters_;
  std::vector<float> gradients_;
  // kFrozen only: the projections' frozen weights, and the embeddings' and norms' values.
  std::vector<std::unique_ptr<FrozenDense>> frozen_;
  ParameterLayout base_layout_;
  std::vector<float> base_parameters_;
  std::vector<float> base_gradients_;
  std::unique_ptr<Layer> embedding_;
  std::vector<Block> blocks_;
  std::unique_ptr<Layer> final_norm_;
  std::unique_ptr<Layer> head_;

  size_t capacity_ = 0;
  std::vector<std::vector<float>> stream_;
  std::vector<float> final_norm_out_, final_norm_scratch_, head_scratch_, logits_, d_logits_,
      d_stream_, d_a_, d_tmp_, d_hidden_, d_hidden2_;
};

// The short target names: the last component of a projection's name.
constexpr std::string_view kShortTargets[] = {"qkv", "proj", "fc1", "fc2", "head"};

Result<std::unique_ptr<Model>> BuildFrozen(const CharLmConfig& config, const TensorMap& base,
                                           const LoraOptions& lora, bool adapters) {
  EDGEFL_RETURN_IF_ERROR(config.Validate().WithContext("charlm config"));
  std::set<std::string, std::less<>> targets;
  if (adapters) {
    EDGEFL_RETURN_IF_ERROR(lora.Validate());
    const std::vector<std::string> names = CharLmDenseLayers(config);
    for (const std::string& target : lora.target_layers) {
      const bool known =
          std::find(names.begin(), names.end(), target) != names.end() ||
          std::find(std::begin(kShortTargets), std::end(kShortTargets), target) !=
              std::end(kShortTargets);
      if (!known) {
        return InvalidArgumentError("LoRA target '" + target +
                                    "' is not a charlm projection; use qkv, proj, fc1, fc2, head "
                                    "or a full name such as block0.fc2");
      }
      targets.insert(target);
    }
    if (targets.empty()) targets.insert(names.begin(), names.end());
  }
  auto model = std::make_unique<CharLm>(config, Mode::kFrozen);
  EDGEFL_RETURN_IF_ERROR(model->Build(&base, &lora, &targets).WithContext("charlm base"));
  return std::unique_ptr<Model>(std::move(model));
}

}  // namespace

Result<std::unique_ptr<Model>> CreateCharLm(const CharLmConfig& config) {
  EDGEFL_RETURN_IF_ERROR(config.Validate().WithContext("charlm config"));
  auto model = std::make_unique<CharLm>(config, Mode::kTrainable);
  EDGEFL_RETURN_IF_ERROR(model->Build());
  return std::unique_ptr<Model>(std::move(model));
}

std::vector<std::string> CharLmDenseLayers(const CharLmConfig& config) {
  std::vector<std::string> names;
  for (size_t i = 0; i < config.num_layers; ++i) {
    const std::string prefix = "block" + std::to_string(i) + ".";
    for (const char* suffix : {"attn.qkv", "attn.proj", "fc1", "fc2"}) names.push_back(prefix + suffix);
  }
  names.push_back("head");
  return names;
}

Result<std::unique_ptr<Model>> CreateCharLmLora(const CharLmConfig& config, const TensorMap& base,
                                                const LoraOptions& lora) {
  return BuildFrozen(config, base, lora, /*adapters=*/true);
}

Result<std::unique_ptr<Model>> CreateFrozenCharLm(const CharLmConfig& config,
                                                  const TensorMap& base) {
  return BuildFrozen(config, base, LoraOptions{}, /*adapters=*/false);
}

Result<std::unique_ptr<Model>> CreateCharLmForSpec(const ModelSpec& spec) {
  const CharLmConfig config;
  if (spec.base.empty()) {
    if (spec.lora_rank > 0) {
      return InvalidArgumentError("charlm LoRA adapters need a base checkpoint to adapt");
    }
    return CreateCharLm(config);
  }
  EDGEFL_ASSIGN_OR_RETURN(Safetensors base, LoadSafetensors(spec.base));
  const std::string where = "charlm base '" + spec.base + "'";
  if (spec.lora_rank > 0) {
    Result<std::unique_ptr<Model>> model = CreateCharLmLora(
        config, base.tensors,
        {.rank = spec.lora_rank, .alpha = spec.lora_alpha, .target_layers = spec.lora_targets});
    if (!model.ok()) return model.status().WithContext(where);
    return model;
  }
  EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, CreateCharLm(config));
  if (Status loaded = SetModelParameters(base.tensors, *model); !loaded.ok()) {
    return loaded.WithContext(where + " (a trainable charlm needs an fp32 checkpoint; use LoRA "
                              "adapters over a quantized one)");
  }
  return model;
}

Result<TensorMap> QuantizeCharLm(const Model& charlm, WeightFormat format,
                                 std::vector<QuantizedTensorReport>* report,
                                 const CharLmConfig& config) {
  EDGEFL_RETURN_IF_ERROR(config.Validate().WithContext("charlm config"));
  if (charlm.layout().size() != CharLmParameterCount(config)) {
    return InvalidArgumentError("model '" + charlm.name() + "' has " +
                                std::to_string(charlm.layout().size()) +
                                " parameters, not a trainable charlm of this config (" +
                                std::to_string(CharLmParameterCount(config)) + ")");
  }
  if (report != nullptr) report->clear();
  const std::span<const float> parameters = charlm.parameters();
  TensorMap tensors;
  std::set<std::string, std::less<>> done;
  for (const std::string& name : CharLmDenseLayers(config)) {
    EDGEFL_ASSIGN_OR_RETURN(ParameterSpec weight, charlm.layout().Find(name + ".weight"));
    EDGEFL_ASSIGN_OR_RETURN(ParameterSpec bias, charlm.layout().Find(name + ".bias"));
    const std::span<const float> w = parameters.subspan(weight.offset, weight.size);
    const std::unique_ptr<FrozenDense> frozen = FrozenDense::Quantize(
        name, format, static_cast<size_t>(weight.shape[0]), static_cast<size_t>(weight.shape[1]),
        w, parameters.subspan(bias.offset, bias.size));
    frozen->AppendTensors(tensors);
    done.insert(weight.name);
    done.insert(bias.name);
    if (report != nullptr) report->push_back(MeasureQuantization(weight.name, w, *frozen));
  }
  for (const ParameterSpec& spec : charlm.layout().specs()) {
    if (done.contains(spec.name)) continue;
    tensors[spec.name] = F32Tensor(spec.shape, parameters.subspan(spec.offset, spec.size));
  }
  return tensors;
}

}  // namespace edgefl::models

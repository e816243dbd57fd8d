// Finite-difference checks of every layer's Backward, of softmax cross-entropy and of whole
// models' ForwardBackward.
#include "edgefl/models/layers.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/models/model.h"
#include "edgefl/models/sequential.h"

namespace edgefl::models {
namespace {

// Central differences in float32: (L(w + h) - L(w - h)) / 2h has truncation error about
// h^2 |L'''| / 6 ~ 2e-5 for h = 1e-2 and O(1) third derivatives, and rounding error about
// u |L| / h with u = 2^-24 ~ 6e-8 the float32 unit roundoff; for the losses here (|L| of a few
// units, summed in double from float activations) that is ~1e-5. h = 1e-2 is near the optimum
// (u^(1/3) ~ 4e-3) of the sum of the two.
constexpr float kStep = 1e-2f;
// Relative error |a - n| / max(|a| + |n|, kFloor). Both error sources above stay below ~5e-5
// absolute, so gradients of size >= kFloor must agree to 1e-2 relative (cs231n's rule of thumb
// for float32 checks); smaller gradients are judged against kFloor, i.e. to 1e-4 absolute.
constexpr double kRelativeTolerance = 1e-2;
constexpr double kFloor = 1e-2;

double RelativeError(double analytic, double numeric) {
  return std::abs(analytic - numeric) / std::max(std::abs(analytic) + std::abs(numeric), kFloor);
}

std::vector<float> Uniform(size_t n, Rng& rng, float low, float high) {
  std::vector<float> v(n);
  for (float& x : v) x = low + (high - low) * static_cast<float>(rng.Uniform01());
  return v;
}

// Values in +-[0.1, 1]: far enough from ReLU's kink that a step of kStep never crosses it.
std::vector<float> AwayFromZero(size_t n, Rng& rng) {
  std::vector<float> v = Uniform(n, rng, 0.1f, 1.0f);
  for (float& x : v) x = rng.UniformInt(2) == 0 ? x : -x;
  return v;
}

// Checks layer.Backward against central differences of L = sum_i r_i * out_i (r random), for
// every parameter and every input value.
void CheckLayerGradients(Layer& layer, const Shape& input_shape, size_t batch,
                         std::vector<float> inputs, Rng& rng) {
  const Result<Shape> output_shape = layer.Build(input_shape);
  REQUIRE(output_shape.ok());
  ParameterLayout layout;
  layer.RegisterParameters(layout);
  const size_t in_size = NumElements(input_shape);
  const size_t out_size = NumElements(*output_shape);
  REQUIRE(inputs.size() == batch * in_size);
  // Random parameters, biases included (the standard initialisation zeroes them).
  std::vector<float> parameters = Uniform(layout.size(), rng, -0.5f, 0.5f);
  std::vector<float> gradients(layout.size(), 0.0f);
  const std::vector<float> r = Uniform(batch * out_size, rng, -1.0f, 1.0f);
  std::vector<float> out(batch * out_size);
  std::vector<float> scratch(batch * layer.scratch_per_example());

  auto loss = [&] {
    const PassContext pass{
        .batch_size = batch, .parameters = parameters, .gradients = {}, .parallel = false};
    layer.Forward(pass, inputs, out, scratch);
    double l = 0.0;
    for (size_t i = 0; i < out.size(); ++i) l += static_cast<double>(r[i]) * out[i];
    return l;
  };
  loss();
  std::vector<float> d_in(inputs.size());
  const PassContext pass{
      .batch_size = batch, .parameters = parameters, .gradients = gradients, .parallel = false};
  layer.Backward(pass, inputs, out, r, d_in, scratch);

  auto check = [&](std::vector<float>& values, const std::vector<float>& analytic,
                   const char* what) {
    double worst = 0.0;
    for (size_t i = 0; i < values.size(); ++i) {
      const float saved = values[i];
      values[i] = saved + kStep;
      const double plus = loss();
      values[i] = saved - kStep;
      const double minus = loss();
      values[i] = saved;
      const double numeric = (plus - minus) / (2.0 * kStep);
      worst = std::max(worst, RelativeError(analytic[i], numeric));
    }
    CAPTURE(what);
    CHECK(worst < kRelativeTolerance);
  };
  check(parameters, gradients, "parameters");
  check(inputs, d_in, "inputs");
}

TEST_CASE("Dense's gradients match finite differences") {
  Rng rng(1);
  std::unique_ptr<Layer> dense = MakeDense("fc", 5);
  CheckLayerGradients(*dense, {2, 3}, 4, Uniform(4 * 6, rng, -1.0f, 1.0f), rng);
}

TEST_CASE("ReLU's gradients match finite differences away from the kink") {
  Rng rng(2);
  std::unique_ptr<Layer> relu = MakeRelu("relu");
  CheckLayerGradients(*relu, {7}, 3, AwayFromZero(3 * 7, rng), rng);
}

TEST_CASE("Softmax cross-entropy's gradient matches finite differences of its own loss") {
  Rng rng(3);
  const size_t batch = 4, num_classes = 6;
  std::vector<float> logits = Uniform(batch * num_classes, rng, -3.0f, 3.0f);
  const std::vector<uint8_t> labels = {0, 5, 2, 2};
  std::vector<float> d_logits(logits.size());
  SoftmaxCrossEntropy(logits, labels, num_classes, d_logits);
  double worst = 0.0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float saved = logits[i];
    logits[i] = saved + kStep;
    const double plus = SoftmaxCrossEntropy(logits, labels, num_classes, {});
    logits[i] = saved - kStep;
    const double minus = SoftmaxCrossEntropy(logits, labels, num_classes, {});
    logits[i] = saved;
    worst = std::max(worst, RelativeError(d_logits[i], (plus - minus) / (2.0 * kStep)));
  }
  CHECK(worst < kRelativeTolerance);
}

TEST_CASE("Softmax cross-entropy is exact on easy cases and stable for huge logits") {
  const std::vector<float> uniform(2 * 4, 0.0f);
  std::vector<float> d(8);
  CHECK(SoftmaxCrossEntropy(uniform, std::vector<uint8_t>{1, 3}, 4, d) ==
        doctest::Approx(std::log(4.0)));
  CHECK(d[1] == doctest::Approx((0.25 - 1.0) / 2));
  CHECK(d[0] == doctest::Approx(0.25 / 2));

  // exp(1000) overflows float; log-sum-exp must not.
  const std::vector<float> huge = {1000.0f, 0.0f, -1000.0f};
  std::vector<float> d_huge(3);
  CHECK(SoftmaxCrossEntropy(huge, std::vector<uint8_t>{0}, 3, d_huge) == 0.0f);
  CHECK(SoftmaxCrossEntropy(huge, std::vector<uint8_t>{1}, 3, {}) == doctest::Approx(1000.0));
  for (float g : d_huge) CHECK(std::isfinite(g));
}

// Mean cross-entropy in double from the model's float logits: the loss the checks difference.
double ModelLoss(Model& model, const std::vector<float>& inputs,
                 const std::vector<uint8_t>& labels) {
  const size_t batch = labels.size(), classes = model.num_classes();
  std::vector<float> logits(batch * classes);
  model.Forward(inputs, batch, logits);
  double total = 0.0;
  for (size_t r = 0; r < batch; ++r) {
    const float* z = logits.data() + r * classes;
    const double m = *std::max_element(z, z + classes);
    double sum = 0.0;
    for (size_t j = 0; j < classes; ++j) sum += std::exp(z[j] - m);
    total += m + std::log(sum) - z[labels[r]];
  }
  return total / static_cast<double>(batch);
}

// The sign of every ReLU's input, layer by layer: a finite difference whose step flips one of
// them straddles a kink, where the loss is not differentiable, and says nothing.
std::vector<bool> ReluPattern(const SequentialModel& model, const std::vector<float>& inputs,
                              size_t batch) {
  std::vector<bool> pattern;
  std::vector<float> in = inputs, out, scratch;
  for (size_t i = 0; i < model.num_layers(); ++i) {
    const Layer& layer = model.layer(i);
    out.resize(batch * NumElements(model.output_shape(i)));
    scratch.resize(batch * layer.scratch_per_example());
    const PassContext pass{
        .batch_size = batch, .parameters = model.parameters(), .gradients = {}, .parallel = false};
    layer.Forward(pass, in, out, scratch);
    if (layer.kind() == "relu") {
      for (float x : in) pattern.push_back(x > 0.0f);
    }
    in.swap(out);
  }
  return pattern;
}

// Checks every parameter of `model` (or every `stride`-th) against central differences,
// skipping those whose step crosses a ReLU kink (about 1 in 15 here; at most 1 in 5).
void CheckModelGradients(SequentialModel& model, const std::vector<float>& inputs,
                         const std::vector<uint8_t>& labels, size_t stride = 1) {
  const size_t batch = labels.size();
  const float loss =
      model.ForwardBackward(Batch{.inputs = inputs, .labels = labels, .batch_size = batch});
  CHECK(loss == doctest::Approx(ModelLoss(model, inputs, labels)).epsilon(1e-5));
  const std::vector<float> analytic(model.gradients().begin(), model.gradients().end());
  const std::vector<bool> pattern = ReluPattern(model, inputs, batch);
  std::span<float> parameters = model.parameters();
  double worst = 0.0;
  size_t worst_index = 0, num_checked = 0, num_skipped = 0;
  for (size_t i = 0; i < parameters.size(); i += stride) {
    const float saved = parameters[i];
    parameters[i] = saved + kStep;
    const double plus = ModelLoss(model, inputs, labels);
    const bool plus_smooth = ReluPattern(model, inputs, batch) == pattern;
    parameters[i] = saved - kStep;
    const double minus = ModelLoss(model, inputs, labels);
    const bool minus_smooth = ReluPattern(model, inputs, batch) == pattern;
    parameters[i] = saved;
    if (!plus_smooth || !minus_smooth) {
      ++num_skipped;
      continue;
    }
    ++num_checked;
    const double error = RelativeError(analytic[i], (plus - minus) / (2.0 * kStep));
    if (error > worst) {
      worst = error;
      worst_index = i;
    }
  }
  CAPTURE(worst_index);
  CAPTURE(num_skipped);
  CHECK(worst < kRelativeTolerance);
  CHECK(num_skipped * 4 <= num_checked);
}

SequentialModel& AsSequential(Model& model) {
  auto* sequential = dynamic_cast<SequentialModel*>(&model);
  REQUIRE(sequential != nullptr);
  return *sequential;
}

TEST_CASE("logreg's ForwardBackward matches finite differences on every parameter") {
  Result<std::unique_ptr<Model>> model = CreateModel(ModelSpec{.name = "logreg"});
  REQUIRE(model.ok());
  Model& logreg = **model;
  logreg.InitializeParameters(7);
  Rng rng(4);
  const std::vector<float> inputs = Uniform(3 * 784, rng, 0.0f, 1.0f);
  CheckModelGradients(AsSequential(logreg), inputs, {3, 0, 9});
}

TEST_CASE("A small MLP's ForwardBackward matches finite differences on every parameter") {
  std::vector<std::unique_ptr<Layer>> layers;
  layers.push_back(MakeDense("fc1", 6, DenseInit::kHeUniform));
  layers.push_back(MakeRelu("relu1"));
  layers.push_back(MakeDense("fc2", 5, DenseInit::kHeUniform));
  layers.push_back(MakeRelu("relu2"));
  layers.push_back(MakeDense("fc3", 4));
  Result<std::unique_ptr<SequentialModel>> model =
      SequentialModel::Create("small", {2, 4}, 4, std::move(layers));
  REQUIRE(model.ok());
  SequentialModel& mlp = **model;
  CHECK(mlp.num_parameters() == 8 * 6 + 6 + 6 * 5 + 5 + 5 * 4 + 4);
  mlp.InitializeParameters(11);
  // Non-zero biases, so that the check covers them too.
  Rng rng(5);
  for (float& w : mlp.parameters()) w += static_cast<float>(0.2 * (rng.Uniform01() - 0.5));
  const std::vector<float> inputs = AwayFromZero(4 * 8, rng);
  CheckModelGradients(mlp, inputs, {0, 3, 1, 3});
}

TEST_CASE("The built-in mlp's ForwardBackward matches finite differences on sampled parameters") {
  Result<std::unique_ptr<Model>> model = CreateModel(ModelSpec{.name = "mlp"});
  REQUIRE(model.ok());
  (*model)->InitializeParameters(3);
  Rng rng(6);
  const std::vector<float> inputs = Uniform(2 * 784, rng, 0.0f, 1.0f);
  // A prime stride visits every tensor at scattered positions: ~1,000 of 199,210 parameters.
  CheckModelGradients(AsSequential(**model), inputs, {1, 8}, /*stride=*/197);
}

}  // namespace
}  // namespace edgefl::models

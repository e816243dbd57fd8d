// Conv2d, MaxPool2d and Flatten: forward against a direct convolution, finite-difference checks
// of every Backward, a tiny CNN end to end, and the shape and parameter count of the built-in
// "cnn" (McMahan et al. 2017).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/models/layers.h"
#include "edgefl/models/model.h"
#include "edgefl/models/sequential.h"
#include "edgefl/models/threading.h"
#include "models/test_support.h"

namespace edgefl::models {
namespace {

using namespace testing;

// A conv output is a sum of C k k products of values in [-1, 1] (27 here) accumulated in float
// by the GEMM in some order; against a double-precision direct sum that leaves ~27 * 2^-24 *
// 27 ~ 5e-5 of rounding at most.
constexpr double kConvForwardTolerance = 1e-4;

// n distinct values at least 0.05 apart (a shuffled ramp), so that a step of kStep never
// changes which value of a pooling window is the largest.
std::vector<float> Separated(size_t n, Rng& rng) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = 0.05f * static_cast<float>(i) - 0.025f * n;
  rng.Shuffle(std::span<float>(v));
  return v;
}

TEST_CASE("Conv2d's gradients match finite differences with 'same' and 'valid' padding") {
  for (ConvPadding padding : {ConvPadding::kSame, ConvPadding::kValid}) {
    CAPTURE(padding == ConvPadding::kSame);
    Rng rng(padding == ConvPadding::kSame ? 1 : 2);
    std::unique_ptr<Layer> conv = MakeConv2d("conv", 4, 3, padding);
    CheckLayerGradients(*conv, {3, 6, 6}, 2, Uniform(2 * 3 * 6 * 6, rng, -1.0f, 1.0f), rng);
  }
  SUBCASE("and with a 1x1 kernel, which skips im2col") {
    Rng rng(3);
    std::unique_ptr<Layer> conv = MakeConv2d("conv", 2, 1, ConvPadding::kValid);
    CheckLayerGradients(*conv, {3, 2, 5}, 2, Uniform(2 * 3 * 2 * 5, rng, -1.0f, 1.0f), rng);
  }
}

TEST_CASE("Conv2d's forward pass equals a direct convolution with zero padding") {
  Rng rng(4);
  const int64_t batch = 2, channels = 3, height = 6, width = 5, out_channels = 4, k = 3;
  for (ConvPadding padding : {ConvPadding::kSame, ConvPadding::kValid}) {
    std::unique_ptr<Layer> conv = MakeConv2d("conv", out_channels, k, padding);
    const BuiltLayer built = BuildLayer(*conv, {channels, height, width});
    const int64_t pad = padding == ConvPadding::kSame ? 1 : 0;
    const int64_t out_h = height + 2 * pad - k + 1, out_w = width + 2 * pad - k + 1;
    CHECK(built.output_shape == Shape{out_channels, out_h, out_w});
    CHECK(built.layout.Find("conv.weight")->shape == Shape{out_channels, channels, k, k});
    const std::vector<float> parameters = Uniform(built.layout.size(), rng, -1.0f, 1.0f);
    const std::vector<float> x = Uniform(batch * channels * height * width, rng, -1.0f, 1.0f);
    std::vector<float> y(batch * out_channels * out_h * out_w);
    conv->Forward({.batch_size = 2, .parameters = parameters, .gradients = {}, .parallel = false},
                  x, y, {});
    const float* w = parameters.data() + built.layout.Find("conv.weight")->offset;
    const float* b = parameters.data() + built.layout.Find("conv.bias")->offset;
    double worst = 0.0;
    for (int64_t n = 0; n < batch; ++n) {
      for (int64_t o = 0; o < out_channels; ++o) {
        for (int64_t i = 0; i < out_h; ++i) {
          for (int64_t j = 0; j < out_w; ++j) {
            double sum = b[o];
            for (int64_t c = 0; c < channels; ++c) {
              for (int64_t ki = 0; ki < k; ++ki) {
                for (int64_t kj = 0; kj < k; ++kj) {
                  const int64_t r = i + ki - pad, s = j + kj - pad;
                  if (r < 0 || r >= height || s < 0 || s >= width) continue;
                  sum += static_cast<double>(w[((o * channels + c) * k + ki) * k + kj]) *
                         x[((n * channels + c) * height + r) * width + s];
                }
              }
            }
            const double got = y[((n * out_channels + o) * out_h + i) * out_w + j];
            worst = std::max(worst, std::abs(got - sum));
          }
        }
      }
    }
    CHECK(worst < kConvForwardTolerance);
  }
}

TEST_CASE("Conv2d, MaxPool2d and Flatten reject input shapes they cannot take") {
  SUBCASE("a conv on a flat input") {
    const Status status = MakeConv2d("conv1", 4, 3)->Build({784}).status();
    CHECK(status.code() == StatusCode::kInvalidArgument);
    CHECK(status.message().find("'conv1'") != std::string::npos);
    CHECK(status.message().find("[784]") != std::string::npos);
  }
  SUBCASE("an even kernel with 'same' padding") {
    CHECK(MakeConv2d("conv", 4, 4)->Build({1, 8, 8}).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(MakeConv2d("conv", 4, 4, ConvPadding::kValid)->Build({1, 8, 8}).ok());
  }
  SUBCASE("an image smaller than a 'valid' kernel or a pooling window") {
    CHECK(MakeConv2d("conv", 4, 5, ConvPadding::kValid)->Build({1, 4, 8}).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(MakeMaxPool2d("pool", 2)->Build({3, 1, 8}).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(MakeMaxPool2d("pool", 2)->Build({12}).status().code() == StatusCode::kInvalidArgument);
  }
  SUBCASE("flatten takes anything non-empty") {
    CHECK(*MakeFlatten("flatten")->Build({2, 3, 4}) == Shape{24});
    CHECK(*MakeFlatten("flatten")->Build({5}) == Shape{5});
  }
}

TEST_CASE("MaxPool2d keeps the largest value of each window and routes its gradient there") {
  std::unique_ptr<Layer> pool = MakeMaxPool2d("pool", 2);
  // One 1x3x5 image: the last row and column fall outside every whole window.
  const BuiltLayer built = BuildLayer(*pool, {1, 3, 5});
  CHECK(built.output_shape == Shape{1, 1, 2});
  const std::vector<float> x = {1,  9,  2,  3,  50,  //
                                4,  5,  8,  7,  60,  //
                                70, 80, 90, 99, 100};
  std::vector<float> y(2), scratch(pool->scratch_per_example());
  const PassContext pass{.batch_size = 1, .parameters = {}, .gradients = {}, .parallel = false};
  pool->Forward(pass, x, y, scratch);
  CHECK(y == std::vector<float>{9, 8});
  std::vector<float> d_in(x.size(), 7.0f);
  pool->Backward(pass, x, y, std::vector<float>{0.5f, -2.0f}, d_in, scratch);
  std::vector<float> expected(x.size(), 0.0f);
  expected[1] = 0.5f;
  expected[7] = -2.0f;
  CHECK(d_in == expected);
}

// Layer a, then layer b, forward and backward on x with the upstream gradient dy.
struct ChainPass {
  std::vector<float> y, d_in;
};
ChainPass RunChain(const Layer& a, const Layer& b, size_t batch, const std::vector<float>& x,
                   const std::vector<float>& dy, size_t middle_size) {
  const std::vector<float> unused(batch * middle_size, 0.0f);
  const std::vector<float> middle = RunLayerPass(a, batch, {}, x, unused, false).y;
  const LayerPass second = RunLayerPass(b, batch, {}, middle, dy, false);
  return {.y = second.y, .d_in = RunLayerPass(a, batch, {}, x, second.d_in, false).d_in};
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST_CASE("A ReLU before a max-pool commutes with it bit for bit, and models run it after") {
  // Odd sides (a dropped row and column), quarter steps in [-1, 1] for ties among positive
  // values and windows of zeros or negatives only.
  const Shape shape{3, 7, 9};
  constexpr size_t kBatch = 4;
  Rng rng(29);
  std::vector<float> x = Uniform(kBatch * NumElements(shape), rng, -1.0f, 1.0f);
  for (float& v : x) v = std::round(v * 4.0f) / 4.0f;
  std::unique_ptr<Layer> relu = MakeRelu("relu"), pool = MakeMaxPool2d("pool", 2);
  const Shape pooled = BuildLayer(*pool, shape).output_shape;
  BuildLayer(*relu, shape);
  const std::vector<float> dy = Uniform(kBatch * NumElements(pooled), rng, -1.0f, 1.0f);
  const ChainPass relu_first = RunChain(*relu, *pool, kBatch, x, dy, NumElements(shape));
  std::unique_ptr<Layer> pool_first_pool = MakeMaxPool2d("pool", 2), late_relu = MakeRelu("r");
  BuildLayer(*pool_first_pool, shape);
  BuildLayer(*late_relu, pooled);
  const ChainPass pool_first =
      RunChain(*pool_first_pool, *late_relu, kBatch, x, dy, NumElements(pooled));
  CHECK(SameBits(relu_first.y, pool_first.y));
  CHECK(SameBits(relu_first.d_in, pool_first.d_in));

  std::vector<std::unique_ptr<Layer>> layers;
  layers.push_back(MakeRelu("relu1"));
  layers.push_back(MakeMaxPool2d("pool1", 2));
  layers.push_back(MakeFlatten("flatten"));
  layers.push_back(MakeDense("fc", 10));
  Result<std::unique_ptr<SequentialModel>> model =
      SequentialModel::Create("m", shape, 10, std::move(layers));
  REQUIRE(model.ok());
  CHECK((*model)->layer(0).name() == "pool1");
  CHECK((*model)->layer(1).name() == "relu1");
  CHECK((*model)->output_shape(1) == pooled);
}

TEST_CASE("MaxPool2d's and Flatten's gradients match finite differences") {
  Rng rng(5);
  std::unique_ptr<Layer> pool = MakeMaxPool2d("pool", 2);
  CheckLayerGradients(*pool, {2, 5, 4}, 3, Separated(3 * 2 * 5 * 4, rng), rng);
  std::unique_ptr<Layer> flatten = MakeFlatten("flatten");
  CheckLayerGradients(*flatten, {2, 3, 2}, 2, Uniform(2 * 12, rng, -1.0f, 1.0f), rng);
}

TEST_CASE("Conv2d gives the same outputs and gradients split over threads as on one") {
  const int saved_threads = NumThreads();
  SetNumThreads(2);
  Rng rng(6);
  std::unique_ptr<Layer> conv = MakeConv2d("conv", 5, 3);
  const BuiltLayer built = BuildLayer(*conv, {2, 7, 7});
  const size_t batch = 5, in_size = 2 * 7 * 7, out_size = 5 * 7 * 7;
  const std::vector<float> parameters = Uniform(built.layout.size(), rng, -1.0f, 1.0f);
  const std::vector<float> x = Uniform(batch * in_size, rng, -1.0f, 1.0f);
  const std::vector<float> d_out = Uniform(batch * out_size, rng, -1.0f, 1.0f);
  const LayerPass serial = RunLayerPass(*conv, batch, parameters, x, d_out, /*parallel=*/false);
  const LayerPass threaded = RunLayerPass(*conv, batch, parameters, x, d_out, /*parallel=*/true);
  // Outputs and input gradients are per-example GEMMs of the same shapes, whatever thread runs
  // them: identical bits. The weight gradient is split over output channels, so its GEMMs
  // have fewer rows and may take another kernel path: equal up to the rounding of a sum of
  // batch * 49 = 245 products of values below 1 (typically ~1e-5 for values of a few units).
  CHECK(serial.y == threaded.y);
  CHECK(serial.d_in == threaded.d_in);
  for (size_t i = 0; i < serial.gradients.size(); ++i) {
    CHECK(serial.gradients[i] == doctest::Approx(threaded.gradients[i]).epsilon(1e-4).scale(1));
  }
  SetNumThreads(saved_threads);
}

TEST_CASE("A tiny CNN's ForwardBackward matches finite differences on every parameter") {
  std::vector<std::unique_ptr<Layer>> layers;
  layers.push_back(MakeConv2d("conv1", 3, 3, ConvPadding::kSame));
  layers.push_back(MakeRelu("relu1"));
  layers.push_back(MakeMaxPool2d("pool1", 2));
  layers.push_back(MakeConv2d("conv2", 4, 3, ConvPadding::kValid));
  layers.push_back(MakeRelu("relu2"));
  layers.push_back(MakeFlatten("flatten1"));
  layers.push_back(MakeDense("fc1", 6, DenseInit::kHeUniform));
  layers.push_back(MakeRelu("relu3"));
  layers.push_back(MakeDense("fc2", 3));
  // 2x8x8 -> conv1 3x8x8 -> pool 3x4x4 -> conv2 4x2x2 -> 16 -> 6 -> 3.
  Result<std::unique_ptr<SequentialModel>> created =
      SequentialModel::Create("tiny_cnn", {2, 8, 8}, 3, std::move(layers));
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  SequentialModel& model = **created;
  CHECK(model.num_parameters() == (3 * 2 * 9 + 3) + (4 * 3 * 9 + 4) + (16 * 6 + 6) + (6 * 3 + 3));
  model.InitializeParameters(11);
  Rng rng(7);
  for (float& w : model.parameters()) w += static_cast<float>(0.2 * (rng.Uniform01() - 0.5));
  const std::vector<float> inputs = Uniform(3 * 2 * 8 * 8, rng, -1.0f, 1.0f);
  // Most steps of kStep on conv1's weights cross a ReLU or max-pool kink; CheckModelGradients
  // differences the piece the point lies on.
  CheckModelGradients(model, inputs, {0, 2, 1});
}

TEST_CASE("The built-in cnn is McMahan et al.'s CNN with 1,663,370 parameters") {
  const std::unique_ptr<Model> created = CreateBuiltin("cnn");
  Model& cnn = *created;
  CHECK(cnn.name() == "cnn");
  CHECK(cnn.num_parameters() == 1663370);
  CHECK(cnn.input_size() == 784);
  CHECK(ParameterNames(cnn.layout()) ==
        std::vector<std::string>{"conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias",
                                 "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"});
  CHECK(cnn.layout().Find("conv1.weight")->shape == Shape{32, 1, 5, 5});
  CHECK(cnn.layout().Find("conv2.weight")->shape == Shape{64, 32, 5, 5});
  CHECK(cnn.layout().Find("fc1.weight")->shape == Shape{512, 3136});
  CHECK(cnn.layout().Find("fc2.weight")->shape == Shape{10, 512});
  auto& sequential = dynamic_cast<SequentialModel&>(cnn);
  CHECK(sequential.input_shape() == Shape{1, 28, 28});
  CHECK(sequential.output_shape(2) == Shape{32, 14, 14});
  CHECK(sequential.output_shape(5) == Shape{64, 7, 7});

  // One training step on two examples runs and starts near chance (log 10 = 2.30).
  cnn.InitializeParameters(1);
  Rng rng(8);
  const std::vector<float> inputs = Uniform(2 * 784, rng, 0.0f, 1.0f);
  const std::vector<uint8_t> labels = {3, 7};
  const float loss =
      cnn.ForwardBackward(Batch{.inputs = inputs, .labels = labels, .batch_size = 2});
  CHECK(std::isfinite(loss));
  CHECK(loss == doctest::Approx(std::log(10.0)).epsilon(0.5));
}

}  // namespace
}  // namespace edgefl::models

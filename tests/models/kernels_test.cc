#include "edgefl/models/kernels.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <tuple>
#include <vector>

#include "edgefl/common/random.h"

namespace edgefl::models::kernels {
namespace {

// Unit roundoff of fp32 (round to nearest): u = 2^-24.
constexpr double kUnitRoundoff = 1.0 / (1 << 24);
// Higham, "Accuracy and Stability of Numerical Algorithms" (2002), eq. 3.4-3.5: a dot product
// of k terms summed in any order has |error| <= gamma_k * sum |a_p b_p|, gamma_k = k u / (1 -
// k u). Two levels each carry such an error (plus one rounding for alpha, one for beta * C and
// the final add), so they differ by at most 2 * gamma_(k + 3) * (sum |alpha a b| + |beta c|).
// Factor 1.01 covers 1 / (1 - k u) for k <= 2^17 and the float rounding of the bound itself.
double GemmTolerance(size_t k, double abs_sum) {
  return 2.0 * 1.01 * static_cast<double>(k + 3) * kUnitRoundoff * abs_sum + 1e-30;
}

// Every level this CPU can run, lowest first; the test exercises each one explicitly.
std::vector<Isa> SupportedIsas() {
  std::vector<Isa> isas;
  for (int i = 0; i < kNumIsas; ++i) {
    if (IsaSupported(static_cast<Isa>(i))) isas.push_back(static_cast<Isa>(i));
  }
  return isas;
}

std::string IsaList() {
  std::string names;
  for (Isa isa : SupportedIsas()) names += std::string(names.empty() ? "" : ", ") += IsaName(isa);
  return names;
}

// Buffers start one element past an aligned allocation, so no fast path can rely on alignment.
template <typename T>
struct Unaligned {
  explicit Unaligned(size_t n) : storage(n + 1) {}
  T* data() { return storage.data() + 1; }
  std::vector<T> storage;
};

void FillUniform(Rng& rng, float* x, size_t n, float lo, float hi) {
  for (size_t i = 0; i < n; ++i) x[i] = lo + (hi - lo) * static_cast<float>(rng.Uniform01());
}

constexpr size_t kSmallSizes[] = {0, 1, 7, 8, 15, 16, 17};
constexpr size_t kLargeSizes[] = {255, 1027};
constexpr Transpose kTransposes[] = {Transpose::kNo, Transpose::kYes};

struct F32Case {
  Transpose ta, tb;
  size_t m, n, k;
  float alpha, beta;
};

// Runs the reference and then every level's fp32 GEMM on the same random operands (leading
// dimensions padded by 3, unaligned starts); returns each level's largest error divided by its
// tolerance (1e30 for a NaN, 2e30 when the padding between rows of C was written).
std::vector<double> F32GemmWorstRatios(const F32Case& t, Rng& rng) {
  const size_t a_rows = t.ta == Transpose::kNo ? t.m : t.k;
  const size_t a_cols = t.ta == Transpose::kNo ? t.k : t.m;
  const size_t b_rows = t.tb == Transpose::kNo ? t.k : t.n;
  const size_t b_cols = t.tb == Transpose::kNo ? t.n : t.k;
  const size_t lda = a_cols + 3, ldb = b_cols + 3, ldc = t.n + 3;
  Unaligned<float> a(a_rows * lda), b(b_rows * ldb), c_init(t.m * ldc), c_ref(t.m * ldc),
      c_abs(t.m * ldc), abs_a(a_rows * lda), abs_b(b_rows * ldb), c_fast(t.m * ldc);
  FillUniform(rng, a.data(), a_rows * lda, -1.0f, 1.0f);
  FillUniform(rng, b.data(), b_rows * ldb, -1.0f, 1.0f);
  FillUniform(rng, c_init.data(), t.m * ldc, -1.0f, 1.0f);
  if (t.beta == 0.0f) {
    // C must not be read when beta == 0: NaN would leak into the result.
    for (size_t i = 0; i < t.m * ldc; ++i) {
      c_init.data()[i] = std::numeric_limits<float>::quiet_NaN();
    }
  }
  for (size_t i = 0; i < a_rows * lda; ++i) abs_a.data()[i] = std::fabs(a.data()[i]);
  for (size_t i = 0; i < b_rows * ldb; ++i) abs_b.data()[i] = std::fabs(b.data()[i]);
  for (size_t i = 0; i < t.m * ldc; ++i) {
    c_ref.data()[i] = c_init.data()[i];
    c_abs.data()[i] = t.beta == 0.0f ? 0.0f : std::fabs(c_init.data()[i]);
  }
  const GemmF32Fn reference = KernelsFor(Isa::kReference).gemm_f32;
  reference(t.ta, t.tb, t.m, t.n, t.k, t.alpha, a.data(), lda, b.data(), ldb, t.beta, c_ref.data(),
            ldc, nullptr);
  reference(t.ta, t.tb, t.m, t.n, t.k, std::fabs(t.alpha), abs_a.data(), lda, abs_b.data(), ldb,
            std::fabs(t.beta), c_abs.data(), ldc, nullptr);
  std::vector<float> workspace(kGemmF32WorkspaceFloats + 1);
  std::vector<double> worst_per_isa;
  for (Isa isa : SupportedIsas()) {
    for (size_t i = 0; i < t.m * ldc; ++i) c_fast.data()[i] = c_init.data()[i];
    KernelsFor(isa).gemm_f32(t.ta, t.tb, t.m, t.n, t.k, t.alpha, a.data(), lda, b.data(), ldb,
                             t.beta, c_fast.data(), ldc, workspace.data() + 1);
    double worst = 0.0;
    for (size_t i = 0; i < t.m; ++i) {
      for (size_t j = 0; j < t.n; ++j) {
        const size_t at = i * ldc + j;
        const double diff = std::fabs(double{c_fast.data()[at]} - double{c_ref.data()[at]});
        const double ratio = std::isnan(diff) ? 1e30 : diff / GemmTolerance(t.k, c_abs.data()[at]);
        if (ratio > worst) worst = ratio;
      }
      for (size_t j = t.n; j < ldc && i * ldc + j < t.m * ldc; ++j) {
        const float before = c_init.data()[i * ldc + j];
        const float after = c_fast.data()[i * ldc + j];
        if (!(before == after || (std::isnan(before) && std::isnan(after)))) worst = 2e30;
      }
    }
    worst_per_isa.push_back(worst);
  }
  return worst_per_isa;
}

void CheckF32Cases(const std::vector<F32Case>& cases) {
  Rng rng(7);
  const std::vector<Isa> isas = SupportedIsas();
  for (const F32Case& t : cases) {
    const std::vector<double> worst = F32GemmWorstRatios(t, rng);
    for (size_t level = 0; level < isas.size(); ++level) {
      if (worst[level] <= 1.0) continue;  // one doctest assertion per failure, not per case
      CAPTURE(IsaName(isas[level]));
      CAPTURE(t.m);
      CAPTURE(t.n);
      CAPTURE(t.k);
      CAPTURE(static_cast<int>(t.ta));
      CAPTURE(static_cast<int>(t.tb));
      CAPTURE(t.beta);
      CHECK(worst[level] <= 1.0);
    }
  }
}

TEST_CASE("The kernel levels this CPU supports are listed and the active one is among them") {
  MESSAGE("kernel levels exercised: " << IsaList() << "; active: " << IsaName(ActiveIsa()));
  CHECK(IsaSupported(Isa::kReference));
  CHECK(IsaSupported(ActiveIsa()));
  CHECK(Kernels().isa == ActiveIsa());
  for (Isa isa : SupportedIsas()) {
    CHECK(KernelsFor(isa).isa == isa);
    CHECK(static_cast<bool>(KernelsFor(isa).gemm_f32));
    CHECK(static_cast<bool>(KernelsFor(isa).gemm_u8s8s32));
    CHECK(static_cast<bool>(KernelsFor(isa).gemm_f32_int4));
    CHECK(static_cast<bool>(KernelsFor(isa).gemm_f32_eigen));
  }
  if (const char* cap = std::getenv("EDGEFL_KERNELS"); cap != nullptr && *cap != '\0') {
    for (int i = 0; i < kNumIsas; ++i) {
      if (IsaName(static_cast<Isa>(i)) == cap) CHECK(static_cast<int>(ActiveIsa()) <= i);
    }
  }
}

TEST_CASE("Every level's fp32 GEMM matches the reference on all small shapes and transposes") {
  std::vector<F32Case> cases;
  for (Transpose ta : kTransposes) {
    for (Transpose tb : kTransposes) {
      for (size_t m : kSmallSizes) {
        for (size_t n : kSmallSizes) {
          for (size_t k : kSmallSizes) {
            const float beta = (m + n + k) % 2 == 0 ? 0.0f : 0.5f;
            cases.push_back({ta, tb, m, n, k, 1.0f, beta});
          }
        }
      }
    }
  }
  CheckF32Cases(cases);
}

TEST_CASE("Every level's fp32 GEMM matches the reference when one dimension is large") {
  std::vector<F32Case> cases;
  constexpr size_t kOthers[] = {1, 7, 17};
  for (Transpose ta : kTransposes) {
    for (Transpose tb : kTransposes) {
      for (size_t large : kLargeSizes) {
        for (size_t x : kOthers) {
          for (size_t y : kOthers) {
            cases.push_back({ta, tb, large, x, y, 1.0f, 0.0f});
            cases.push_back({ta, tb, x, large, y, -0.75f, 1.0f});
            cases.push_back({ta, tb, x, y, large, 1.5f, 0.5f});
          }
        }
      }
    }
  }
  CheckF32Cases(cases);
}

TEST_CASE("Every level's fp32 GEMM matches the reference on Dense shapes and across blocks") {
  std::vector<F32Case> cases;
  for (Transpose ta : kTransposes) {
    for (Transpose tb : kTransposes) {
      // MLP batches of 10 and 32 (small-m paths), then sizes crossing the packed blocks
      // (MC = 120/144 rows, KC = 256, NC = 1024 columns).
      cases.push_back({ta, tb, 10, 200, 784, 1.0f, 0.0f});
      cases.push_back({ta, tb, 32, 200, 784, 1.0f, 1.0f});
      cases.push_back({ta, tb, 65, 33, 300, 1.0f, 0.5f});
      cases.push_back({ta, tb, 255, 255, 255, 1.0f, 0.0f});
    }
  }
  cases.push_back({Transpose::kNo, Transpose::kYes, 150, 1030, 513, 1.0f, 0.25f});
  cases.push_back({Transpose::kYes, Transpose::kNo, 290, 17, 1027, 2.0f, 0.0f});
  CheckF32Cases(cases);
}

// ----- int8

// W[n, k] in [-128, 127] and A[m, k] in [0, 255], the full ranges, so that every product and
// pair sum that could saturate an instruction appears.
struct Int8Operands {
  size_t m, n, k, lda, ldc;
  Unaligned<uint8_t> a;
  std::vector<int8_t> w;
  Unaligned<Int8Block> packed;
  std::vector<int32_t> expected;  // plain triple loop on the unpacked weights

  Int8Operands(size_t m_, size_t n_, size_t k_, Rng& rng)
      : m(m_),
        n(n_),
        k(k_),
        lda(k_ + 5),
        ldc(n_ + 2),
        a(m_ * lda),
        w(n_ * k_),
        packed(Int8PackedBlocks(n_, k_)),
        expected(m_ * ldc, 0) {
    for (size_t i = 0; i < m * lda; ++i) a.data()[i] = static_cast<uint8_t>(rng.UniformInt(256));
    for (size_t i = 0; i < n * k; ++i) w[i] = static_cast<int8_t>(rng.UniformInt(256) - 128);
    PackInt8Weights(w.data(), k, n, k, packed.data(), nullptr);
    ComputeExpected();
  }

  void ComputeExpected() {
    for (size_t i = 0; i < m; ++i) {
      for (size_t j = 0; j < n; ++j) {
        int64_t sum = 0;
        for (size_t p = 0; p < k; ++p) sum += int64_t{a.data()[i * lda + p]} * w[j * k + p];
        expected[i * ldc + j] = static_cast<int32_t>(sum);
      }
    }
  }

  // Runs `isa` and returns how many outputs (or padding cells) differ from `expected`.
  size_t Mismatches(Isa isa) {
    Unaligned<int32_t> c(m * ldc);
    for (size_t i = 0; i < m * ldc; ++i) c.data()[i] = -7;
    KernelsFor(isa).gemm_u8s8s32(m, n, k, a.data(), lda, packed.data(), c.data(), ldc);
    size_t mismatches = 0;
    for (size_t i = 0; i < m; ++i) {
      for (size_t j = 0; j < ldc && i * ldc + j < m * ldc; ++j) {
        const int32_t want = j < n ? expected[i * ldc + j] : -7;
        if (c.data()[i * ldc + j] != want) ++mismatches;
      }
    }
    return mismatches;
  }
};

TEST_CASE("Every level's int8 GEMM equals the exact integer product bit for bit") {
  Rng rng(11);
  constexpr size_t kChannels[] = {0, 1, 7, 8, 15, 16, 17, 33, 255};
  constexpr size_t kDepths[] = {0, 1, 7, 8, 15, 16, 17, 255, 1027};
  for (size_t m : kSmallSizes) {
    for (size_t n : kChannels) {
      for (size_t k : kDepths) {
        Int8Operands ops(m, n, k, rng);
        for (Isa isa : SupportedIsas()) {
          CAPTURE(IsaName(isa));
          CAPTURE(m);
          CAPTURE(n);
          CAPTURE(k);
          const size_t mismatches = ops.Mismatches(isa);
          if (mismatches != 0) CHECK(mismatches == 0);
        }
      }
    }
  }
  Int8Operands tall(255, 40, 300, rng);
  for (Isa isa : SupportedIsas()) CHECK(tall.Mismatches(isa) == 0);
}

TEST_CASE("The int8 GEMM does not saturate at the extreme values 255 x -128 and 255 x 127") {
  Rng rng(12);
  for (int8_t extreme : {int8_t{-128}, int8_t{127}}) {
    Int8Operands ops(9, 17, kMaxInt8GemmDepth, rng);
    for (size_t i = 0; i < ops.m * ops.lda; ++i) ops.a.data()[i] = 255;
    for (int8_t& v : ops.w) v = extreme;
    PackInt8Weights(ops.w.data(), ops.k, ops.n, ops.k, ops.packed.data(), nullptr);
    ops.ComputeExpected();
    CHECK(ops.expected[0] == 255 * int32_t{extreme} * static_cast<int32_t>(kMaxInt8GemmDepth));
    for (Isa isa : SupportedIsas()) {
      CAPTURE(IsaName(isa));
      CHECK(ops.Mismatches(isa) == 0);
    }
  }
}

TEST_CASE("Packing int8 weights round-trips and sums each row") {
  Rng rng(13);
  const size_t n = 37, k = 1027;
  std::vector<int8_t> w(n * k), back(n * k, 0);
  for (int8_t& v : w) v = static_cast<int8_t>(rng.UniformInt(256) - 128);
  std::vector<Int8Block> packed(Int8PackedBlocks(n, k));
  std::vector<int32_t> sums(n);
  PackInt8Weights(w.data(), k, n, k, packed.data(), sums.data());
  UnpackInt8Weights(packed.data(), n, k, back.data(), k);
  CHECK(back == w);
  int32_t sum0 = 0;
  for (size_t p = 0; p < k; ++p) sum0 += w[p];
  CHECK(sums[0] == sum0);
  // Padding channels and depths are zero, so they add nothing to any product.
  const Int8Block& last = packed.back();
  CHECK(last.values[kInt8BlockChannels - 1][kInt8BlockDepth - 1] == 0);
}

TEST_CASE("Requantizing int8 sums subtracts the zero point and applies both scales") {
  const int32_t acc[2] = {100, -50};
  const int32_t row_sums[2] = {3, -4};
  const float w_scales[2] = {0.5f, 0.25f};
  const float bias[2] = {1.0f, -1.0f};
  float y[2] = {0, 0};
  RequantizeS32ToF32(1, 2, acc, 2, 2.0f, 10, w_scales, row_sums, bias, y, 2);
  CHECK(y[0] == doctest::Approx(2.0f * 0.5f * (100 - 30) + 1.0f));
  CHECK(y[1] == doctest::Approx(2.0f * 0.25f * (-50 + 40) - 1.0f));
}

// ----- int4

void RandomInt4Weights(Rng& rng, size_t n, size_t k, Int4Block* w) {
  const size_t blocks = n * Int4BlocksPerRow(k);
  for (size_t b = 0; b < blocks; ++b) {
    w[b].scale = 0.01f + 0.1f * static_cast<float>(rng.Uniform01());
    for (uint8_t& byte : w[b].packed) byte = static_cast<uint8_t>(rng.UniformInt(256));
    const size_t col0 = (b % Int4BlocksPerRow(k)) * kInt4GroupSize;
    for (size_t j = 0; j < kInt4GroupSize; ++j) {
      if (col0 + j < k) continue;  // the contract: values past k are zero (nibble 8)
      uint8_t& byte = w[b].packed[j % 16];
      byte = j < 16 ? static_cast<uint8_t>((byte & 0xF0) | 8)
                    : static_cast<uint8_t>((byte & 0x0F) | 0x80);
    }
  }
}

// Each level's largest int4 GEMM error against the reference, divided by its tolerance.
std::vector<double> Int4WorstRatios(size_t m, size_t n, size_t k, float beta, Rng& rng) {
  const size_t ldx = k + 1, ldy = n + 3, bpr = Int4BlocksPerRow(k);
  Unaligned<float> x(m * ldx), abs_x(m * ldx), y_init(m * ldy), y_fast(m * ldy), y_ref(m * ldy),
      y_abs(m * ldy);
  Unaligned<Int4Block> w(n * bpr), w_abs(n * bpr);
  FillUniform(rng, x.data(), m * ldx, -1.0f, 1.0f);
  FillUniform(rng, y_init.data(), m * ldy, -1.0f, 1.0f);
  if (beta == 0.0f) {
    for (size_t i = 0; i < m * ldy; ++i) y_init.data()[i] = std::numeric_limits<float>::quiet_NaN();
  }
  RandomInt4Weights(rng, n, k, w.data());
  for (size_t i = 0; i < m * ldy; ++i) {
    y_ref.data()[i] = y_init.data()[i];
    y_abs.data()[i] = beta == 0.0f ? 0.0f : std::fabs(y_init.data()[i]);
  }
  for (size_t i = 0; i < m * ldx; ++i) abs_x.data()[i] = std::fabs(x.data()[i]);
  // |w| as int4 blocks: nibble 8 + |q| encodes |q| when |q| <= 7; -8 (nibble 0) becomes 7,
  // which still bounds the products after scaling by 8/7.
  for (size_t b = 0; b < n * bpr; ++b) {
    w_abs.data()[b].scale = w.data()[b].scale * (8.0f / 7.0f);
    for (size_t j = 0; j < 16; ++j) {
      const uint8_t byte = w.data()[b].packed[j];
      const auto abs_nibble = [](int nibble) { return 8 + std::min(std::abs(nibble - 8), 7); };
      w_abs.data()[b].packed[j] =
          static_cast<uint8_t>(abs_nibble(byte & 0x0F) | (abs_nibble(byte >> 4) << 4));
    }
  }
  const GemmF32Int4Fn reference = KernelsFor(Isa::kReference).gemm_f32_int4;
  reference(m, n, k, x.data(), ldx, w.data(), beta, y_ref.data(), ldy);
  reference(m, n, k, abs_x.data(), ldx, w_abs.data(), std::fabs(beta), y_abs.data(), ldy);
  std::vector<double> worst_per_isa;
  for (Isa isa : SupportedIsas()) {
    for (size_t i = 0; i < m * ldy; ++i) y_fast.data()[i] = y_init.data()[i];
    KernelsFor(isa).gemm_f32_int4(m, n, k, x.data(), ldx, w.data(), beta, y_fast.data(), ldy);
    double worst = 0.0;
    for (size_t i = 0; i < m; ++i) {
      for (size_t j = 0; j < n; ++j) {
        const size_t at = i * ldy + j;
        const double diff = std::fabs(double{y_fast.data()[at]} - double{y_ref.data()[at]});
        const double ratio = std::isnan(diff) ? 1e30 : diff / GemmTolerance(k, y_abs.data()[at]);
        if (ratio > worst) worst = ratio;
      }
    }
    worst_per_isa.push_back(worst);
  }
  return worst_per_isa;
}

TEST_CASE("Every level's int4 GEMM matches the reference, tails of groups included") {
  Rng rng(17);
  constexpr size_t kRows[] = {0, 1, 7, 8, 15, 16, 17};
  constexpr size_t kChannels[] = {0, 1, 7, 8, 17, 255};
  constexpr size_t kDepths[] = {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 255, 1027};
  const std::vector<Isa> isas = SupportedIsas();
  const auto check = [&](size_t m, size_t n, size_t k, float beta) {
    const std::vector<double> worst = Int4WorstRatios(m, n, k, beta, rng);
    for (size_t level = 0; level < isas.size(); ++level) {
      if (worst[level] <= 1.0) continue;
      CAPTURE(IsaName(isas[level]));
      CAPTURE(m);
      CAPTURE(n);
      CAPTURE(k);
      CHECK(worst[level] <= 1.0);
    }
  };
  for (size_t m : kRows) {
    for (size_t n : kChannels) {
      for (size_t k : kDepths) check(m, n, k, (m + n + k) % 2 == 0 ? 0.0f : 1.0f);
    }
  }
  check(32, 200, 784, 0.0f);
  check(150, 40, 1027, 1.0f);  // AVX-512: 144 rows through dequantized panels, 6 through tiles
  check(130, 33, 300, 0.0f);
}

// ----- 2x2 max-pooling

// Inputs with many exact ties: values from {-1, -0.5, 0, 0.5, 1}, as ReLU outputs tie at 0.
void FillTies(Rng& rng, float* x, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(static_cast<int>(rng.Uniform01() * 5.0) - 2) * 0.5f;
  }
}

size_t BitMismatches(const float* a, const float* b, size_t n) {
  size_t mismatches = 0;
  for (size_t i = 0; i < n; ++i) mismatches += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return mismatches;
}

TEST_CASE("Every level's 2x2 max-pool gives the reference's bits, argmax and gradient included") {
  Rng rng(23);
  constexpr size_t kChannels[] = {1, 3};
  constexpr size_t kSides[] = {2, 3, 5, 14, 15, 28, 33, 35, 64};
  for (size_t channels : kChannels) {
    for (size_t height : kSides) {
      for (size_t width : kSides) {
        for (const bool ties : {false, true}) {
          const size_t in = channels * height * width;
          const size_t out = channels * (height / 2) * (width / 2);
          std::vector<float> x(in), dy(out);
          if (ties) {
            FillTies(rng, x.data(), in);
          } else {
            FillUniform(rng, x.data(), in, -1.0f, 1.0f);
          }
          FillUniform(rng, dy.data(), out, -1.0f, 1.0f);
          // A NaN first in a window is the maximum; one later is passed over.
          x[0] = std::numeric_limits<float>::quiet_NaN();
          x[in - 1] = std::numeric_limits<float>::quiet_NaN();
          dy[0] = -0.0f;
          std::vector<float> y_ref(out), argmax_ref(out), dx_ref(in, 7.0f);
          const KernelTable& reference = KernelsFor(Isa::kReference);
          reference.max_pool2x2_f32(channels, height, width, x.data(), y_ref.data(),
                                    argmax_ref.data());
          reference.max_pool2x2_backward_f32(channels, height, width, dy.data(),
                                             argmax_ref.data(), dx_ref.data());
          for (Isa isa : SupportedIsas()) {
            CAPTURE(IsaName(isa));
            CAPTURE(channels);
            CAPTURE(height);
            CAPTURE(width);
            CAPTURE(ties);
            // One float of slack on each side of every buffer: a store past the end shows.
            Unaligned<float> y(out + 1), argmax(out + 1), dx(in + 1);
            for (auto* buffer : {&y.storage, &argmax.storage, &dx.storage}) {
              std::fill(buffer->begin(), buffer->end(), 7.0f);
            }
            const KernelTable& table = KernelsFor(isa);
            table.max_pool2x2_f32(channels, height, width, x.data(), y.data(), argmax.data());
            table.max_pool2x2_backward_f32(channels, height, width, dy.data(), argmax.data(),
                                           dx.data());
            CHECK(BitMismatches(y.data(), y_ref.data(), out) == 0);
            CHECK(BitMismatches(argmax.data(), argmax_ref.data(), out) == 0);
            CHECK(BitMismatches(dx.data(), dx_ref.data(), in) == 0);
            CHECK(y.data()[out] == 7.0f);
            CHECK(argmax.data()[out] == 7.0f);
            CHECK(dx.data()[in] == 7.0f);
            CHECK(y.storage[0] == 7.0f);
            CHECK(dx.storage[0] == 7.0f);
          }
        }
      }
    }
  }
}

TEST_CASE("The reference 2x2 max-pool keeps the first maximum of a window and routes dy to it") {
  // One channel, 3 x 5: the last row and column are dropped.
  const std::vector<float> x = {1, 2, 5, 5, 9,  //
                                2, 0, 3, 5, 9,  //
                                9, 9, 9, 9, 9};
  std::vector<float> y(2), argmax(2), dx(15, 7.0f);
  const KernelTable& reference = KernelsFor(Isa::kReference);
  reference.max_pool2x2_f32(1, 3, 5, x.data(), y.data(), argmax.data());
  CHECK(y == std::vector<float>{2, 5});
  CHECK(argmax == std::vector<float>{1, 2});  // the first 5 in row-major order
  const std::vector<float> dy = {10, 20};
  reference.max_pool2x2_backward_f32(1, 3, 5, dy.data(), argmax.data(), dx.data());
  CHECK(dx == std::vector<float>{0, 10, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0});
}

// ----- threaded drivers

TEST_CASE("The threaded drivers agree with the reference whether they split rows or columns") {
  Rng rng(19);
  // {600, 300, 200} splits rows; {3, 2000, 1000} splits columns (when threads are available).
  for (const auto& [m, n, k] : {std::tuple<size_t, size_t, size_t>{600, 300, 200},
                                std::tuple<size_t, size_t, size_t>{3, 2000, 1000}}) {
    std::vector<float> a(m * k), b(n * k), c(m * n), c_ref(m * n), c_abs(m * n, 0.0f);
    FillUniform(rng, a.data(), a.size(), -1.0f, 1.0f);
    FillUniform(rng, b.data(), b.size(), -1.0f, 1.0f);
    ParallelGemmF32(Transpose::kNo, Transpose::kYes, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f,
                    c.data(), n);
    KernelsFor(Isa::kReference)
        .gemm_f32(Transpose::kNo, Transpose::kYes, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f,
                  c_ref.data(), n, nullptr);
    for (float& v : a) v = std::fabs(v);
    for (float& v : b) v = std::fabs(v);
    KernelsFor(Isa::kReference)
        .gemm_f32(Transpose::kNo, Transpose::kYes, m, n, k, 1.0f, a.data(), k, b.data(), k, 0.0f,
                  c_abs.data(), n, nullptr);
    double worst = 0.0;
    for (size_t i = 0; i < m * n; ++i) {
      worst = std::max(worst, std::fabs(double{c[i]} - c_ref[i]) / GemmTolerance(k, c_abs[i]));
    }
    CHECK(worst <= 1.0);

    Int8Operands ops(m, n, k, rng);
    Unaligned<int32_t> c8(m * ops.ldc);
    for (size_t i = 0; i < m * ops.ldc; ++i) c8.data()[i] = -7;
    ParallelGemmU8S8S32(m, n, k, ops.a.data(), ops.lda, ops.packed.data(), c8.data(), ops.ldc);
    size_t mismatches = 0;
    for (size_t i = 0; i < m; ++i) {
      for (size_t j = 0; j < n; ++j)
        mismatches += c8.data()[i * ops.ldc + j] != ops.expected[i * ops.ldc + j];
    }
    CHECK(mismatches == 0);

    std::vector<Int4Block> w4(n * Int4BlocksPerRow(k));
    RandomInt4Weights(rng, n, k, w4.data());
    std::vector<float> x(m * k), y(m * n), y_ref(m * n);
    FillUniform(rng, x.data(), x.size(), -1.0f, 1.0f);
    ParallelGemmF32Int4(m, n, k, x.data(), k, w4.data(), 0.0f, y.data(), n);
    KernelsFor(Isa::kReference)
        .gemm_f32_int4(m, n, k, x.data(), k, w4.data(), 0.0f, y_ref.data(), n);
    double worst4 = 0.0;
    for (size_t i = 0; i < m * n; ++i)
      worst4 = std::max(worst4, double{std::fabs(y[i] - y_ref[i])});
    // |x| <= 1 and |w| <= 8 * 0.11, so sum |x w| <= 0.88 k.
    CHECK(worst4 <= GemmTolerance(k, 0.88 * static_cast<double>(k)));
  }
}

}  // namespace
}  // namespace edgefl::models::kernels

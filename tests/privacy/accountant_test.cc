#include "edgefl/privacy/accountant.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <numbers>
#include <vector>

namespace edgefl::privacy {
namespace {

// Reference values at 50 (Poisson) and 300 (without replacement) significant digits from
// mpmath 1.3, computed independently of the code under test:
//   from mpmath import mp, mpf, quad, exp, log, sqrt, pi, inf, binomial, floor
//   mp.dps = 50
//   def A(q, s, a):  # the defining integral of Mironov, Talwar, Zhang 2019
//       q, s, a = mpf(q), mpf(s), mpf(a)
//       f = lambda z: exp(-z*z/(2*s*s))/(s*sqrt(2*pi)) * ((1-q) + q*exp((2*z-1)/(2*s*s)))**a
//       return quad(f, [-inf, -10*s, 0, mpf(1)/2, a, a + 10*s, inf])
//   rdp = lambda q, s, a: log(A(q, s, a)) / (mpf(a) - 1)
// and, for sampling without replacement, Wang-Balle-Kasiviswanathan's bound with the forward
// differences D(l) = sum_i (-1)^(l-i) C(l, i) exp(i (i-1) / (2 s^2)) summed exactly:
//   mp.dps = 300
//   def logA(q, s, a):
//       if a == 1: return mpf(0)
//       t = 1 + q**2 * binomial(a, 2) * min(4*(exp(1/s**2) - 1), 2*exp(1/s**2))
//       for j in range(3, a + 1):
//           t += q**j * binomial(a, j) * min(2*exp(mpf(j)*(j-1)/(2*s*s)),
//                                            4*sqrt(D(s, 2*(j//2)) * D(s, 2*((j+1)//2))))
//       return log(t)
//   fractional a: ((1-t) logA(floor a) + t logA(floor a + 1)) / (a - 1), t = a - floor a
struct RdpReference {
  double q;
  double sigma;
  double order;
  double rdp;
};

constexpr RdpReference kPoissonReference[] = {
    {0.01, 1.0, 1.5, 1.2725374332744984e-4},
    {0.01, 1.0, 2.0, 1.7181342207454794e-4},
    {0.01, 1.0, 2.5, 2.1757533228188046e-4},
    {0.01, 1.0, 8.0, 8.9364390760603189e-4},
    {0.01, 1.0, 10.5, 0.18833969137955361},
    {0.01, 1.0, 32.0, 11.246275937048069},
    {256.0 / 60000.0, 1.1, 1.5, 1.7479784462924327e-5},
    {256.0 / 60000.0, 1.1, 8.1, 9.9659727619311178e-5},
    {256.0 / 60000.0, 1.1, 8.8, 1.0896430075952502e-4},
    {0.1, 0.8, 3.7, 0.22233062437262556},
};

// sigma here is the noise multiplier against the replace-one sensitivity, i.e. half the
// noise_multiplier passed to ComputeRdp with Sampling::kFixedSize.
constexpr RdpReference kWithoutReplacementReference[] = {
    {0.01, 1.0, 3.0, 8.3487268495441282e-4}, {0.01, 1.0, 8.0, 2.6841650126889324e-3},
    {0.01, 5.0, 8.8, 7.2612999832207621e-5}, {0.01, 5.0, 63.0, 5.4784426677838979e-4},
    {0.05, 0.55, 12.0, 16.629652552702749},  {0.001, 50.0, 40.0, 3.2020445725974961e-8},
    {0.2, 2.0, 2.5, 6.1627634031010697e-2},
};

// Double-precision sums of up to a thousand log-space terms, with a series truncated at
// e^-30 of its total for fractional orders: agreement to 1e-12 absolute plus 1e-11 relative.
bool NearReference(double value, double reference) {
  return std::fabs(value - reference) <= 1e-12 + 1e-11 * std::fabs(reference);
}

// A second, independent method in double precision: log A_alpha by the trapezoid rule in log
// space, straight from the definition. The integrand is smooth with a Gaussian bulk of width
// sigma, so a step of sigma / 50 is far finer than needed.
double LogAByIntegration(double q, double sigma, double alpha) {
  const double h = sigma / 50.0;
  const double lo = -40.0 * sigma;
  const double hi = alpha + 1.0 + 40.0 * sigma;
  double peak = -std::numeric_limits<double>::infinity();
  std::vector<double> log_f;
  for (double z = lo; z <= hi; z += h) {
    const double u = (2.0 * z - 1.0) / (2.0 * sigma * sigma);
    // log((1 - q) + q e^u), without cancellation on either side of u = 0.
    const double log_mix =
        u < 0.0 ? std::log1p(q * std::expm1(u)) : u + std::log(q + (1.0 - q) * std::exp(-u));
    log_f.push_back(-z * z / (2.0 * sigma * sigma) + alpha * log_mix);
    peak = std::max(peak, log_f.back());
  }
  double sum = 0.0;
  for (double v : log_f) sum += std::exp(v - peak);
  return peak + std::log(sum * h / (sigma * std::sqrt(2.0 * std::numbers::pi)));
}

TEST_CASE("One Gaussian step at q = 1 has RDP alpha / (2 sigma^2) exactly") {
  const std::vector<double> orders = DefaultRdpOrders();
  for (double sigma : {0.3, 1.1, 7.0}) {
    const std::vector<double> rdp = ComputeRdp(1.0, sigma, 1, orders).value();
    const std::vector<double> fixed =
        ComputeRdp(1.0, sigma, 1, orders, Sampling::kFixedSize).value();
    for (size_t k = 0; k < orders.size(); ++k) {
      const double expected = orders[k] / (2.0 * sigma * sigma);
      CHECK(std::fabs(rdp[k] - expected) <= 1e-12 * expected);
      // Replace-one neighbours double the sensitivity of the sum: four times the RDP.
      CHECK(std::fabs(fixed[k] - 4.0 * expected) <= 4e-12 * expected);
    }
  }
}

TEST_CASE("The default order grid is Opacus' and TF Privacy's") {
  const std::vector<double> orders = DefaultRdpOrders();
  REQUIRE(orders.size() == 151);
  CHECK(orders.front() == 1.1);
  CHECK(orders[98] == 10.9);
  CHECK(orders[99] == 12.0);
  CHECK(orders.back() == 63.0);
}

TEST_CASE("Abadi et al. 2016's MNIST example spends epsilon 3.01 with the classic conversion") {
  // q = 256 / 60000, sigma = 1.1, 60 epochs = 14063 steps, delta = 1e-5; TF Privacy reports
  // epsilon 3.01 with Mironov's conversion on this order grid.
  const std::vector<double> orders = DefaultRdpOrders();
  const std::vector<double> rdp = ComputeRdp(256.0 / 60000.0, 1.1, 14063, orders).value();
  const PrivacySpent classic =
      ComputePrivacySpent(orders, rdp, 1e-5, RdpConversion::kClassic).value();
  CHECK(std::round(classic.epsilon * 100.0) / 100.0 == 3.01);
  CHECK(classic.best_order == 8.8);
  // Balle et al.'s conversion is tighter on the same RDP curve.
  const PrivacySpent balle = ComputePrivacySpent(orders, rdp, 1e-5).value();
  CHECK(balle.epsilon < classic.epsilon);
  CHECK(balle.epsilon == doctest::Approx(2.5967).epsilon(1e-4));
}

TEST_CASE("Poisson-sampled RDP matches high-precision quadrature of its definition") {
  for (const RdpReference& ref : kPoissonReference) {
    CAPTURE(ref.q);
    CAPTURE(ref.sigma);
    CAPTURE(ref.order);
    const double rdp = ComputeRdp(ref.q, ref.sigma, 1, std::vector<double>{ref.order}).value()[0];
    CHECK(NearReference(rdp, ref.rdp));
  }
}

TEST_CASE("Opacus' conversion of directly integrated RDP gives the accountant's epsilon") {
  // Every order of the default grid, integer and fractional, against the trapezoid rule, then
  // epsilon by the formula of Opacus' get_privacy_spent written out here.
  constexpr double kQ = 0.02;
  constexpr double kSigma = 0.9;
  constexpr uint64_t kSteps = 500;
  constexpr double kDelta = 1e-6;
  const std::vector<double> orders = DefaultRdpOrders();
  const std::vector<double> rdp = ComputeRdp(kQ, kSigma, kSteps, orders).value();
  double best_epsilon = std::numeric_limits<double>::infinity();
  double best_order = 0.0;
  for (size_t k = 0; k < orders.size(); ++k) {
    const double alpha = orders[k];
    const double integrated = kSteps * LogAByIntegration(kQ, kSigma, alpha) / (alpha - 1.0);
    CAPTURE(alpha);
    CHECK(std::fabs(rdp[k] - integrated) <= 1e-9 + 1e-9 * integrated);
    const double epsilon = integrated - (std::log(kDelta) + std::log(alpha)) / (alpha - 1.0) +
                           std::log((alpha - 1.0) / alpha);
    if (epsilon < best_epsilon) {
      best_epsilon = epsilon;
      best_order = alpha;
    }
  }
  const PrivacySpent spent = ComputePrivacySpent(orders, rdp, kDelta).value();
  CHECK(spent.epsilon == doctest::Approx(best_epsilon).epsilon(1e-9));
  CHECK(spent.best_order == best_order);
}

TEST_CASE("Slowly converging fractional orders get a finite upper bound, not a lower one") {
  // At large q or sigma the series of low fractional orders decays only polynomially; it is cut
  // after a positive term of its alternating tail, which bounds A_alpha from above.
  struct Case {
    double q;
    double sigma;
    double order;
  };
  for (const Case& c :
       {Case{0.1, 1.0, 1.1}, Case{0.5, 1.0, 1.8}, Case{0.5, 100.0, 1.1}, Case{0.9, 0.5, 1.5}}) {
    CAPTURE(c.q);
    CAPTURE(c.sigma);
    CAPTURE(c.order);
    const double rdp = ComputeRdp(c.q, c.sigma, 1, std::vector<double>{c.order}).value()[0];
    const double log_a = rdp * (c.order - 1.0);
    const double integrated = LogAByIntegration(c.q, c.sigma, c.order);
    REQUIRE(std::isfinite(rdp));
    CHECK(log_a >= integrated - 1e-13);
    CHECK(log_a <= integrated + 2e-8);
  }
}

TEST_CASE("Fixed-size sampling uses the Wang-Balle-Kasiviswanathan bound") {
  for (const RdpReference& ref : kWithoutReplacementReference) {
    CAPTURE(ref.q);
    CAPTURE(ref.sigma);
    CAPTURE(ref.order);
    const double rdp =
        ComputeRdp(ref.q, 2.0 * ref.sigma, 1, std::vector<double>{ref.order}, Sampling::kFixedSize)
            .value()[0];
    CHECK(NearReference(rdp, ref.rdp));
  }
}

TEST_CASE("Balle et al.'s conversion is never worse than the classic one") {
  const std::vector<double> orders = DefaultRdpOrders();
  for (double sigma : {0.6, 1.0, 4.0}) {
    const std::vector<double> rdp = ComputeRdp(0.05, sigma, 200, orders).value();
    for (double delta : {1e-3, 1e-5, 1e-9}) {
      const double balle = ComputePrivacySpent(orders, rdp, delta).value().epsilon;
      const double classic =
          ComputePrivacySpent(orders, rdp, delta, RdpConversion::kClassic).value().epsilon;
      CHECK(balle <= classic);
      CHECK(balle > 0.0);
    }
  }
}

TEST_CASE("The accountant adds up the RDP of rounds with changing parameters") {
  RdpAccountant accountant;
  CHECK(accountant.GetPrivacySpent(1e-5).value().epsilon == 0.0);
  REQUIRE(accountant.AddSteps(0.01, 1.0, 100).ok());
  const double after_first = accountant.GetPrivacySpent(1e-5).value().epsilon;
  REQUIRE(accountant.AddSteps(0.05, 2.0, 30).ok());
  REQUIRE(accountant.AddSteps(0.1, 3.0, 1, Sampling::kFixedSize).ok());
  CHECK(accountant.num_steps() == 131);

  const std::vector<double> orders = DefaultRdpOrders();
  const std::vector<double> a = ComputeRdp(0.01, 1.0, 100, orders).value();
  const std::vector<double> b = ComputeRdp(0.05, 2.0, 30, orders).value();
  const std::vector<double> c = ComputeRdp(0.1, 3.0, 1, orders, Sampling::kFixedSize).value();
  for (size_t k = 0; k < orders.size(); ++k) {
    CHECK(accountant.rdp()[k] == doctest::Approx(a[k] + b[k] + c[k]).epsilon(1e-14));
  }
  const PrivacySpent total = accountant.GetPrivacySpent(1e-5).value();
  CHECK(total.epsilon > after_first);
  CHECK(total.epsilon == ComputePrivacySpent(orders, accountant.rdp(), 1e-5).value().epsilon);

  // A bad round is rejected and leaves the accountant as it was.
  CHECK(accountant.AddSteps(1.5, 1.0, 1).code() == StatusCode::kInvalidArgument);
  CHECK(accountant.num_steps() == 131);
  CHECK(accountant.GetPrivacySpent(1e-5).value().epsilon == total.epsilon);
}

TEST_CASE("A saved state continues on a fresh accountant exactly as without the interruption") {
  // Rounds with changing parameters before and after the save: RDP composes over any sequence.
  RdpAccountant uninterrupted;
  REQUIRE(uninterrupted.AddSteps(0.1, 1.1, 3, Sampling::kFixedSize).ok());
  REQUIRE(uninterrupted.AddSteps(0.2, 0.9, 2, Sampling::kFixedSize).ok());
  const RdpAccountantState saved = uninterrupted.SaveState();
  CHECK(saved.num_steps == 5);
  CHECK(saved.orders == DefaultRdpOrders());
  CHECK(saved.rdp == std::vector<double>(uninterrupted.rdp().begin(), uninterrupted.rdp().end()));

  // The fresh accountant starts on another grid: the state brings its own.
  RdpAccountant resumed({2.0, 8.0});
  REQUIRE(resumed.LoadState(saved).ok());
  CHECK(resumed.num_steps() == 5);
  CHECK(resumed.GetPrivacySpent(1e-5).value().epsilon ==
        uninterrupted.GetPrivacySpent(1e-5).value().epsilon);
  for (RdpAccountant* accountant : {&uninterrupted, &resumed}) {
    REQUIRE(accountant->AddSteps(0.05, 1.3, 4, Sampling::kFixedSize).ok());
  }
  CHECK(resumed.num_steps() == 9);
  CHECK(std::vector<double>(resumed.orders().begin(), resumed.orders().end()) ==
        DefaultRdpOrders());
  CHECK(std::vector<double>(resumed.rdp().begin(), resumed.rdp().end()) ==
        std::vector<double>(uninterrupted.rdp().begin(), uninterrupted.rdp().end()));
  const double epsilon = uninterrupted.GetPrivacySpent(1e-5).value().epsilon;
  CHECK(resumed.GetPrivacySpent(1e-5).value().epsilon == epsilon);
  CHECK(epsilon > 0.0);
}

TEST_CASE("A malformed accountant state is rejected and leaves the accountant as it was") {
  RdpAccountant accountant;
  REQUIRE(accountant.AddSteps(0.1, 1.0, 3).ok());
  const RdpAccountantState before = accountant.SaveState();
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const RdpAccountantState bad[] = {
      {.orders = {}, .rdp = {}, .num_steps = 1},
      {.orders = {1.0, 2.0}, .rdp = {0.1, 0.2}, .num_steps = 1},
      {.orders = {2.0, inf}, .rdp = {0.1, 0.2}, .num_steps = 1},
      {.orders = {2.0, 3.0}, .rdp = {0.1}, .num_steps = 1},
      {.orders = {2.0, 3.0}, .rdp = {0.1, -0.2}, .num_steps = 1},
      {.orders = {2.0, 3.0}, .rdp = {0.1, nan}, .num_steps = 1},
  };
  for (const RdpAccountantState& state : bad) {
    CHECK(accountant.LoadState(state).code() == StatusCode::kInvalidArgument);
    CHECK(accountant.num_steps() == 3);
    CHECK(accountant.SaveState().orders == before.orders);
    CHECK(accountant.SaveState().rdp == before.rdp);
  }
  // +infinity is what an order without a convergent bound accumulates; such an order is skipped.
  REQUIRE(accountant.LoadState({.orders = {2.0, 3.0}, .rdp = {inf, 0.5}, .num_steps = 7}).ok());
  CHECK(accountant.num_steps() == 7);
  CHECK(accountant.GetPrivacySpent(1e-5).value().best_order == 3.0);
}

TEST_CASE("FindNoiseMultiplier returns the smallest noise multiplier that meets the target") {
  constexpr double kQ = 256.0 / 60000.0;
  constexpr uint64_t kSteps = 14063;
  constexpr double kDelta = 1e-5;
  const std::vector<double> orders = DefaultRdpOrders();
  const auto epsilon_at = [&](double sigma) {
    return ComputePrivacySpent(orders, ComputeRdp(kQ, sigma, kSteps, orders).value(), kDelta)
        .value()
        .epsilon;
  };
  Result<double> sigma = FindNoiseMultiplier(3.0, kQ, kSteps, kDelta);
  REQUIRE(sigma.ok());
  CHECK(epsilon_at(*sigma) <= 3.0);
  CHECK(epsilon_at(*sigma * (1.0 - 1e-5)) > 3.0);

  // Round trip through the Abadi et al. example.
  const double epsilon = epsilon_at(1.1);
  CHECK(FindNoiseMultiplier(epsilon, kQ, kSteps, kDelta).value() ==
        doctest::Approx(1.1).epsilon(1e-5));

  // Full participation, one step: sigma needed for epsilon 1 at delta 1e-5 (classic: the
  // smallest sigma with min over orders of a/(2 s^2) + log(1e5)/(a-1) <= 1).
  NoiseSearchOptions options{.conversion = RdpConversion::kClassic};
  const double full = FindNoiseMultiplier(1.0, 1.0, 1, kDelta, options).value();
  double best = std::numeric_limits<double>::infinity();
  for (double a : orders) {
    best = std::min(best, a / (2.0 * full * full) + std::log(1e5) / (a - 1.0));
  }
  CHECK(best <= 1.0);
  CHECK(best >= 1.0 - 1e-5);

  CHECK(
      FindNoiseMultiplier(1e-6, 1.0, 1, kDelta, {.max_noise_multiplier = 100.0}).status().code() ==
      StatusCode::kOutOfRange);
}

TEST_CASE("The accountant rejects sampling rates, noise, deltas and orders out of range") {
  const std::vector<double> orders = DefaultRdpOrders();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  CHECK(ComputeRdp(-0.1, 1.0, 1, orders).status().code() == StatusCode::kInvalidArgument);
  CHECK(ComputeRdp(nan, 1.0, 1, orders).status().code() == StatusCode::kInvalidArgument);
  CHECK(ComputeRdp(0.1, 0.0, 1, orders).status().code() == StatusCode::kInvalidArgument);
  CHECK(ComputeRdp(0.1, 1.0, 1, std::vector<double>{1.0}).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(ComputeRdp(0.0, 1.0, 5, orders).value() == std::vector<double>(orders.size(), 0.0));
  const std::vector<double> rdp = ComputeRdp(0.1, 1.0, 1, orders).value();
  for (double delta : {0.0, 1.0, nan}) {
    CHECK(ComputePrivacySpent(orders, rdp, delta).status().code() == StatusCode::kInvalidArgument);
  }
  CHECK(ComputePrivacySpent(orders, std::vector<double>{1.0}, 1e-5).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(FindNoiseMultiplier(0.0, 0.1, 10, 1e-5).status().code() == StatusCode::kInvalidArgument);
  CHECK(FindNoiseMultiplier(1.0, 0.0, 10, 1e-5).status().code() == StatusCode::kInvalidArgument);
  CHECK(FindNoiseMultiplier(1.0, 0.1, 0, 1e-5).status().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edgefl::privacy

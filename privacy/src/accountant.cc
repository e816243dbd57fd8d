#include "edgefl/privacy/accountant.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numbers>
#include <string>
#include <utility>

#include "edgefl/common/check.h"
#include "format.h"

namespace edgefl::privacy {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// log(exp(a) + exp(b)) without overflow.
double LogAdd(double a, double b) {
  if (a < b) std::swap(a, b);
  if (b == -kInf) return a;
  return a + std::log1p(std::exp(b - a));
}

// log(erfc(x)), accurate also where erfc(x) underflows: std::erfc is used up to x = 20
// (erfc(20) ~ 5e-176, far from the subnormals), then the asymptotic expansion
// erfc(x) ~ exp(-x^2) / (x sqrt(pi)) * exp(-1/(2x^2) + 5/(8x^4) - 37/(24x^6) + 353/(64x^8)),
// whose first omitted term is below 1e-11 at x = 20 (the same series as TF Privacy's fallback).
double LogErfc(double x) {
  if (x <= 20.0) return std::log(std::erfc(x));
  const double inv_x2 = 1.0 / (x * x);
  return -0.5 * std::log(std::numbers::pi) - std::log(x) - x * x +
         inv_x2 * (-0.5 + inv_x2 * (0.625 + inv_x2 * (-37.0 / 24.0 + inv_x2 * (353.0 / 64.0))));
}

// log of the binomial coefficient C(n, k) for integers 0 <= k <= n.
double LogBinomial(double n, double k) {
  return std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0);
}

bool IsInteger(double x) { return x == std::floor(x); }

// --- Poisson sampling: Mironov, Talwar, Zhang 2019 -------------------------------------------
//
// For the mixture mu = (1 - q) N(0, sigma^2) + q N(1, sigma^2) against mu0 = N(0, sigma^2), the
// RDP of one step at order alpha is log(A_alpha) / (alpha - 1) with
//   A_alpha = E_{z ~ mu0} [ (mu(z) / mu0(z))^alpha ]
// (their Theorem 4 shows the other direction, B_alpha, is never larger).

// A_alpha for integer alpha (their Section 3.2): the binomial expansion of
// ((1 - q) + q exp((2z - 1) / (2 sigma^2)))^alpha integrates term by term to
//   A_alpha = sum_{i=0}^{alpha} C(alpha, i) q^i (1 - q)^(alpha - i) exp((i^2 - i) / (2 sigma^2)).
double LogAPoissonInt(double q, double sigma, int64_t alpha) {
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double a = static_cast<double>(alpha);
  double log_a = -kInf;
  for (int64_t k = 0; k <= alpha; ++k) {
    const double i = static_cast<double>(k);
    log_a = LogAdd(log_a, LogBinomial(a, i) + i * log_q + (a - i) * log_1mq +
                              (i * i - i) / (2.0 * sigma * sigma));
  }
  return log_a;
}

// A_alpha for fractional alpha (Mironov, Talwar, Zhang 2019, Section 3.3; TF Privacy's and
// Opacus' _compute_log_a_frac): split the integral at z0, where mu(z) = mu0(z), expand
// (1 + x)^alpha as the generalised binomial series on each side (its coefficients C(alpha, i)
// change sign once i > alpha), and integrate each term against the Gaussian, which leaves
// erfc factors. Positive and negative terms are summed apart in log space and subtracted once
// at the end. Stops once both parts' terms are decreasing and 30 nats below the running total
// (TF Privacy's rule).
// For large q or sigma the terms may decay only polynomially, like i^-(alpha+2), and that rule
// would need millions of terms. Past i = alpha + 1 the coefficients alternate in sign, so once
// the terms also decrease, every partial sum that ends on a positive term lies above A_alpha:
// after kMaxTerms terms the sum is cut at such a term, a valid upper bound whose excess is below
// its last term (at worst about 1e-8 in log A_alpha, at alpha = 1.1, q = 0.5, sigma = 100, by
// comparison with direct integration). Where even that fails (terms not decreasing, or
// rounding), the order reports +infinity and is not used.
double LogAPoissonFrac(double q, double sigma, double alpha) {
  constexpr int kMaxTerms = 1000;
  const double log_q = std::log(q);
  const double log_1mq = std::log1p(-q);
  const double sigma_sq = sigma * sigma;
  const double z0 = sigma_sq * std::log(1.0 / q - 1.0) + 0.5;
  const double log_half = std::log(0.5);
  double log_pos = -kInf;
  double log_neg = -kInf;
  // log |C(alpha, i)| and its sign, by C(alpha, i) = C(alpha, i - 1) (alpha - i + 1) / i.
  double log_abs_coef = 0.0;
  bool coef_negative = false;
  double last_s0 = -kInf;
  double last_s1 = -kInf;
  for (int k = 0; k <= kMaxTerms; ++k) {
    const double i = static_cast<double>(k);
    if (k > 0) {
      const double factor = alpha - i + 1.0;
      log_abs_coef += std::log(std::fabs(factor)) - std::log(i);
      if (factor < 0.0) coef_negative = !coef_negative;
    }
    const double j = alpha - i;
    const double log_t0 = log_abs_coef + i * log_q + j * log_1mq;
    const double log_t1 = log_abs_coef + j * log_q + i * log_1mq;
    const double log_e0 = log_half + LogErfc((i - z0) / (std::numbers::sqrt2 * sigma));
    const double log_e1 = log_half + LogErfc((z0 - j) / (std::numbers::sqrt2 * sigma));
    const double log_s0 = log_t0 + (i * i - i) / (2.0 * sigma_sq) + log_e0;
    const double log_s1 = log_t1 + (j * j - j) / (2.0 * sigma_sq) + log_e1;
    const double log_s = LogAdd(log_s0, log_s1);
    if (coef_negative) {
      log_neg = LogAdd(log_neg, log_s);
    } else {
      log_pos = LogAdd(log_pos, log_s);
    }
    if (log_pos <= log_neg) return kInf;  // lost to rounding: exclude this order
    const double total = log_pos + std::log1p(-std::exp(log_neg - log_pos));
    const bool decreasing = log_s0 < last_s0 && log_s1 < last_s1;
    if (decreasing && std::max(log_s0, log_s1) < total - 30.0) return total;
    if (k >= kMaxTerms - 1 && decreasing && !coef_negative && i > alpha + 1.0) return total;
    last_s0 = log_s0;
    last_s1 = log_s1;
  }
  return kInf;
}

double RdpPoisson(double q, double sigma, double alpha) {
  if (q == 0.0) return 0.0;
  if (q == 1.0) return alpha / (2.0 * sigma * sigma);
  const double log_a = IsInteger(alpha) ? LogAPoissonInt(q, sigma, static_cast<int64_t>(alpha))
                                        : LogAPoissonFrac(q, sigma, alpha);
  return log_a / (alpha - 1.0);
}

// --- Sampling without replacement: Wang, Balle, Kasiviswanathan 2019 --------------------------
//
// For a cohort of m = q n clients drawn without replacement and replace-one neighbours, their
// Theorem 9 bounds, for integer alpha >= 2 and a base mechanism with RDP eps(.),
//   A_alpha <= 1 + q^2 C(alpha, 2) min{4 (e^eps(2) - 1), 2 e^eps(2)}
//              + sum_{j=3}^{alpha} q^j C(alpha, j) 2 e^{(j-1) eps(j)},
// here for the Gaussian eps(j) = j / (2 sigma^2), so (j-1) eps(j) = j (j-1) / (2 sigma^2).
// For the Gaussian the j-th term may use the smaller
//   4 sqrt(D(2 floor(j/2)) D(2 ceil(j/2))),  D(l) = l-th forward difference at 0 of
//   g(i) = e^{(i-1) eps(i)}
// (arXiv:1808.00087, Theorem 27; TF Privacy's _compute_rdp_sample_wor_gaussian_int), and the
// minimum of the two is taken. Fractional orders interpolate log A linearly between the
// neighbouring integers, an upper bound since log A_alpha is convex in alpha (their Corollary
// 10), with log A_1 = 0.
//
// The forward differences of g cancel catastrophically when sigma is large (g(i) ~ 1 for all
// small i), so they are not formed as alternating sums. Instead, with s = 1 / sigma and
// W = exp(s Z - s^2 / 2), Z ~ N(0, 1), E[W^i] = exp(i (i-1) s^2 / 2) = g(i), hence
// D(l) = E[(W - 1)^l], a positive integral for even l. It is computed in log space by the
// trapezoid rule over the integrand's bulk. The integrand is entire and decays like a
// Gaussian, so the rule converges geometrically in the step; accountant_test.cc checks the
// resulting bounds to 1e-11 relative against the exact alternating sums evaluated at 300 digits
// (mpmath), including sigma = 50 where double-precision alternating sums would be pure noise.
constexpr double kMomentStep = 0.05;
constexpr double kMomentTail = 16.0;  // integrate this far (in z) beyond the bulk on both sides
constexpr int64_t kMaxWorRefinedOrder = 256;

// log E[(W - 1)^l] for even l >= 2. The integrand's bulk lies between -sqrt(l) (where
// |W - 1| ~ |s z| dominates, small s) and l s (where W^l dominates, large s); beyond it the
// Gaussian factor makes it fall by e^-128 within kMomentTail.
double LogCentralMomentW(double sigma, int64_t l) {
  const double s = 1.0 / sigma;
  const double ld = static_cast<double>(l);
  const double lo = -std::sqrt(ld) - kMomentTail;
  const double hi = ld * s + std::sqrt(ld) + kMomentTail;
  const int64_t n = static_cast<int64_t>(std::ceil((hi - lo) / kMomentStep));
  // One pass of log-sum-exp, rescaling whenever a larger term appears.
  double peak = -kInf;
  double sum = 0.0;
  for (int64_t k = 0; k <= n; ++k) {
    const double z = lo + kMomentStep * static_cast<double>(k);
    const double log_f = -0.5 * z * z + ld * std::log(std::fabs(std::expm1(s * z - 0.5 * s * s)));
    if (log_f > peak) {
      sum = sum * std::exp(peak - log_f) + 1.0;
      peak = log_f;
    } else {
      sum += std::exp(log_f - peak);
    }
  }
  return peak + std::log(sum * kMomentStep) - 0.5 * std::log(2.0 * std::numbers::pi);
}

// log A_alpha bound for integer alpha >= 1 and 0 < q < 1, given log D(l) for even l in
// log_moments[l / 2] (as far as alpha needs when alpha <= kMaxWorRefinedOrder).
double LogAWorInt(double q, double sigma, int64_t alpha, std::span<const double> log_moments) {
  if (alpha == 1) return 0.0;
  const double log_q = std::log(q);
  const double a = static_cast<double>(alpha);
  const double eps2 = 1.0 / (sigma * sigma);
  const double log_eps2_m1 = eps2 + std::log1p(-std::exp(-eps2));  // log(e^eps(2) - 1)
  double log_a = 0.0;
  log_a = LogAdd(log_a, 2.0 * log_q + LogBinomial(a, 2.0) +
                            std::min(std::log(4.0) + log_eps2_m1, std::log(2.0) + eps2));
  for (int64_t j = 3; j <= alpha; ++j) {
    const double jd = static_cast<double>(j);
    double log_term = std::log(2.0) + jd * (jd - 1.0) / (2.0 * sigma * sigma);
    if (alpha <= kMaxWorRefinedOrder) {
      const double log_d_lo = log_moments[static_cast<size_t>(j / 2)];
      const double log_d_hi = log_moments[static_cast<size_t>((j + 1) / 2)];
      log_term = std::min(log_term, std::log(4.0) + 0.5 * (log_d_lo + log_d_hi));
    }
    log_a = LogAdd(log_a, log_term + jd * log_q + LogBinomial(a, jd));
  }
  return log_a;
}

// Per-step RDP bounds at each order for sampling without replacement; `sigma` is already the
// noise multiplier against the replace-one sensitivity.
std::vector<double> RdpWor(double q, double sigma, std::span<const double> orders) {
  std::vector<double> rdp(orders.size(), 0.0);
  if (q == 0.0) return rdp;
  if (q == 1.0) {
    for (size_t k = 0; k < orders.size(); ++k) rdp[k] = orders[k] / (2.0 * sigma * sigma);
    return rdp;
  }
  int64_t max_order = 0;
  for (double alpha : orders) {
    const auto ceil_alpha = static_cast<int64_t>(std::ceil(alpha));
    max_order = std::max(max_order, std::min(ceil_alpha, kMaxWorRefinedOrder));
  }
  // log_moments[h] = log D(2h); entry 0 unused.
  std::vector<double> log_moments(static_cast<size_t>(max_order / 2 + 2), -kInf);
  for (size_t h = 1; h < log_moments.size(); ++h) {
    log_moments[h] = LogCentralMomentW(sigma, static_cast<int64_t>(2 * h));
  }
  for (size_t k = 0; k < orders.size(); ++k) {
    const double alpha = orders[k];
    if (IsInteger(alpha)) {
      rdp[k] = LogAWorInt(q, sigma, static_cast<int64_t>(alpha), log_moments) / (alpha - 1.0);
    } else {
      const double lo = std::floor(alpha);
      const double t = alpha - lo;
      const double log_a_lo = LogAWorInt(q, sigma, static_cast<int64_t>(lo), log_moments);
      const double log_a_hi = LogAWorInt(q, sigma, static_cast<int64_t>(lo) + 1, log_moments);
      rdp[k] = ((1.0 - t) * log_a_lo + t * log_a_hi) / (alpha - 1.0);
    }
  }
  return rdp;
}

Status CheckOrders(std::span<const double> orders) {
  if (orders.empty()) return InvalidArgumentError("RDP orders must not be empty");
  for (double alpha : orders) {
    if (!std::isfinite(alpha) || alpha <= 1.0) {
      return InvalidArgumentError("RDP orders must be finite and > 1, got " +
                                  internal::FormatNumber(alpha));
    }
  }
  return OkStatus();
}

Status CheckDelta(double delta) {
  if (!(delta > 0.0 && delta < 1.0)) {
    return InvalidArgumentError("delta must be in (0, 1), got " + internal::FormatNumber(delta));
  }
  return OkStatus();
}

}  // namespace

std::vector<double> DefaultRdpOrders() {
  std::vector<double> orders;
  for (int x = 1; x < 100; ++x) orders.push_back(1.0 + x / 10.0);
  for (int x = 12; x < 64; ++x) orders.push_back(static_cast<double>(x));
  return orders;
}

Result<std::vector<double>> ComputeRdp(double q, double noise_multiplier, uint64_t steps,
                                       std::span<const double> orders, Sampling sampling) {
  if (!(q >= 0.0 && q <= 1.0)) {
    return InvalidArgumentError("sampling rate q must be in [0, 1], got " +
                                internal::FormatNumber(q));
  }
  if (!std::isfinite(noise_multiplier) || noise_multiplier <= 0.0) {
    return InvalidArgumentError("noise multiplier must be finite and > 0, got " +
                                internal::FormatNumber(noise_multiplier));
  }
  EDGEFL_RETURN_IF_ERROR(CheckOrders(orders));
  std::vector<double> rdp(orders.size(), 0.0);
  if (steps == 0 || q == 0.0) return rdp;
  if (sampling == Sampling::kPoisson) {
    for (size_t k = 0; k < orders.size(); ++k) {
      rdp[k] = RdpPoisson(q, noise_multiplier, orders[k]);
    }
  } else {
    rdp = RdpWor(q, noise_multiplier / 2.0, orders);
  }
  for (double& r : rdp) r *= static_cast<double>(steps);
  return rdp;
}

Result<PrivacySpent> ComputePrivacySpent(std::span<const double> orders,
                                         std::span<const double> rdp, double delta,
                                         RdpConversion conversion) {
  EDGEFL_RETURN_IF_ERROR(CheckDelta(delta));
  EDGEFL_RETURN_IF_ERROR(CheckOrders(orders));
  if (rdp.size() != orders.size()) {
    return InvalidArgumentError("got " + std::to_string(rdp.size()) + " RDP values for " +
                                std::to_string(orders.size()) + " orders");
  }
  PrivacySpent best{.epsilon = kInf, .best_order = 0.0};
  const double log_delta = std::log(delta);
  for (size_t k = 0; k < orders.size(); ++k) {
    const double alpha = orders[k];
    const double r = rdp[k];
    if (std::isnan(r) || r < 0.0) {
      return InvalidArgumentError("RDP at order " + internal::FormatNumber(alpha) + " is " +
                                  internal::FormatNumber(r) + "; it must be >= 0");
    }
    if (std::isinf(r)) continue;
    double epsilon = kInf;
    if (conversion == RdpConversion::kClassic) {
      epsilon = r - log_delta / (alpha - 1.0);
    } else if (delta * delta + std::expm1(-r) > 0.0) {
      // RDP at any order bounds the KL divergence, and total variation <= sqrt(1 - e^-KL)
      // (Bretagnolle-Huber) < delta already gives (0, delta)-DP (as TF Privacy's
      // compute_epsilon).
      epsilon = 0.0;
    } else if (alpha > 1.01) {
      // Balle et al. 2020, Theorem 21; unstable and useless as alpha -> 1, hence the cut-off
      // (TF Privacy's).
      epsilon = r + std::log1p(-1.0 / alpha) - (log_delta + std::log(alpha)) / (alpha - 1.0);
    }
    if (epsilon < best.epsilon) best = {.epsilon = epsilon, .best_order = alpha};
  }
  best.epsilon = std::max(best.epsilon, 0.0);
  return best;
}

RdpAccountant::RdpAccountant(std::vector<double> orders)
    : orders_(std::move(orders)), rdp_(orders_.size(), 0.0) {
  const Status status = CheckOrders(orders_);
  EDGEFL_CHECK(status.ok()) << status.ToString();
}

Status RdpAccountant::AddSteps(double q, double noise_multiplier, uint64_t steps,
                               Sampling sampling) {
  EDGEFL_ASSIGN_OR_RETURN(std::vector<double> rdp,
                          ComputeRdp(q, noise_multiplier, steps, orders_, sampling));
  for (size_t k = 0; k < rdp_.size(); ++k) rdp_[k] += rdp[k];
  num_steps_ += steps;
  return OkStatus();
}

Result<PrivacySpent> RdpAccountant::GetPrivacySpent(double delta, RdpConversion conversion) const {
  return ComputePrivacySpent(orders_, rdp_, delta, conversion);
}

RdpAccountantState RdpAccountant::SaveState() const {
  return {.orders = orders_, .rdp = rdp_, .num_steps = num_steps_};
}

Status RdpAccountant::LoadState(RdpAccountantState state) {
  EDGEFL_RETURN_IF_ERROR(CheckOrders(state.orders));
  if (state.rdp.size() != state.orders.size()) {
    return InvalidArgumentError("accountant state has " + std::to_string(state.rdp.size()) +
                                " RDP values for " + std::to_string(state.orders.size()) +
                                " orders");
  }
  // +infinity is a legitimate value: an order whose series did not converge (see ComputeRdp).
  for (size_t k = 0; k < state.rdp.size(); ++k) {
    if (!(state.rdp[k] >= 0.0)) {
      return InvalidArgumentError("accountant state has RDP " +
                                  internal::FormatNumber(state.rdp[k]) + " at order " +
                                  internal::FormatNumber(state.orders[k]) + "; it must be >= 0");
    }
  }
  orders_ = std::move(state.orders);
  rdp_ = std::move(state.rdp);
  num_steps_ = state.num_steps;
  return OkStatus();
}

Result<double> FindNoiseMultiplier(double target_epsilon, double q, uint64_t steps, double delta,
                                   const NoiseSearchOptions& options) {
  if (!std::isfinite(target_epsilon) || target_epsilon <= 0.0) {
    return InvalidArgumentError("target epsilon must be finite and > 0, got " +
                                internal::FormatNumber(target_epsilon));
  }
  if (!(q > 0.0 && q <= 1.0)) {
    return InvalidArgumentError("sampling rate q must be in (0, 1], got " +
                                internal::FormatNumber(q));
  }
  if (steps == 0) return InvalidArgumentError("steps must be > 0");
  EDGEFL_RETURN_IF_ERROR(CheckDelta(delta));
  EDGEFL_RETURN_IF_ERROR(CheckOrders(options.orders));
  if (!(options.relative_tolerance > 0.0 && options.relative_tolerance < 1.0)) {
    return InvalidArgumentError("relative tolerance must be in (0, 1), got " +
                                internal::FormatNumber(options.relative_tolerance));
  }
  if (!std::isfinite(options.max_noise_multiplier) || options.max_noise_multiplier <= 0.0) {
    return InvalidArgumentError("max noise multiplier must be finite and > 0");
  }
  const auto epsilon_at = [&](double sigma) -> Result<double> {
    EDGEFL_ASSIGN_OR_RETURN(std::vector<double> rdp,
                            ComputeRdp(q, sigma, steps, options.orders, options.sampling));
    EDGEFL_ASSIGN_OR_RETURN(PrivacySpent spent,
                            ComputePrivacySpent(options.orders, rdp, delta, options.conversion));
    return spent.epsilon;
  };
  // Invariant: epsilon_at(hi) <= target; lo == 0 or epsilon_at(lo) > target.
  double lo = 0.0;
  double hi = std::min(1.0, options.max_noise_multiplier);
  while (true) {
    EDGEFL_ASSIGN_OR_RETURN(double epsilon, epsilon_at(hi));
    if (epsilon <= target_epsilon) break;
    if (hi >= options.max_noise_multiplier) {
      return OutOfRangeError("epsilon " + internal::FormatNumber(target_epsilon) +
                             " needs a noise multiplier above " +
                             internal::FormatNumber(options.max_noise_multiplier) + " (epsilon " +
                             internal::FormatNumber(epsilon) + " there)");
    }
    lo = hi;
    hi = std::min(2.0 * hi, options.max_noise_multiplier);
  }
  while (hi - lo > options.relative_tolerance * hi) {
    const double mid = 0.5 * (lo + hi);
    EDGEFL_ASSIGN_OR_RETURN(double epsilon, epsilon_at(mid));
    if (epsilon <= target_epsilon) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return hi;
}

}  // namespace edgefl::privacy

// Privacy accountant: Rényi differential privacy (RDP, Mironov 2017) of the sampled Gaussian
// mechanism, composed over rounds and converted to (epsilon, delta)-DP.
//
// Each round in which a cohort is sampled and the clipped, noised sum of its updates released is
// one step of the sampled Gaussian mechanism with sampling rate q (expected cohort / population)
// and noise multiplier sigma (noise stddev / clip norm). RDP composes by addition at each order
// alpha, and the final epsilon minimises a conversion over a grid of orders. The numerics follow
// TensorFlow Privacy / Opacus (rdp_accountant.py, analysis/rdp.py) in log space.
// RdpAccountant is a value type driven by one thread; the free functions are pure.
//
//   privacy::RdpAccountant accountant;
//   EDGEFL_RETURN_IF_ERROR(accountant.AddSteps(/*q=*/0.01, /*noise_multiplier=*/1.1, rounds));
//   EDGEFL_ASSIGN_OR_RETURN(privacy::PrivacySpent spent, accountant.GetPrivacySpent(1e-5));
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "edgefl/common/status.h"

namespace edgefl::privacy {

// How the cohort of a step is drawn, which fixes the neighbouring relation of the guarantee.
enum class Sampling {
  // Each client joins independently with probability q (Poisson sampling); add/remove-one
  // neighbours; the sensitivity of the clipped sum is clip_norm. Mironov, Talwar, Zhang 2019.
  kPoisson,
  // A cohort of exactly q * population clients drawn without replacement; replace-one
  // neighbours (the population size is public). Replacing one client moves the clipped sum by
  // up to 2 * clip_norm, so the accountant analyses noise multiplier sigma / 2 against unit
  // sensitivity. Bound of Wang, Balle, Kasiviswanathan 2019 (see accountant.cc).
  kFixedSize,
};

// Conversion from RDP at order alpha to (epsilon, delta)-DP.
enum class RdpConversion {
  // Balle et al. 2020, "Hypothesis testing interpretations and Rényi DP", Theorem 21, as in
  // Opacus' get_privacy_spent: eps = rdp + log((alpha-1)/alpha) - (log(delta) + log(alpha)) /
  // (alpha - 1). Never worse than kClassic for alpha > 1.
  kBalle2020,
  // Mironov 2017, Proposition 3: eps = rdp + log(1/delta) / (alpha - 1).
  kClassic,
};

// Opacus' and TF Privacy's grid: 1.1, 1.2, ..., 10.9 and 12, 13, ..., 63 (151 orders).
std::vector<double> DefaultRdpOrders();

// An (epsilon, delta) guarantee and the order at which the conversion was best.
struct PrivacySpent {
  double epsilon = 0.0;     // >= 0; +infinity when no order gives a finite bound
  double best_order = 0.0;  // the alpha attaining epsilon
};

// RDP at each of `orders` of `steps` compositions of the sampled Gaussian mechanism with
// sampling rate q and noise multiplier sigma. q == 1 gives exactly steps * alpha / (2 sigma^2)
// (times 4 for kFixedSize, whose sensitivity is doubled); q == 0 or steps == 0 gives 0.
// kInvalidArgument unless q in [0, 1], sigma finite and > 0, every order finite and > 1.
// An order whose series does not converge (extreme q and sigma) reports +infinity and so
// never wins a conversion.
Result<std::vector<double>> ComputeRdp(double q, double noise_multiplier, uint64_t steps,
                                       std::span<const double> orders,
                                       Sampling sampling = Sampling::kPoisson);

// The smallest epsilon over the orders for which RDP `rdp[i]` at `orders[i]` gives
// (epsilon, delta)-DP, and its order. Non-finite RDP values are skipped.
// kInvalidArgument unless delta in (0, 1), orders and rdp are non-empty and of equal size,
// orders > 1 and rdp >= 0 (NaN rejected).
Result<PrivacySpent> ComputePrivacySpent(std::span<const double> orders,
                                         std::span<const double> rdp, double delta,
                                         RdpConversion conversion = RdpConversion::kBalle2020);

// What an RdpAccountant has accumulated: enough to continue the composition in another process
// (a coordinator restarted from its checkpoint) exactly where it stopped. The orders travel with
// the RDP values, so a state stays meaningful even if DefaultRdpOrders() changes.
struct RdpAccountantState {
  std::vector<double> orders;  // Rényi orders, each finite and > 1
  std::vector<double> rdp;     // accumulated RDP at each order, >= 0 (+infinity: no bound)
  uint64_t num_steps = 0;      // steps composed into `rdp`
};

// Accumulates the RDP of training rounds whose sampling rate and noise may change from round to
// round, and reports the (epsilon, delta) spent so far.
class RdpAccountant {
 public:
  // Precondition (checked): `orders` non-empty, each finite and > 1.
  explicit RdpAccountant(std::vector<double> orders = DefaultRdpOrders());

  // Records `steps` rounds at sampling rate q and noise multiplier sigma. Errors as ComputeRdp's
  // (kInvalidArgument), leaving the accountant unchanged.
  Status AddSteps(double q, double noise_multiplier, uint64_t steps = 1,
                  Sampling sampling = Sampling::kPoisson);

  // The epsilon spent so far at `delta` (0 before any step). kInvalidArgument unless
  // delta in (0, 1).
  Result<PrivacySpent> GetPrivacySpent(double delta,
                                       RdpConversion conversion = RdpConversion::kBalle2020) const;

  std::span<const double> orders() const { return orders_; }
  // Accumulated RDP, one value per order.
  std::span<const double> rdp() const { return rdp_; }
  uint64_t num_steps() const { return num_steps_; }

  // The orders, accumulated RDP and steps, for a checkpoint.
  RdpAccountantState SaveState() const;
  // Replaces this accountant's orders, RDP and steps with `state` (from SaveState, possibly of
  // another process), so that later steps compose onto it: N steps, SaveState, LoadState into a
  // fresh accountant and M more steps give the same RDP as N + M steps on one accountant. Since
  // RDP adds up over any sequence of steps, the later steps may use other sampling rates and
  // noise multipliers. kInvalidArgument, leaving the accountant unchanged, unless the orders are
  // valid (as for the constructor) and `rdp` has one value >= 0 per order.
  [[nodiscard]] Status LoadState(RdpAccountantState state);

 private:
  std::vector<double> orders_;
  std::vector<double> rdp_;
  uint64_t num_steps_ = 0;
};

// Bounds for FindNoiseMultiplier.
struct NoiseSearchOptions {
  Sampling sampling = Sampling::kPoisson;
  RdpConversion conversion = RdpConversion::kBalle2020;
  double max_noise_multiplier = 1e4;  // search gives up above this (kOutOfRange)
  double relative_tolerance = 1e-6;   // bisection stops when hi / lo - 1 is below this
  std::vector<double> orders = DefaultRdpOrders();
};

// The smallest noise multiplier sigma (within options.relative_tolerance, rounded up) for which
// `steps` rounds at sampling rate q give epsilon <= target_epsilon at `delta`. Epsilon falls as
// sigma grows, so bisection on sigma finds it; the returned sigma always meets the target.
// kInvalidArgument unless target_epsilon finite and > 0, q in (0, 1], steps > 0, delta in
// (0, 1), tolerance in (0, 1) and orders valid; kOutOfRange when even
// options.max_noise_multiplier does not reach the target.
Result<double> FindNoiseMultiplier(double target_epsilon, double q, uint64_t steps, double delta,
                                   const NoiseSearchOptions& options = {});

}  // namespace edgefl::privacy

// `edgefl privacy epsilon|noise`: flags for privacy::ComputeRdp, ComputePrivacySpent and
// FindNoiseMultiplier.
#include "privacy_command.h"

#include <CLI/CLI.hpp>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "edgefl/privacy/accountant.h"

namespace edgefl::app {
namespace {

constexpr int kUsageError = 2;
constexpr int kRuntimeError = 1;

struct PrivacyFlags {
  double sampling_rate = 0.0;
  double noise_multiplier = 0.0;
  double target_epsilon = 0.0;
  uint64_t steps = 0;
  double delta = 0.0;
  std::string conversion = "balle";
  std::string sampling = "poisson";
  bool json = false;
};

[[noreturn]] void Fail(const std::string& command, const std::string& message, int exit_code) {
  std::cerr << "edgefl privacy " << command << ": " << message << "\n";
  throw CLI::RuntimeError(exit_code);
}

std::string Number(double value) {
  std::ostringstream out;
  out.precision(17);
  out << value;
  return out.str();
}

// The ranges shared by both subcommands; each message names the flag and the value.
void CheckCommonFlags(const std::string& command, const PrivacyFlags& flags) {
  if (!(flags.sampling_rate > 0.0 && flags.sampling_rate <= 1.0)) {
    Fail(command, "--sampling-rate must be in (0, 1], got " + Number(flags.sampling_rate),
         kUsageError);
  }
  if (!(flags.delta > 0.0 && flags.delta < 1.0)) {
    Fail(command, "--delta must be in (0, 1), got " + Number(flags.delta), kUsageError);
  }
}

privacy::RdpConversion Conversion(const PrivacyFlags& flags) {
  return flags.conversion == "classic" ? privacy::RdpConversion::kClassic
                                       : privacy::RdpConversion::kBalle2020;
}

privacy::Sampling SamplingOf(const PrivacyFlags& flags) {
  return flags.sampling == "fixed" ? privacy::Sampling::kFixedSize : privacy::Sampling::kPoisson;
}

void AddSharedFlags(CLI::App& command, PrivacyFlags& flags) {
  command
      .add_option("--sampling-rate", flags.sampling_rate,
                  "Fraction of the population in each round's cohort, in (0, 1]")
      ->required();
  command.add_option("--steps", flags.steps, "Number of rounds (steps)")->required();
  command.add_option("--delta", flags.delta, "Target delta, in (0, 1)")->required();
  command
      .add_option("--conversion", flags.conversion,
                  "RDP to (epsilon, delta): balle (Balle et al. 2020, tighter) or classic "
                  "(Mironov 2017)")
      ->check(CLI::IsMember({"balle", "classic"}))
      ->capture_default_str();
  command
      .add_option("--sampling", flags.sampling,
                  "poisson (each client joins with probability q) or fixed (exactly q * "
                  "population clients, without replacement; replace-one neighbours)")
      ->check(CLI::IsMember({"poisson", "fixed"}))
      ->capture_default_str();
  command.add_flag("--json", flags.json, "Print one JSON object");
}

void RunEpsilon(const PrivacyFlags& flags) {
  const std::string command = "epsilon";
  CheckCommonFlags(command, flags);
  if (!(std::isfinite(flags.noise_multiplier) && flags.noise_multiplier > 0.0)) {
    Fail(command, "--noise-multiplier must be > 0, got " + Number(flags.noise_multiplier),
         kUsageError);
  }
  const std::vector<double> orders = privacy::DefaultRdpOrders();
  Result<std::vector<double>> rdp = privacy::ComputeRdp(flags.sampling_rate, flags.noise_multiplier,
                                                        flags.steps, orders, SamplingOf(flags));
  if (!rdp.ok()) Fail(command, rdp.status().message(), kUsageError);
  Result<privacy::PrivacySpent> spent =
      privacy::ComputePrivacySpent(orders, *rdp, flags.delta, Conversion(flags));
  if (!spent.ok()) Fail(command, spent.status().message(), kUsageError);
  if (flags.json) {
    nlohmann::json out;
    out["epsilon"] = std::isfinite(spent->epsilon) ? nlohmann::json(spent->epsilon) : nullptr;
    out["best_order"] = spent->best_order;
    std::cout << out.dump() << "\n";
  } else {
    std::cout << "epsilon " << spent->epsilon << " at delta " << flags.delta << " (best RDP order "
              << spent->best_order << ", " << flags.conversion << " conversion, " << flags.sampling
              << " sampling, " << flags.steps << " steps)\n";
  }
}

void RunNoise(const PrivacyFlags& flags) {
  const std::string command = "noise";
  CheckCommonFlags(command, flags);
  if (!(std::isfinite(flags.target_epsilon) && flags.target_epsilon > 0.0)) {
    Fail(command, "--target-epsilon must be > 0, got " + Number(flags.target_epsilon), kUsageError);
  }
  if (flags.steps == 0) Fail(command, "--steps must be > 0", kUsageError);
  privacy::NoiseSearchOptions options;
  options.sampling = SamplingOf(flags);
  options.conversion = Conversion(flags);
  Result<double> sigma = privacy::FindNoiseMultiplier(flags.target_epsilon, flags.sampling_rate,
                                                      flags.steps, flags.delta, options);
  if (!sigma.ok()) {
    Fail(command, sigma.status().message(),
         sigma.status().code() == StatusCode::kOutOfRange ? kRuntimeError : kUsageError);
  }
  if (flags.json) {
    nlohmann::json out;
    out["noise_multiplier"] = *sigma;
    std::cout << out.dump() << "\n";
  } else {
    std::cout << "noise multiplier " << *sigma << " (noise stddev / clip norm) for epsilon "
              << flags.target_epsilon << " at delta " << flags.delta << " over " << flags.steps
              << " steps\n";
  }
}

}  // namespace

void AddPrivacyCommand(CLI::App& app) {
  CLI::App* privacy = app.add_subcommand(
      "privacy",
      "Differential-privacy accounting (Rényi DP of the sampled Gaussian mechanism):\n"
      "`privacy epsilon` gives the epsilon a training run spends, `privacy noise` the noise\n"
      "multiplier a target epsilon needs.");
  privacy->require_subcommand(1);

  auto epsilon_flags = std::make_shared<PrivacyFlags>();
  CLI::App* epsilon = privacy->add_subcommand(
      "epsilon", "Print the epsilon spent by --steps rounds and the best Rényi order");
  epsilon
      ->add_option("--noise-multiplier", epsilon_flags->noise_multiplier,
                   "Noise stddev divided by the clip norm, > 0")
      ->required();
  AddSharedFlags(*epsilon, *epsilon_flags);
  epsilon->callback([epsilon_flags] { RunEpsilon(*epsilon_flags); });

  auto noise_flags = std::make_shared<PrivacyFlags>();
  CLI::App* noise = privacy->add_subcommand(
      "noise", "Print the smallest noise multiplier that keeps epsilon <= --target-epsilon");
  noise->add_option("--target-epsilon", noise_flags->target_epsilon, "Target epsilon, > 0")
      ->required();
  AddSharedFlags(*noise, *noise_flags);
  noise->callback([noise_flags] { RunNoise(*noise_flags); });
}

}  // namespace edgefl::app

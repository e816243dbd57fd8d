// `edgefl simulate`: progress lines, the final summary and the result files.
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <ostream>
#include <string>

#include "edgefl/simulations/simulation.h"

namespace edgefl::simulations {
namespace {

std::string Format(const char* format, double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, format, value);
  return buffer;
}

std::string FormatOrDash(const char* format, double value) {
  return std::isnan(value) ? std::string("-") : Format(format, value);
}

Status WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << text;
  file.close();
  if (!file) return UnavailableError("cannot write '" + path.string() + "'");
  return OkStatus();
}

nlohmann::json RecordJson(const RoundRecord& r) {
  auto number = [](double x) { return std::isnan(x) ? nlohmann::json(nullptr) : nlohmann::json(x); };
  return {{"round", r.round},
          {"train_loss", r.train_loss},
          {"test_loss", number(r.test_loss)},
          {"test_accuracy", number(r.test_accuracy)},
          {"wall_seconds", r.wall_seconds},
          {"sim_seconds", r.sim_seconds},
          {"clients_selected", r.num_clients_selected},
          {"clients_reported", r.num_clients_reported},
          {"clients_dropped", r.num_clients_dropped},
          {"clients_rejected", r.num_clients_rejected},
          {"epsilon", r.epsilon}};
}

}  // namespace

void WriteRoundsCsv(const std::vector<RoundRecord>& records, std::ostream& out) {
  out << "round,train_loss,test_loss,test_accuracy,wall_seconds,sim_seconds,clients_selected,"
         "clients_reported,clients_dropped,clients_rejected,epsilon\n";
  for (const RoundRecord& r : records) {
    out << r.round << ',' << Format("%.6f", r.train_loss) << ','
        << (std::isnan(r.test_loss) ? "" : Format("%.6f", r.test_loss)) << ','
        << (std::isnan(r.test_accuracy) ? "" : Format("%.4f", r.test_accuracy)) << ','
        << Format("%.3f", r.wall_seconds) << ',' << Format("%.3f", r.sim_seconds) << ','
        << r.num_clients_selected << ',' << r.num_clients_reported << ','
        << r.num_clients_dropped << ',' << r.num_clients_rejected << ','
        << Format("%.4f", r.epsilon) << '\n';
  }
}

int RunSimulateCommand(const SimulationConfig& config, std::ostream& out, std::ostream& err) {
  if (Status valid = config.Validate(); !valid.ok()) {
    err << "edgefl simulate: " << valid.message() << "\n";
    return 1;
  }
  const std::filesystem::path dir(config.out);
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    err << "edgefl simulate: cannot create output folder '" << dir.string() << "': "
        << error.message() << "\n";
    return 1;
  }
  if (Status s = WriteFile(dir / "config.toml", FormatConfig(config)); !s.ok()) {
    err << "edgefl simulate: " << s.message() << "\n";
    return 1;
  }

  out << "edgefl simulate: " << config.model << " on Fashion-MNIST, " << config.clients
      << " clients (" << config.partition
      << (config.partition == "dirichlet" ? " alpha=" + Format("%g", config.alpha) : "")
      << "), " << config.clients_per_round << " per round, " << config.rounds << " rounds, "
      << config.strategy << ", seed " << config.seed
      << (config.secagg ? ", secure aggregation" : "")
      << (config.dp != "none" ? ", " + config.dp + " DP (C=" + Format("%g", config.clip) +
                                    ", sigma=" + Format("%g", config.noise_multiplier) + ")"
                              : std::string())
      << (config.dropout > 0 ? ", dropout " + Format("%g", config.dropout) : std::string())
      << "\n";
  out.flush();
  const auto on_round = [&](const RoundRecord& r) {
    out << "round " << r.round << "/" << config.rounds << "  train_loss "
        << Format("%.4f", r.train_loss) << "  test_loss " << FormatOrDash("%.4f", r.test_loss)
        << "  test_acc " << FormatOrDash("%.4f", r.test_accuracy) << "  clients "
        << r.num_clients_reported << "/" << r.num_clients_selected
        << (config.dp != "none" ? "  eps " + Format("%.3f", r.epsilon) : std::string())
        << "  elapsed "
        << Format("%.1f", r.wall_seconds) << "s\n";
    out.flush();
  };
  Result<SimulationResult> result = RunSimulation(config, on_round);
  if (!result.ok()) {
    err << "edgefl simulate: " << result.status().ToString() << "\n";
    return 1;
  }

  std::ofstream csv(dir / "rounds.csv", std::ios::trunc);
  WriteRoundsCsv(result->rounds, csv);
  csv.close();

  double best_accuracy = 0.0;
  size_t best_round = 0;
  nlohmann::json rounds = nlohmann::json::array();
  for (const RoundRecord& r : result->rounds) {
    rounds.push_back(RecordJson(r));
    if (!std::isnan(r.test_accuracy) && r.test_accuracy > best_accuracy) {
      best_accuracy = r.test_accuracy;
      best_round = r.round;
    }
  }
  const RoundRecord& last = result->rounds.back();
  nlohmann::json summary = {
      {"edgefl_version", "0.1.0"},
      {"config_file", (dir / "config.toml").string()},
      {"model", config.model},
      {"num_parameters", result->num_parameters},
      {"label_skew", result->label_skew},
      {"rounds_completed", result->rounds.size()},
      {"final_test_accuracy", last.test_accuracy},
      {"final_test_loss", last.test_loss},
      {"best_test_accuracy", best_accuracy},
      {"best_round", best_round},
      {"wall_seconds", result->wall_seconds},
      {"final_epsilon", last.epsilon},
      {"delta", config.dp != "none" ? nlohmann::json(config.delta) : nlohmann::json(nullptr)},
      {"sim_seconds", last.sim_seconds},
      {"rounds", rounds}};
  if (Status s = WriteFile(dir / "summary.json", summary.dump(2) + "\n"); !s.ok()) {
    err << "edgefl simulate: " << s.message() << "\n";
    return 1;
  }
  out << "done: " << result->rounds.size() << " rounds in " << Format("%.1f", result->wall_seconds)
      << "s; final test accuracy " << Format("%.4f", last.test_accuracy) << " (best "
      << Format("%.4f", best_accuracy) << " at round " << best_round << "); results in "
      << dir.string() << "/{rounds.csv,summary.json,config.toml}\n";
  return 0;
}

}  // namespace edgefl::simulations

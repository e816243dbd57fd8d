// `edgefl coordinator --config coordinator.toml`: flags override the file's keys.
#include "coordinator_command.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <functional>
#include <iostream>
#include <memory>

#include "edgefl/coordinator/service.h"

namespace edgefl::app {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

struct CoordinatorFlags {
  std::string config_path;
  bool print_config = false;
  coordinator::ServiceConfig values;
  std::vector<std::function<void(coordinator::ServiceConfig&)>> overrides;
};

template <typename T>
void Flag(CLI::App& command, CoordinatorFlags& flags, const std::string& name,
          T coordinator::ServiceConfig::*member, const std::string& help) {
  CLI::Option* option = command.add_option(name, flags.values.*member, help);
  flags.overrides.push_back([option, member, &flags](coordinator::ServiceConfig& config) {
    if (option->count() > 0) config.*member = flags.values.*member;
  });
}

}  // namespace

void AddCoordinatorCommand(CLI::App& app, int& exit_code) {
  auto flags = std::make_shared<CoordinatorFlags>();
  CLI::App* command = app.add_subcommand(
      "coordinator",
      "Run the coordinator service: devices connect over ZeroMQ (CURVE), rounds run with the\n"
      "round engine, a checkpoint is written after every round and resumed on start.\n"
      "Optional: Prometheus metrics over HTTP (GET /metrics) and the final model as safetensors.");
  command->add_option("-c,--config", flags->config_path,
                      "TOML file whose keys are the ServiceConfig field names; flags override it")
      ->check(CLI::ExistingFile);
  command->add_flag("--print-config", flags->print_config, "Print the configuration as TOML");
  CoordinatorFlags& f = *flags;
  using C = coordinator::ServiceConfig;
  Flag(*command, f, "--endpoint", &C::endpoint, "ROUTER endpoint, e.g. tcp://*:7878");
  Flag(*command, f, "--endpoint-file", &C::endpoint_file, "Write the bound endpoint here");
  Flag(*command, f, "--rounds", &C::rounds, "Rounds to complete");
  Flag(*command, f, "--min-clients", &C::min_clients, "Devices registered before a round");
  Flag(*command, f, "--clients-per-round", &C::clients_per_round, "Updates wanted per round");
  Flag(*command, f, "--seed", &C::seed, "Experiment seed");
  Flag(*command, f, "--checkpoint", &C::checkpoint, "Checkpoint file (resumed on start)");
  Flag(*command, f, "--save-weights", &C::save_weights, "Write final weights (raw float32)");
  Flag(*command, f, "--export-model", &C::export_model,
       "Write the global model as safetensors (the model's tensor names and shapes) after every "
       "round and at the end");
  Flag(*command, f, "--metrics-address", &C::metrics_address,
       "Serve Prometheus metrics on GET /metrics at host:port, e.g. 127.0.0.1:9464 (port 0 "
       "picks a free port; empty = off)");
  Flag(*command, f, "--metrics-address-file", &C::metrics_address_file,
       "Write the bound metrics host:port here");
  Flag(*command, f, "--round-deadline-seconds", &C::round_deadline_seconds,
       "Round deadline (0 = wait for all)");
  command->add_flag("--insecure-plaintext", f.values.insecure_plaintext,
                    "No CURVE (loopback tests only)");
  command->callback([flags, command, &exit_code] {
    coordinator::ServiceConfig config;
    if (!flags->config_path.empty()) {
      Result<coordinator::ServiceConfig> loaded =
          coordinator::LoadServiceConfig(flags->config_path);
      if (!loaded.ok()) {
        std::cerr << "edgefl coordinator: " << loaded.status().ToString() << "\n";
        exit_code = 2;
        return;
      }
      config = *loaded;
    }
    for (const auto& apply : flags->overrides) apply(config);
    if (command->count("--insecure-plaintext") > 0) config.insecure_plaintext = true;
    if (flags->print_config) {
      std::cout << coordinator::FormatServiceConfig(config);
      return;
    }
    std::signal(SIGTERM, OnSignal);
    std::signal(SIGINT, OnSignal);
    const Status status = coordinator::RunService(config, g_stop);
    if (!status.ok()) {
      std::cerr << "edgefl coordinator: " << status.ToString() << "\n";
      exit_code = 1;
    }
  });
}

}  // namespace edgefl::app

// `edgefl sim-worker --connect ENDPOINT --config exp.toml [--first-device F] [--devices N]`.
#include "sim_worker_command.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <memory>

#include "edgefl/simulations/config.h"
#include "edgefl/simulations/sim_worker.h"

namespace edgefl::app {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

}  // namespace

void AddSimWorkerCommand(CLI::App& app, int& exit_code) {
  struct Flags {
    std::string config_path;
    simulations::SimWorkerOptions options;
    double heartbeat_seconds = 5.0;
    double silence_timeout_seconds = 600.0;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "sim-worker",
      "Host many virtual devices of a simulation experiment and connect them to a coordinator\n"
      "(`edgefl coordinator`) over ZeroMQ, so one experiment spans processes and machines.\n"
      "Devices F..F+N-1 get the data the in-process simulator gives them (same --config as\n"
      "`edgefl simulate`) and ask for ClientId index + 1. `edgefl simulate --workers K` starts\n"
      "a coordinator and K workers on this machine. Exits 0 when the coordinator says Goodbye.");
  command
      ->add_option("--connect", flags->options.endpoint,
                   "Coordinator endpoint, e.g. tcp://10.0.0.1:7878")
      ->required();
  command
      ->add_option("-c,--config", flags->config_path,
                   "Experiment TOML (the keys of `edgefl simulate`)")
      ->required()
      ->check(CLI::ExistingFile);
  command
      ->add_option("--first-device", flags->options.first_device,
                   "0-based index of the first device hosted")
      ->capture_default_str();
  command
      ->add_option("--devices", flags->options.num_devices,
                   "Devices hosted (0 = every device from --first-device on)")
      ->capture_default_str();
  command
      ->add_option("--threads", flags->options.threads,
                   "Training threads (0 = all cores); results do not depend on it")
      ->capture_default_str();
  command->add_option("--secret-key-file", flags->options.secret_key_file,
                      "CURVE secret key (edgefl keygen PREFIX.key) shared by the hosted devices");
  command->add_option("--server-public-key-file", flags->options.server_public_key_file,
                      "The coordinator's CURVE public key (its PREFIX.pub)");
  command->add_flag("--insecure-plaintext", flags->options.insecure_plaintext,
                    "No CURVE (the coordinator must be insecure_plaintext too; loopback only)");
  command
      ->add_option("--heartbeat-seconds", flags->heartbeat_seconds,
                   "Heartbeat period of each hosted device")
      ->capture_default_str();
  command
      ->add_option("--silence-timeout-seconds", flags->silence_timeout_seconds,
                   "Give up when the coordinator sends nothing for this long (must exceed "
                   "the longest round)")
      ->capture_default_str();
  command->callback([flags, &exit_code] {
    Result<simulations::SimulationConfig> config =
        simulations::LoadSimulationConfig(flags->config_path);
    if (!config.ok()) {
      std::cerr << "edgefl sim-worker: " << config.status().message() << "\n";
      exit_code = 2;
      return;
    }
    simulations::SimWorkerOptions options = flags->options;
    options.heartbeat_interval =
        std::chrono::milliseconds(static_cast<int64_t>(flags->heartbeat_seconds * 1000));
    options.silence_timeout =
        std::chrono::milliseconds(static_cast<int64_t>(flags->silence_timeout_seconds * 1000));
    std::signal(SIGTERM, OnSignal);
    std::signal(SIGINT, OnSignal);
    Result<simulations::SimWorkerStats> stats = simulations::RunSimWorker(*config, options, g_stop);
    if (!stats.ok()) {
      std::cerr << "edgefl sim-worker: " << stats.status().ToString() << "\n";
      exit_code = 1;
    }
  });
}

}  // namespace edgefl::app

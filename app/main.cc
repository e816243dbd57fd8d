// edgefl: federated learning for small quantized models on edge devices.
#include <CLI/CLI.hpp>
#include <malloc.h>

#include <string_view>

#include "client_command.h"
#include "commands.h"
#include "coordinator_command.h"
#include "eval_command.h"
#include "keygen_command.h"
#include "privacy_command.h"
#include "quantize_command.h"
#include "sim_worker_command.h"
#include "train_command.h"

namespace {

// Server-side commands move model-sized buffers (1-4 MB frames, decoded updates, ZeroMQ
// receive buffers) through the heap every round. glibc serves each from a fresh mmap and
// unmaps it on free, so every round pays page faults again: bench/transport_compare.py
// --malloc-tuned measured 1.5x faster 100 x 4 MB FedAvg rounds and 6x faster channel receives
// with these thresholds. Device processes keep glibc's defaults (their memory is scarcer).
void TuneAllocatorForServers(int argc, char** argv) {
  if (argc < 2) return;
  const std::string_view command = argv[1];
  if (command != "coordinator" && command != "simulate" && command != "sim-worker") return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace

int main(int argc, char** argv) {
  TuneAllocatorForServers(argc, argv);
  CLI::App app{
      "edgefl: federated learning for small models on edge devices.\n"
      "Run `edgefl simulate` for a federated simulation on Fashion-MNIST, or\n"
      "`edgefl <command> --help` for the options of a command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "edgefl 0.1.0");
  int exit_code = 0;
  edgefl::app::AddSimulateCommand(app, exit_code);
  edgefl::app::AddSimWorkerCommand(app, exit_code);
  edgefl::app::AddPrivacyCommand(app);
  edgefl::app::AddKeygenCommand(app);
  edgefl::app::AddCoordinatorCommand(app, exit_code);
  edgefl::app::AddClientCommand(app, exit_code);
  edgefl::app::AddQuantizeCommand(app, exit_code);
  edgefl::app::AddTrainCommand(app, exit_code);
  edgefl::app::AddEvalCommand(app, exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}

// edgefl: federated learning for small quantized models on edge devices.
#include <CLI/CLI.hpp>

#include "client_command.h"
#include "commands.h"
#include "coordinator_command.h"
#include "eval_command.h"
#include "keygen_command.h"
#include "privacy_command.h"
#include "quantize_command.h"
#include "train_command.h"

int main(int argc, char** argv) {
  CLI::App app{
      "edgefl: federated learning for small models on edge devices.\n"
      "Run `edgefl simulate` for a federated simulation on Fashion-MNIST, or\n"
      "`edgefl <command> --help` for the options of a command."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "edgefl 0.1.0");
  int exit_code = 0;
  edgefl::app::AddSimulateCommand(app, exit_code);
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

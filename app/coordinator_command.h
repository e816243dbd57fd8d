// `edgefl coordinator`: the ZeroMQ coordinator service (coordinator/service.h).
#pragma once

#include <CLI/CLI.hpp>

namespace edgefl::app {

// Registers `coordinator`; stores its exit code in `exit_code` when it runs.
void AddCoordinatorCommand(CLI::App& app, int& exit_code);

}  // namespace edgefl::app

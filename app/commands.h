// The subcommands of `edgefl`; each registers its flags on the CLI11 app and, when chosen,
// calls its module's Run*Command function.
#pragma once

#include <CLI/CLI.hpp>

namespace edgefl::app {

// Each Add*Command stores its exit code in `exit_code` when it runs.
void AddSimulateCommand(CLI::App& app, int& exit_code);

}  // namespace edgefl::app

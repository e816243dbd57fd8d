// `edgefl client`: one device process on a Fashion-MNIST shard (client/device_process.h).
#pragma once

#include <CLI/CLI.hpp>

namespace edgefl::app {

// Registers `client`; stores its exit code in `exit_code` when it runs.
void AddClientCommand(CLI::App& app, int& exit_code);

}  // namespace edgefl::app

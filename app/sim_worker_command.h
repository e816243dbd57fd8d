// `edgefl sim-worker`: hosts many virtual devices of an experiment against a coordinator over
// ZeroMQ (simulations/sim_worker.h).
#pragma once

#include <CLI/CLI.hpp>

namespace edgefl::app {

// Registers `sim-worker`; stores its exit code in `exit_code` when it runs.
void AddSimWorkerCommand(CLI::App& app, int& exit_code);

}  // namespace edgefl::app

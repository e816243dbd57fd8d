// `simulate --workers` when a sim-worker fails at start-up: RunWorkerSimulation stops, names the
// worker and how it ended, and leaves no child behind. Real processes (/bin/false, a missing
// program); a worker killed mid-round is worker_death_test.sh.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <cerrno>
#include <filesystem>
#include <string>

#include "edgefl/simulations/sim_worker.h"
#include "simulations/small_config.h"

namespace edgefl::simulations {
namespace {

SimulationConfig TwoWorkers(const std::string& name) {
  SimulationConfig config = testing::SmallConfig();
  config.workers = 2;
  config.threads = 2;
  const auto dir = std::filesystem::temp_directory_path() / name;
  std::filesystem::remove_all(dir);
  config.out = dir.string();
  return config;
}

// True when this process has no child left, running or zombie.
bool NoChildren() { return waitpid(-1, nullptr, WNOHANG) == -1 && errno == ECHILD; }

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("A sim-worker that exits before connecting stops the simulation with its exit code" *
          doctest::test_suite("integration")) {
  const SimulationConfig config = TwoWorkers("edgefl_worker_exit_test");
  const Result<SimulationResult> result = RunWorkerSimulation(config, {}, "/bin/false");
  REQUIRE_FALSE(result.ok());
  const std::string message = result.status().message();
  INFO(message);
  CHECK(result.status().code() == StatusCode::kInternal);
  // Either worker may be seen first; both exited with false's code.
  const bool first = Contains(message, "sim-worker 0 (pid ") &&
                     Contains(message, ", devices 1..20) exited with code 1 after 0 of 4 rounds");
  const bool second = Contains(message, "sim-worker 1 (pid ") &&
                      Contains(message, ", devices 21..40) exited with code 1 after 0 of 4 rounds");
  CHECK((first || second));
  CHECK(Contains(message, first ? "(stopped sim-worker 1 (pid " : "(stopped sim-worker 0 (pid "));
  CHECK(Contains(message, first ? "worker-0.log is empty" : "worker-1.log is empty"));
  CHECK(NoChildren());
}

TEST_CASE("A sim-worker program that cannot be executed is reported with exit code 127 and why" *
          doctest::test_suite("integration")) {
  const SimulationConfig config = TwoWorkers("edgefl_worker_exec_test");
  const std::string program =
      (std::filesystem::path(config.out) / "no-such-dir" / "edgefl").string();
  const Result<SimulationResult> result = RunWorkerSimulation(config, {}, program);
  REQUIRE_FALSE(result.ok());
  const std::string message = result.status().message();
  INFO(message);
  CHECK(Contains(message, "exited with code 127 (could not be executed) after 0 of 4 rounds"));
  CHECK(Contains(message, ".log ends:\n  edgefl simulate: cannot execute '" + program + "'"));
  CHECK(NoChildren());
}

}  // namespace
}  // namespace edgefl::simulations

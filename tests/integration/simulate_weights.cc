// Test helper: runs `edgefl simulate`'s RunSimulation from a TOML config and writes the final
// global weights as raw float32, so the process-based service can be compared with it.
// Usage: edgefl_simulate_weights CONFIG.toml WEIGHTS.bin
#include <fstream>
#include <iostream>

#include "edgefl/simulations/config.h"
#include "edgefl/simulations/simulation.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: edgefl_simulate_weights CONFIG.toml WEIGHTS.bin\n";
    return 2;
  }
  auto config = edgefl::simulations::LoadSimulationConfig(argv[1]);
  if (!config.ok()) {
    std::cerr << config.status().ToString() << "\n";
    return 1;
  }
  auto result = edgefl::simulations::RunSimulation(*config, {});
  if (!result.ok()) {
    std::cerr << result.status().ToString() << "\n";
    return 1;
  }
  std::ofstream out(argv[2], std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(result->final_weights.data()),
            static_cast<std::streamsize>(result->final_weights.size() * sizeof(float)));
  std::cout << "simulated " << result->rounds.size() << " rounds, "
            << result->final_weights.size() << " weights\n";
  return out ? 0 : 1;
}

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "../../simulations/src/svg_plot.h"
#include "edgefl/simulations/config.h"
#include "edgefl/simulations/simulation.h"

namespace edgefl::simulations {
namespace {

std::string Slurp(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_CASE("The SVG plot writer draws one polyline per series and skips NaN points") {
  LinePlot plot{"Accuracy <test>", "round", "accuracy", {}};
  plot.series.push_back({"a", {1, 2, 3}, {0.1, std::nan(""), 0.3}});
  plot.series.push_back({"b", {1, 2}, {0.2, 0.4}});
  const std::string svg = RenderSvg(plot);
  CHECK(svg.rfind("<svg xmlns=\"http://www.w3.org/2000/svg\"", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(svg.find("Accuracy &lt;test&gt;") != std::string::npos);
  size_t polylines = 0;
  for (size_t at = svg.find("<polyline"); at != std::string::npos;
       at = svg.find("<polyline", at + 1)) {
    ++polylines;
  }
  CHECK(polylines == 2);
  CHECK(svg.find("nan") == std::string::npos);
  CHECK(RenderSvg(LinePlot{}).find("</svg>") != std::string::npos);
}

TEST_CASE("A seed list parses and a malformed one names the field") {
  SimulationConfig config;
  config.seed = 9;
  CHECK(config.SeedList().value() == std::vector<uint64_t>{9});
  config.seeds = "1, 2,3";
  CHECK(config.SeedList().value() == std::vector<uint64_t>{1, 2, 3});
  config.seeds = "1,x";
  CHECK(config.Validate().message().find("seeds") != std::string::npos);
}

TEST_CASE("Several seeds in one call write each run, the mean and spread, and the plots") {
  SimulationConfig config;
  config.model = "logreg";
  config.clients = 20;
  config.clients_per_round = 4;
  config.rounds = 2;
  config.batch_size = 50;
  config.lr = 0.02;
  config.threads = 2;
  config.seeds = "1,2";
  const auto dir = std::filesystem::temp_directory_path() / "edgefl_seeds_test";
  std::filesystem::remove_all(dir);
  config.out = dir.string();
  std::ostringstream out, err;
  REQUIRE_MESSAGE(RunSimulateCommand(config, out, err) == 0, err.str());
  for (const char* name : {"seed-1/rounds.csv", "seed-2/summary.json", "seed-1/participation.svg",
                           "seed-2/accuracy_vs_time.svg", "seeds.json",
                           "accuracy_vs_round_seeds.svg"}) {
    CHECK_MESSAGE(std::filesystem::exists(dir / name), name);
  }
  std::istringstream csv(Slurp(dir / "seeds.csv"));
  std::string header, first;
  std::getline(csv, header);
  std::getline(csv, first);
  CHECK(header.rfind("round,seeds,test_accuracy_mean,test_accuracy_std", 0) == 0);
  CHECK(first.rfind("1,2,0.", 0) == 0);
  CHECK(out.str().find("+-") != std::string::npos);
}

}  // namespace
}  // namespace edgefl::simulations

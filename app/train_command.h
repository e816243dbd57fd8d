// `edgefl train` (central training) and the data loading it shares with `edgefl eval`.
//
// Trains one model on one machine, without federation: charlm on Debian's fortunes (next-byte
// prediction; reports held-out perplexity) or a classifier on Fashion-MNIST (reports test
// accuracy), then saves a safetensors checkpoint (models/checkpoint.h). The held-out set of
// fortunes is the last 10% of each category's windows, so `edgefl eval` with the same categories
// scores the same text. Runs on the calling thread (plus models' OpenMP threads).
//
//   CLI::App app{"edgefl"};
//   int exit_code = 0;
//   edgefl::app::AddTrainCommand(app, exit_code);  // edgefl train --model charlm --steps 500
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/models/dataset.h"

namespace CLI {
class App;
}  // namespace CLI

namespace edgefl::app {

// Adds the `train` subcommand to `app`. When it runs it stores 0 in `exit_code` on success, 1 when
// loading, training or saving fails and 2 for a bad flag value (the error on stderr).
void AddTrainCommand(CLI::App& app, int& exit_code);

// Where the data of `edgefl train` and `edgefl eval` comes from.
struct DataSource {
  std::string data = "fortunes";        // "fortunes" or "fashion-mnist"
  std::string data_dir;                 // empty: the Debian package's folder
  std::vector<std::string> categories;  // fortunes only; empty: every category
};

struct TrainEvalData {
  models::Dataset train;
  models::Dataset test;  // fortunes: the held-out 10%; fashion-mnist: the t10k split
};

// Fraction of each fortunes category's windows held out for evaluation (its tail).
inline constexpr double kHeldOutFraction = 0.1;

// Loads `source`, windowed into examples of `context` bytes for fortunes. kInvalidArgument for an
// unknown data name; the loaders' errors otherwise (kNotFound naming the Debian package).
Result<TrainEvalData> LoadTrainEvalData(const DataSource& source, size_t context);

}  // namespace edgefl::app

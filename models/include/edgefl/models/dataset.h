// Dataset: labelled examples held once in memory and shared read-only by every client.
//
// A virtual device owns only indices into a Dataset (DESIGN.md, "Data layout"). Features are
// float32, row-major, one example of `example_size` floats after another, scaled to [0, 1] for
// images. Immutable after loading; safe to read from any number of threads.
//
//   EDGEFL_ASSIGN_OR_RETURN(Dataset train, LoadFashionMnist(kDefaultFashionMnistDir, Split::kTrain));
//   std::span<const float> x0 = train.Example(0);
//   int label0 = train.labels[0];
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/status.h"

namespace edgefl::models {

struct Dataset {
  std::string name;                  // "fashion-mnist/train"
  size_t num_examples = 0;
  std::vector<int64_t> example_shape;  // {1, 28, 28} for IDX images (channels, rows, cols)
  size_t example_size = 0;           // product of example_shape
  size_t num_classes = 0;
  std::vector<float> features;       // num_examples * example_size
  std::vector<uint8_t> labels;       // num_examples * targets_per_example, each < num_classes
  // Labels per example: 1 for classification, T for next-token prediction over T positions
  // (text_data.h); example i's labels are [i * targets_per_example, (i + 1) * ...).
  size_t targets_per_example = 1;

  std::span<const float> Example(size_t i) const {
    return std::span<const float>(features).subspan(i * example_size, example_size);
  }
};

enum class Split { kTrain, kTest };

// Where Debian's `dataset-fashion-mnist` package puts the gzip'd IDX files.
inline constexpr const char* kDefaultFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Reads an IDX image file (magic 0x00000803, uint8 pixels, gzip'd or plain) and its IDX label
// file (magic 0x00000801). Pixels are scaled to [0, 1]. kNotFound when a file is missing,
// kDataLoss when a header, a size or a label is inconsistent.
Result<Dataset> LoadIdx(const std::filesystem::path& images, const std::filesystem::path& labels,
                        size_t num_classes);

// Fashion-MNIST from `dir` (train-*-ubyte.gz / t10k-*-ubyte.gz). A missing file gives kNotFound
// whose message names the Debian package `dataset-fashion-mnist`.
Result<Dataset> LoadFashionMnist(const std::filesystem::path& dir, Split split);

// Mean and standard deviation over every feature value of a dataset.
struct FeatureMoments {
  double mean = 0.0;
  double stddev = 1.0;
};
FeatureMoments ComputeFeatureMoments(const Dataset& data);

// x <- (x - mean) / stddev for every feature value. Use the training set's moments for both
// the training and the test set. Precondition: stddev > 0 (checked).
void StandardizeFeatures(Dataset& data, const FeatureMoments& moments);

}  // namespace edgefl::models

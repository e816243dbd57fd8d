// Text data for byte-level language models: the plain-text files of Debian's `fortunes` package,
// cut into fixed windows of next-byte prediction examples.
//
// A category is one fortune file ("computers", "art", ...) read whole as bytes. A sequence Dataset
// holds one example per window: features = T byte ids stored as floats, labels = the T next bytes
// (targets_per_example = T). Loading reads files and allocates; the results are plain values,
// immutable after loading and safe to read from any number of threads.
//
//   EDGEFL_ASSIGN_OR_RETURN(auto texts, LoadTextCategories(kDefaultFortunesDir, {"computers"}));
//   Dataset train = MakeSequenceDataset(texts[0].bytes, /*context=*/128);
//   // train.labels[i * 128 + t] is the byte after train.features[i * 128 + t].
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/models/dataset.h"

namespace edgefl::models {

// Where Debian's `fortunes` package puts its text files.
inline constexpr const char* kDefaultFortunesDir = "/usr/share/games/fortunes";

// Largest fortune file read (64 MiB; the largest Debian ships is 245 KB).
inline constexpr uintmax_t kMaxTextFileBytes = uintmax_t{64} << 20;

struct TextCategory {
  std::string name;            // the file name, e.g. "computers"
  std::vector<uint8_t> bytes;  // the whole file
};

// The category names in `dir`: regular files not ending in .dat or .u8 (the strfile index and the
// UTF-8 copies) and not starting with '.', sorted. kNotFound naming the package `fortunes` when
// `dir` does not exist or holds no such file.
Result<std::vector<std::string>> ListTextCategories(const std::filesystem::path& dir);

// Reads each named category of `dir` in the order given; all of them when `categories` is empty.
// kNotFound naming the package `fortunes` when `dir` or a named file is missing (with the known
// names), kInvalidArgument for a name with '/' or a .dat/.u8 suffix, kResourceExhausted for a file
// over kMaxTextFileBytes, kUnavailable when a file cannot be read.
Result<std::vector<TextCategory>> LoadTextCategories(
    const std::filesystem::path& dir = kDefaultFortunesDir,
    std::span<const std::string> categories = {});

// Cuts `bytes` into floor((size - 1) / context) non-overlapping windows of context + 1 bytes
// (consecutive windows share their boundary byte: window i covers bytes [i T, (i + 1) T]). Example
// i has features bytes[i T .. i T + T) as floats and labels bytes[i T + 1 .. i T + T].
// example_shape {T}, num_classes 256, targets_per_example T. Precondition (checked): context > 0.
Dataset MakeSequenceDataset(std::span<const uint8_t> bytes, size_t context,
                            std::string name = "text");

// Appends every example of `more` to `data`. Preconditions (checked): same example_size,
// num_classes and targets_per_example, or `data` empty (then it becomes a copy of `more`).
void AppendExamples(Dataset& data, const Dataset& more);

// One client per category over one shared Dataset (for the simulator), with a held-out tail.
struct CategoryPartition {
  Dataset train;  // every category's first windows, concatenated in category order
  Dataset test;   // every category's last held_out_fraction of windows
  std::vector<std::string> client_names;                   // one per category
  std::vector<std::vector<uint32_t>> client_indices;       // into `train`, one list per category
  std::vector<std::vector<uint32_t>> client_test_indices;  // into `test`
};

// Windows each category with MakeSequenceDataset and keeps the last floor(held_out_fraction *
// windows) of each for `test` (at least one when a category has two or more windows and the
// fraction is > 0). Categories with no window are skipped. kInvalidArgument when held_out_fraction
// is outside [0, 1) or no category yields a training window.
Result<CategoryPartition> PartitionByCategory(std::span<const TextCategory> categories,
                                              size_t context, double held_out_fraction = 0.1);

}  // namespace edgefl::models

#include "edgefl/models/text_data.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <system_error>

#include "edgefl/common/check.h"
#include "edgefl/common/strings.h"

namespace edgefl::models {
namespace {

constexpr const char* kPackageHint = " (install Debian's package `fortunes`)";

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsTextCategoryName(std::string_view name) {
  return !name.empty() && name.front() != '.' && !EndsWith(name, ".dat") && !EndsWith(name, ".u8");
}

Result<std::vector<uint8_t>> ReadWholeFile(const std::filesystem::path& path) {
  std::error_code error;
  const uintmax_t size = std::filesystem::file_size(path, error);
  if (error) return UnavailableError("cannot stat " + path.string() + ": " + error.message());
  if (size > kMaxTextFileBytes) {
    return ResourceExhaustedError(path.string() + " has " + std::to_string(size) +
                                  " bytes, more than the limit of " +
                                  std::to_string(kMaxTextFileBytes));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return UnavailableError("cannot open " + path.string());
  std::vector<uint8_t> bytes(static_cast<size_t>(size));
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (static_cast<uintmax_t>(in.gcount()) != size) {
    return UnavailableError("short read of " + path.string() + ": " + std::to_string(in.gcount()) +
                            " of " + std::to_string(size) + " bytes");
  }
  return bytes;
}

// Examples [begin, end) of `data` as a new Dataset.
Dataset Subset(const Dataset& data, size_t begin, size_t end, std::string name) {
  Dataset out;
  out.name = std::move(name);
  out.num_examples = end - begin;
  out.example_shape = data.example_shape;
  out.example_size = data.example_size;
  out.num_classes = data.num_classes;
  out.targets_per_example = data.targets_per_example;
  out.features.assign(data.features.begin() + begin * data.example_size,
                      data.features.begin() + end * data.example_size);
  out.labels.assign(data.labels.begin() + begin * data.targets_per_example,
                    data.labels.begin() + end * data.targets_per_example);
  return out;
}

}  // namespace

Result<std::vector<std::string>> ListTextCategories(const std::filesystem::path& dir) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) {
    return NotFoundError("text folder " + dir.string() + " not found" + kPackageHint);
  }
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (IsTextCategoryName(name) && entry.is_regular_file(error)) names.push_back(name);
  }
  if (error) return UnavailableError("cannot list " + dir.string() + ": " + error.message());
  if (names.empty()) {
    return NotFoundError("no fortune text files in " + dir.string() + kPackageHint);
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<std::vector<TextCategory>> LoadTextCategories(const std::filesystem::path& dir,
                                                     std::span<const std::string> categories) {
  EDGEFL_ASSIGN_OR_RETURN(std::vector<std::string> known, ListTextCategories(dir));
  std::vector<std::string> wanted(categories.begin(), categories.end());
  if (wanted.empty()) wanted = known;
  std::vector<TextCategory> result;
  for (const std::string& name : wanted) {
    if (name.find('/') != std::string::npos || !IsTextCategoryName(name)) {
      return InvalidArgumentError("'" + name +
                                  "' is not a text category name (a fortune file name such as "
                                  "'computers', without .dat or .u8)");
    }
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      return NotFoundError("text category '" + name + "' not found in " + dir.string() +
                           DidYouMean(name, known) + "; known: " + JoinNames(known) + kPackageHint);
    }
    EDGEFL_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, ReadWholeFile(dir / name));
    result.push_back(TextCategory{.name = name, .bytes = std::move(bytes)});
  }
  return result;
}

Dataset MakeSequenceDataset(std::span<const uint8_t> bytes, size_t context, std::string name) {
  EDGEFL_CHECK(context > 0);
  Dataset data;
  data.name = std::move(name);
  data.num_examples = bytes.size() < 2 ? 0 : (bytes.size() - 1) / context;
  data.example_shape = {static_cast<int64_t>(context)};
  data.example_size = context;
  data.num_classes = 256;
  data.targets_per_example = context;
  data.features.resize(data.num_examples * context);
  data.labels.resize(data.num_examples * context);
  for (size_t i = 0; i < data.num_examples * context; ++i) {
    data.features[i] = static_cast<float>(bytes[i]);
    data.labels[i] = bytes[i + 1];
  }
  return data;
}

void AppendExamples(Dataset& data, const Dataset& more) {
  if (data.num_examples == 0 && data.features.empty()) {
    const std::string name = data.name;
    data = more;
    if (!name.empty()) data.name = name;
    return;
  }
  EDGEFL_CHECK_EQ(data.example_size, more.example_size);
  EDGEFL_CHECK_EQ(data.num_classes, more.num_classes);
  EDGEFL_CHECK_EQ(data.targets_per_example, more.targets_per_example);
  data.features.insert(data.features.end(), more.features.begin(), more.features.end());
  data.labels.insert(data.labels.end(), more.labels.begin(), more.labels.end());
  data.num_examples += more.num_examples;
}

Result<CategoryPartition> PartitionByCategory(std::span<const TextCategory> categories,
                                              size_t context, double held_out_fraction) {
  if (!(held_out_fraction >= 0.0 && held_out_fraction < 1.0)) {
    return InvalidArgumentError("held_out_fraction must be in [0, 1), got " +
                                std::to_string(held_out_fraction));
  }
  if (context == 0) return InvalidArgumentError("context must be > 0");
  CategoryPartition partition;
  partition.train.name = "text/train";
  partition.test.name = "text/test";
  for (const TextCategory& category : categories) {
    const Dataset all = MakeSequenceDataset(category.bytes, context, category.name);
    if (all.num_examples == 0) continue;
    size_t held_out =
        static_cast<size_t>(std::floor(held_out_fraction * static_cast<double>(all.num_examples)));
    if (held_out == 0 && held_out_fraction > 0.0 && all.num_examples >= 2) held_out = 1;
    const size_t num_train = all.num_examples - held_out;
    std::vector<uint32_t> train_indices(num_train);
    for (size_t i = 0; i < num_train; ++i) {
      train_indices[i] = static_cast<uint32_t>(partition.train.num_examples + i);
    }
    std::vector<uint32_t> test_indices(held_out);
    for (size_t i = 0; i < held_out; ++i) {
      test_indices[i] = static_cast<uint32_t>(partition.test.num_examples + i);
    }
    AppendExamples(partition.train, Subset(all, 0, num_train, category.name));
    AppendExamples(partition.test, Subset(all, num_train, all.num_examples, category.name));
    partition.client_names.push_back(category.name);
    partition.client_indices.push_back(std::move(train_indices));
    partition.client_test_indices.push_back(std::move(test_indices));
  }
  if (partition.train.num_examples == 0) {
    return InvalidArgumentError("no category has a window of " + std::to_string(context + 1) +
                                " bytes");
  }
  // An empty test set still has the shapes of the training set.
  if (partition.test.num_examples == 0) {
    partition.test = Subset(partition.train, 0, 0, "text/test");
  }
  partition.train.name = "text/train";
  partition.test.name = "text/test";
  return partition;
}

}  // namespace edgefl::models

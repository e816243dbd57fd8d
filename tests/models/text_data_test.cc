#include "edgefl/models/text_data.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "edgefl/models/training.h"

namespace edgefl::models {
namespace {

// A fresh empty folder under the system temp dir, removed at scope exit.
struct TempDir {
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("edgefl_text_data_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void Write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
  }
  std::filesystem::path path;
};

TEST_CASE(
    "The fortunes package's 'computers' category loads and its windows "
    "line up") {
  const std::vector<std::string> names = {"computers"};
  Result<std::vector<TextCategory>> texts = LoadTextCategories(kDefaultFortunesDir, names);
  REQUIRE_MESSAGE(texts.ok(), texts.status().ToString());
  REQUIRE(texts->size() == 1);
  const std::vector<uint8_t>& bytes = (*texts)[0].bytes;
  CHECK((*texts)[0].name == "computers");
  CHECK(bytes.size() > 100000);

  const size_t context = 128;
  const Dataset data = MakeSequenceDataset(bytes, context, "computers");
  CHECK(data.num_examples == (bytes.size() - 1) / context);
  CHECK(data.example_shape == std::vector<int64_t>{128});
  CHECK(data.num_classes == 256);
  CHECK(data.targets_per_example == context);
  REQUIRE(data.labels.size() == data.num_examples * context);
  for (size_t i : {size_t{0}, size_t{1}, data.num_examples - 1}) {
    for (size_t t = 0; t < context; ++t) {
      CHECK(data.features[i * context + t] == static_cast<float>(bytes[i * context + t]));
      CHECK(data.labels[i * context + t] == bytes[i * context + t + 1]);
    }
  }
  // The last target of window i is the first input of window i + 1.
  CHECK(data.features[context] == static_cast<float>(data.labels[context - 1]));

  Result<std::vector<std::string>> all = ListTextCategories(kDefaultFortunesDir);
  REQUIRE(all.ok());
  for (const std::string& name : *all) {
    CHECK(name.find(".dat") == std::string::npos);
    CHECK(name.find(".u8") == std::string::npos);
  }
}

TEST_CASE(
    "Loading text from a folder without fortune files is kNotFound "
    "naming the package") {
  TempDir dir;
  Result<std::vector<TextCategory>> empty = LoadTextCategories(dir.path);
  CHECK(empty.status().code() == StatusCode::kNotFound);
  CHECK(empty.status().message().find("fortunes") != std::string::npos);

  dir.Write("art.dat", "index");
  dir.Write("art.u8", "utf8");
  CHECK(LoadTextCategories(dir.path).status().code() == StatusCode::kNotFound);

  CHECK(LoadTextCategories(dir.path / "missing").status().code() == StatusCode::kNotFound);

  dir.Write("art", "0123456789");
  const std::vector<std::string> wrong = {"arts"};
  const Status missing = LoadTextCategories(dir.path, wrong).status();
  CHECK(missing.code() == StatusCode::kNotFound);
  CHECK(missing.message().find("did you mean 'art'") != std::string::npos);
  const std::vector<std::string> index = {"art.dat"};
  CHECK(LoadTextCategories(dir.path, index).status().code() == StatusCode::kInvalidArgument);

  Result<std::vector<TextCategory>> art = LoadTextCategories(dir.path);
  REQUIRE(art.ok());
  REQUIRE(art->size() == 1);
  CHECK((*art)[0].bytes == std::vector<uint8_t>{'0', '1', '2', '3', '4', '5', '6', '7', '8', '9'});
}

TEST_CASE(
    "PartitionByCategory gives one client per category and holds out "
    "each tail") {
  std::vector<TextCategory> categories(3);
  categories[0] = {.name = "a", .bytes = std::vector<uint8_t>(41, 'a')};  // 10 windows of 4
  categories[1] = {.name = "b", .bytes = std::vector<uint8_t>(3, 'b')};   // none: skipped
  categories[2] = {.name = "c", .bytes = std::vector<uint8_t>(21, 'c')};  // 5 windows
  Result<CategoryPartition> partition = PartitionByCategory(categories, 4, 0.1);
  REQUIRE(partition.ok());
  CHECK(partition->client_names == std::vector<std::string>{"a", "c"});
  CHECK(partition->train.num_examples == 9 + 4);
  CHECK(partition->test.num_examples == 1 + 1);
  CHECK(partition->client_indices[0] == std::vector<uint32_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(partition->client_indices[1] == std::vector<uint32_t>{9, 10, 11, 12});
  CHECK(partition->client_test_indices[1] == std::vector<uint32_t>{1});
  CHECK(partition->train.features[9 * 4] == 'c');
  CHECK(partition->test.labels.size() == 2 * 4);
  CHECK(partition->train.targets_per_example == 4);

  CHECK(PartitionByCategory(categories, 4, 1.0).status().code() == StatusCode::kInvalidArgument);
  CHECK(PartitionByCategory(std::span<const TextCategory>(categories).subspan(1, 1), 4, 0.1)
            .status()
            .code() == StatusCode::kInvalidArgument);
}

TEST_CASE("Perplexity is exp of the mean loss in nats") {
  CHECK(Perplexity(0.0) == 1.0);
  CHECK(Perplexity(std::log(256.0)) == doctest::Approx(256.0));
}

}  // namespace
}  // namespace edgefl::models

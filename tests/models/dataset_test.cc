#include "edgefl/models/dataset.h"

#include <doctest/doctest.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace edgefl::models {
namespace {

namespace fs = std::filesystem;

// A fresh directory of this process under the system's temp area, removed afterwards.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(fs::temp_directory_path() /
              ("edgefl_models_test_" + std::to_string(::getpid()) + "_" + name)) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void AppendBigEndian(std::vector<uint8_t>& bytes, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<uint8_t>(v >> shift));
}

std::vector<uint8_t> ImageFile(uint32_t count, uint32_t rows, uint32_t cols,
                               uint32_t magic = 0x00000803) {
  std::vector<uint8_t> bytes;
  AppendBigEndian(bytes, magic);
  AppendBigEndian(bytes, count);
  AppendBigEndian(bytes, rows);
  AppendBigEndian(bytes, cols);
  for (uint32_t i = 0; i < count * rows * cols; ++i) bytes.push_back(static_cast<uint8_t>(i * 37));
  return bytes;
}

std::vector<uint8_t> LabelFile(const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> bytes;
  AppendBigEndian(bytes, 0x00000801);
  AppendBigEndian(bytes, static_cast<uint32_t>(labels.size()));
  bytes.insert(bytes.end(), labels.begin(), labels.end());
  return bytes;
}

void WritePlain(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

void WriteGzip(const fs::path& path, const std::vector<uint8_t>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  REQUIRE(gzclose(file) == Z_OK);
}

TEST_CASE("LoadIdx reads plain and gzip'd IDX files and scales pixels to [0, 1]") {
  TempDir dir("roundtrip");
  const std::vector<uint8_t> images = ImageFile(3, 2, 2);
  const std::vector<uint8_t> labels = LabelFile({2, 0, 1});
  WritePlain(dir.path() / "images", images);
  WritePlain(dir.path() / "labels", labels);
  WriteGzip(dir.path() / "images.gz", images);
  WriteGzip(dir.path() / "labels.gz", labels);

  for (const char* suffix : {"", ".gz"}) {
    CAPTURE(suffix);
    Result<Dataset> data = LoadIdx(dir.path() / (std::string("images") + suffix),
                                   dir.path() / (std::string("labels") + suffix), 3);
    REQUIRE(data.ok());
    CHECK(data->num_examples == 3);
    CHECK(data->example_shape == std::vector<int64_t>{1, 2, 2});
    CHECK(data->example_size == 4);
    CHECK(data->num_classes == 3);
    CHECK(data->labels == std::vector<uint8_t>{2, 0, 1});
    REQUIRE(data->features.size() == 12);
    for (size_t i = 0; i < 12; ++i) {
      CHECK(data->features[i] == static_cast<float>(images[16 + i]) * (1.0f / 255.0f));
    }
    CHECK(data->Example(2)[0] == data->features[8]);
  }
}

TEST_CASE("LoadIdx rejects every truncation of a valid file without crashing") {
  TempDir dir("truncated");
  const std::vector<uint8_t> images = ImageFile(3, 2, 2);
  const std::vector<uint8_t> labels = LabelFile({2, 0, 1});
  WritePlain(dir.path() / "labels", labels);
  WritePlain(dir.path() / "images", images);
  for (size_t n = 0; n < images.size(); ++n) {
    CAPTURE(n);
    WritePlain(dir.path() / "short_images",
               std::vector<uint8_t>(images.begin(), images.begin() + n));
    const Status status = LoadIdx(dir.path() / "short_images", dir.path() / "labels", 3).status();
    CHECK(status.code() == StatusCode::kDataLoss);
  }
  for (size_t n = 0; n < labels.size(); ++n) {
    CAPTURE(n);
    WriteGzip(dir.path() / "short_labels.gz",
              std::vector<uint8_t>(labels.begin(), labels.begin() + n));
    const Status status =
        LoadIdx(dir.path() / "images", dir.path() / "short_labels.gz", 3).status();
    CHECK(status.code() == StatusCode::kDataLoss);
  }
}

TEST_CASE("LoadIdx rejects corrupt headers, labels and payloads") {
  TempDir dir("corrupt");
  const fs::path images = dir.path() / "images";
  const fs::path labels = dir.path() / "labels";
  WritePlain(labels, LabelFile({2, 0, 1}));

  SUBCASE("bad magic") {
    WritePlain(images, ImageFile(3, 2, 2, /*magic=*/0x00000801));
    const Status status = LoadIdx(images, labels, 3).status();
    CHECK(status.code() == StatusCode::kDataLoss);
    CHECK(status.message().find("magic") != std::string::npos);
  }
  SUBCASE("label out of range") {
    WritePlain(images, ImageFile(3, 2, 2));
    const Status status = LoadIdx(images, labels, 2).status();
    CHECK(status.code() == StatusCode::kDataLoss);
    CHECK(status.message().find("label 2") != std::string::npos);
  }
  SUBCASE("counts disagree") {
    WritePlain(images, ImageFile(4, 2, 2));
    CHECK(LoadIdx(images, labels, 3).status().code() == StatusCode::kDataLoss);
  }
  SUBCASE("a header that claims more than the size limit, before any allocation") {
    std::vector<uint8_t> bytes;
    for (uint32_t v : {0x00000803u, 3u, 0xFFFFFFFFu, 0xFFFFFFFFu}) AppendBigEndian(bytes, v);
    WritePlain(images, bytes);
    const Status status = LoadIdx(images, labels, 3).status();
    CHECK(status.code() == StatusCode::kDataLoss);
    CHECK(status.message().find("limit") != std::string::npos);
  }
  SUBCASE("zero-sized images") {
    WritePlain(images, ImageFile(3, 0, 2));
    CHECK(LoadIdx(images, labels, 3).status().code() == StatusCode::kDataLoss);
  }
  SUBCASE("bytes past the stated size") {
    std::vector<uint8_t> bytes = ImageFile(3, 2, 2);
    bytes.push_back(0);
    WritePlain(images, bytes);
    CHECK(LoadIdx(images, labels, 3).status().code() == StatusCode::kDataLoss);
  }
  SUBCASE("a corrupt gzip stream") {
    WriteGzip(dir.path() / "images.gz", ImageFile(3, 2, 2));
    std::fstream file(dir.path() / "images.gz", std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(12);
    const char garbage[8] = {'\x7f', '\x01', '\x55', '\x33', '\x00', '\xff', '\x12', '\x34'};
    file.write(garbage, sizeof garbage);
    file.close();
    CHECK(LoadIdx(dir.path() / "images.gz", labels, 3).status().code() == StatusCode::kDataLoss);
  }
  SUBCASE("a missing file") {
    CHECK(LoadIdx(dir.path() / "nope", labels, 3).status().code() == StatusCode::kNotFound);
  }
  SUBCASE("num_classes that uint8 labels cannot hold") {
    WritePlain(images, ImageFile(3, 2, 2));
    CHECK(LoadIdx(images, labels, 0).status().code() == StatusCode::kInvalidArgument);
    CHECK(LoadIdx(images, labels, 257).status().code() == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("LoadFashionMnist names the Debian package when the files are missing") {
  TempDir dir("empty");
  const Status status = LoadFashionMnist(dir.path(), Split::kTrain).status();
  CHECK(status.code() == StatusCode::kNotFound);
  CHECK(status.message().find("dataset-fashion-mnist") != std::string::npos);
}

TEST_CASE("LoadFashionMnist reads the real test split") {
  Result<Dataset> test = LoadFashionMnist(kDefaultFashionMnistDir, Split::kTest);
  REQUIRE_MESSAGE(test.ok(), test.status().ToString());
  CHECK(test->name == "fashion-mnist/test");
  CHECK(test->num_examples == 10000);
  CHECK(test->example_shape == std::vector<int64_t>{1, 28, 28});
  CHECK(test->example_size == 784);
  CHECK(test->num_classes == 10);
  CHECK(std::vector<uint8_t>(test->labels.begin(), test->labels.begin() + 10) ==
        std::vector<uint8_t>{9, 2, 1, 1, 6, 1, 4, 6, 5, 7});
  CHECK(*std::max_element(test->labels.begin(), test->labels.end()) == 9);
  CHECK(*std::min_element(test->features.begin(), test->features.end()) == 0.0f);
  CHECK(*std::max_element(test->features.begin(), test->features.end()) == 1.0f);
  // The pixel sum of the first image is 33456 / 255 (computed from the raw bytes).
  double sum = 0.0;
  for (float x : test->Example(0)) sum += x;
  CHECK(sum == doctest::Approx(33456.0 / 255.0).epsilon(1e-6));
}

TEST_CASE("LoadFashionMnist reads the real train split") {
  Result<Dataset> train = LoadFashionMnist(kDefaultFashionMnistDir, Split::kTrain);
  REQUIRE_MESSAGE(train.ok(), train.status().ToString());
  CHECK(train->name == "fashion-mnist/train");
  CHECK(train->num_examples == 60000);
  CHECK(train->features.size() == 60000u * 784u);
  CHECK(std::vector<uint8_t>(train->labels.begin(), train->labels.begin() + 10) ==
        std::vector<uint8_t>{9, 0, 0, 3, 0, 2, 7, 2, 5, 5});
  std::vector<size_t> per_class(10, 0);
  for (uint8_t label : train->labels) ++per_class[label];
  // Fashion-MNIST is balanced: 6,000 training images per class.
  CHECK(per_class == std::vector<size_t>(10, 6000));
}

}  // namespace
}  // namespace edgefl::models

#include "edgefl/models/layout.h"

#include <doctest/doctest.h>

#include <numeric>
#include <vector>

namespace edgefl::models {
namespace {

ParameterLayout TwoLayerLayout() {
  ParameterLayout layout;
  layout.Add("fc1.weight", {3, 4});
  layout.Add("fc1.bias", {3});
  layout.Add("fc2.weight", {2, 3});
  return layout;
}

TEST_CASE("ParameterLayout places tensors one after the other") {
  ParameterLayout layout;
  CHECK(layout.Add("fc1.weight", {3, 4}) == 0);
  CHECK(layout.Add("fc1.bias", {3}) == 12);
  CHECK(layout.Add("fc2.weight", {2, 3}) == 15);
  CHECK(layout.size() == 21);
  REQUIRE(layout.specs().size() == 3);
  CHECK(layout.specs()[1] ==
        ParameterSpec{.name = "fc1.bias", .shape = {3}, .offset = 12, .size = 3});
}

TEST_CASE("ParameterLayout finds a tensor by name and reports a missing one") {
  const ParameterLayout layout = TwoLayerLayout();
  const Result<ParameterSpec> found = layout.Find("fc2.weight");
  REQUIRE(found.ok());
  CHECK(*found == ParameterSpec{.name = "fc2.weight", .shape = {2, 3}, .offset = 15, .size = 6});
  const Result<ParameterSpec> missing = layout.Find("fc3.weight");
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK(missing.status().message().find("fc3.weight") != std::string::npos);
}

TEST_CASE("ParameterLayout views a tensor's slice of the buffer") {
  const ParameterLayout layout = TwoLayerLayout();
  std::vector<float> buffer(layout.size());
  std::iota(buffer.begin(), buffer.end(), 0.0f);
  const Result<std::span<float>> bias = layout.View(buffer, "fc1.bias");
  REQUIRE(bias.ok());
  CHECK(std::vector<float>(bias->begin(), bias->end()) == std::vector<float>{12, 13, 14});
  (*bias)[0] = -1.0f;
  CHECK(buffer[12] == -1.0f);

  std::vector<float> short_buffer(layout.size() - 1);
  CHECK(layout.View(short_buffer, "fc1.bias").status().code() == StatusCode::kInvalidArgument);
  CHECK(layout.View(buffer, "nope").status().code() == StatusCode::kNotFound);
}

TEST_CASE("ParameterLayouts are equal when names, shapes and offsets all are") {
  CHECK(TwoLayerLayout() == TwoLayerLayout());
  ParameterLayout other;
  other.Add("fc1.weight", {4, 3});
  other.Add("fc1.bias", {3});
  other.Add("fc2.weight", {2, 3});
  CHECK_FALSE(other == TwoLayerLayout());
}

}  // namespace
}  // namespace edgefl::models

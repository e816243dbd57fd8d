// ParameterLayout: names, shapes and offsets of a model's trainable parameters inside its one
// contiguous float buffer (DESIGN.md, "Data layout").
//
// Updates, clipping, encoding, masking, aggregation and serialization all work on spans of
// that buffer; the layout is how anyone finds a named tensor in it. Immutable once built;
// safe to share between threads for reading.
//
//   ParameterLayout layout;
//   size_t w = layout.Add("fc1.weight", {200, 784});
//   std::span<float> fc1 = layout.View(buffer, "fc1.weight").value();
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgefl/common/status.h"

namespace edgefl::models {

struct ParameterSpec {
  std::string name;            // "fc1.weight": layer name + "." + tensor name
  std::vector<int64_t> shape;  // row-major; the product equals `size`
  size_t offset = 0;           // in floats from the start of the buffer
  size_t size = 0;             // in floats
};

class ParameterLayout {
 public:
  // Appends a tensor after the last one and returns its offset. Names must be unique and
  // every dimension positive (programmer bugs otherwise: checked).
  size_t Add(std::string name, std::vector<int64_t> shape);

  // Total number of floats.
  size_t size() const { return size_; }
  const std::vector<ParameterSpec>& specs() const { return specs_; }
  // kNotFound naming the tensor when absent.
  Result<ParameterSpec> Find(std::string_view name) const;
  // The tensor's slice of `buffer`; kNotFound when absent, kInvalidArgument when
  // buffer.size() != size().
  Result<std::span<float>> View(std::span<float> buffer, std::string_view name) const;

  friend bool operator==(const ParameterLayout&, const ParameterLayout&);

 private:
  std::vector<ParameterSpec> specs_;
  size_t size_ = 0;
};

bool operator==(const ParameterSpec& a, const ParameterSpec& b);

}  // namespace edgefl::models

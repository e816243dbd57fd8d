#include "edgefl/models/layout.h"

#include <algorithm>

#include "edgefl/common/check.h"

namespace edgefl::models {

size_t ParameterLayout::Add(std::string name, std::vector<int64_t> shape) {
  EDGEFL_CHECK(!name.empty()) << "unnamed tensor";
  EDGEFL_CHECK(!shape.empty()) << "tensor " << name << " has no dimensions";
  size_t size = 1;
  for (int64_t d : shape) {
    EDGEFL_CHECK(d > 0) << "tensor " << name << " has dimension " << d;
    size *= static_cast<size_t>(d);
  }
  const bool taken = std::any_of(specs_.begin(), specs_.end(),
                                 [&](const ParameterSpec& s) { return s.name == name; });
  EDGEFL_CHECK(!taken) << "tensor " << name << " added twice";
  const size_t offset = size_;
  specs_.push_back(ParameterSpec{
      .name = std::move(name), .shape = std::move(shape), .offset = offset, .size = size});
  size_ += size;
  return offset;
}

Result<ParameterSpec> ParameterLayout::Find(std::string_view name) const {
  for (const ParameterSpec& spec : specs_) {
    if (spec.name == name) return spec;
  }
  return NotFoundError("no tensor named '" + std::string(name) + "' in the parameter layout");
}

Result<std::span<float>> ParameterLayout::View(std::span<float> buffer,
                                               std::string_view name) const {
  if (buffer.size() != size_) {
    return InvalidArgumentError("buffer has " + std::to_string(buffer.size()) +
                                " floats, layout expects " + std::to_string(size_));
  }
  EDGEFL_ASSIGN_OR_RETURN(ParameterSpec spec, Find(name));
  return buffer.subspan(spec.offset, spec.size);
}

bool operator==(const ParameterSpec& a, const ParameterSpec& b) {
  return a.name == b.name && a.shape == b.shape && a.offset == b.offset && a.size == b.size;
}

bool operator==(const ParameterLayout& a, const ParameterLayout& b) {
  return a.size_ == b.size_ && a.specs_ == b.specs_;
}

}  // namespace edgefl::models

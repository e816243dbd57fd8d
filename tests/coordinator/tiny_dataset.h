// A tiny two-class dataset for service tests on loopback: 4 features, examples alternate
// between +(0.5, 0.6, 0.7, 0.8) labelled 1 and its negation labelled 0, so a logistic
// regression learns it in a round or two and devices train in microseconds.
#pragma once

#include <cstddef>

#include "edgefl/models/dataset.h"

namespace edgefl::coordinator::testing {

inline models::Dataset TinyDataset(size_t num_examples) {
  models::Dataset data;
  data.name = "tiny";
  data.num_examples = num_examples;
  data.example_shape = {4};
  data.example_size = 4;
  data.num_classes = 2;
  for (size_t i = 0; i < num_examples; ++i) {
    const float sign = (i % 2 == 0) ? 1.0f : -1.0f;
    for (size_t j = 0; j < 4; ++j) data.features.push_back(sign * (0.5f + 0.1f * j));
    data.labels.push_back(i % 2 == 0 ? 1 : 0);
  }
  return data;
}

}  // namespace edgefl::coordinator::testing

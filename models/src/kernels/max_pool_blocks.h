// The loops around the levels' vectorised 2x2 max-pool kernels (avx2.cc, avx512.cc; the
// contract is in edgefl/models/kernels.h): each level supplies only what it does to one block
// of windows of an output row.
#pragma once

#include <cstddef>
#include <cstring>

#include "simd_gemm_f32.h"

namespace edgefl::models::kernels::internal {

// Calls block(first, out, windows) for each run of up to kWindows consecutive windows of every
// output row of one example [channels, height, width]: `first` is the index in the input of
// the run's first window's top-left value, `out` that of its output, `windows` its length.
template <size_t kWindows, typename Block>
EDGEFL_INLINE void ForEachWindowRun(size_t channels, size_t height, size_t width, Block&& block) {
  const size_t out_height = height / 2, out_width = width / 2;
  for (size_t c = 0; c < channels; ++c) {
    for (size_t oh = 0; oh < out_height; ++oh) {
      const size_t top = (c * height + 2 * oh) * width;
      const size_t out = (c * out_height + oh) * out_width;
      for (size_t ow = 0; ow < out_width; ow += kWindows) {
        block(top + 2 * ow, out + ow, static_cast<int>(MinSize(kWindows, out_width - ow)));
      }
    }
  }
}

// The gradient's last column and last row where the width or height is odd: no window covers
// them, so they get +0.0 (the kernels write every other value of dx).
inline void ZeroUnpooledEdges(size_t channels, size_t height, size_t width, float* dx) {
  for (size_t c = 0; c < channels; ++c) {
    float* plane = dx + c * height * width;
    if (width % 2 != 0) {
      for (size_t h = 0; h < height; ++h) plane[h * width + width - 1] = 0.0f;
    }
    if (height % 2 != 0) std::memset(plane + (height - 1) * width, 0, width * sizeof(float));
  }
}

}  // namespace edgefl::models::kernels::internal

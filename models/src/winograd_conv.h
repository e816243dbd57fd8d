// Stride-1 convolution by Winograd's minimal filtering algorithm (Lavin & Gray 2016, "Fast
// Algorithms for Convolutional Neural Networks"), the fast path of Conv2d for kernels of 2 to
// 5. Private to the models module.
//
// F(4 x 4, r x r) computes a 4 x 4 tile of output from an alpha x alpha tile of input, alpha =
// r + 3, with alpha^2 multiplications per (input, output) channel pair instead of 16 r^2:
//   Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A
// For the cnn's 5x5 kernels that is 64 instead of 400; for 3x3, 36 instead of 144. Summed
// over input channels, the elementwise products become alpha^2 GEMMs, one per tile position,
// over every tile of an example; the transforms around them are small dense products
// vectorised over channels, so a pass works on channels-last (HWC) copies of its images.
// Backward is the exact gradient of the same formula:
//   dM = A dY A^T;  dV = U^T dM, dX += B dV B^T;  dU = sum over tiles of dM V^T, dW = G^T dU G.
// In exact arithmetic every result equals the direct convolution; in float it differs by a
// few 1e-5 of the outputs' scale (tests/models/winograd_test.cc compares it with im2col).
#pragma once

#include <cstddef>
#include <cstdint>

#include "conv_geometry.h"

namespace edgefl::models::internal {

// Kernel sizes it serves: 2 to 5 (input tiles of 5 to 8 pixels a side).
bool WinogradSupportsKernel(int64_t kernel);

// A convolution of fixed geometry. Precondition: WinogradSupportsKernel(g.kernel).
class WinogradConv {
 public:
  WinogradConv(const ConvGeometry& g, int64_t out_channels);

  // y [batch, out, Ho, Wo] = conv(x [batch, C, H, W], weight [out, C, k, k]) + bias.
  void Forward(size_t batch, const float* x, const float* weight, const float* bias, float* y,
               bool parallel) const;

  // d_weight [out, C, k, k] = the weight gradient (overwritten); d_in, unless null, = the input
  // gradient (overwritten). The bias gradient is the caller's (a plain sum of d_out).
  void Backward(size_t batch, const float* x, const float* weight, const float* d_out,
                float* d_weight, float* d_in, bool parallel) const;

 private:
  // The calling thread's buffers, grown to this layer's sizes (kept between calls: allocating
  // them per call would page-fault them in again every step).
  struct Scratch {
    float* transformed;  // V or dV of a group [tiles][alpha^2][C]
    float* products;     // M or dM of a group [tiles][alpha^2][out]
    float* tiled;        // one example's output or output gradient, channels-last, tiled
    float* image;        // one example's padded input or input gradient, channels-last
    float* tmp;          // a transform's intermediate
    float* workspace;    // the GEMM's
  };
  Scratch ThreadScratch() const;
  void TransformWeights(const float* weight, float* u, bool input_major, bool parallel) const;
  // v = B^T d B for every tile of one example x, through `image`.
  void TransformInput(const float* x, float* v, float* image, float* scratch) const;

  ConvGeometry g_;
  int64_t out_;
  int64_t m_;                       // output tile side
  int alpha_;                       // input tile side
  int64_t tile_values_;             // alpha^2: GEMMs per pass
  int64_t tiles_high_, tiles_wide_;  // per example
  int64_t tiled_height_, tiled_width_;  // padded input covered by the tiles
  size_t examples_per_group_;            // examples whose tiles share each GEMM
};

}  // namespace edgefl::models::internal

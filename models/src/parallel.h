// When and how the layers of a model split their work over OpenMP threads (private).
//
// A model runs a pass in parallel only when it is allowed to (NumThreads() > 1), when it is
// not already inside an active parallel region (the simulator trains many clients at once, one
// model per pool thread; a nested team would oversubscribe the cores), and when the batch is
// large enough to pay for a fork/join. Work is split into contiguous chunks, one per thread.
#pragma once

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <vector>

#include "edgefl/models/kernels.h"
#include "edgefl/models/threading.h"

namespace edgefl::models::internal {

// A fork/join costs a few microseconds; one Dense 784x200 product over 64 rows costs about
// 0.1 ms on one core, so smaller batches (training at 10 or 32) run serially by default (a
// layer may lower the bar: Layer::min_parallel_batch).
inline constexpr size_t kMinParallelBatch = 64;

// Elementwise layers split small batches too once an example holds this many values (the cnn's
// activations hold 12,544 to 25,088): each example is then microseconds of memory traffic,
// and a step of the cnn on two threads spent a fifth of its time in them on one.
inline constexpr size_t kLargeExampleValues = 8192;

// Layer::min_parallel_batch of a layer whose work is proportional to its values per example.
inline size_t MinParallelBatchForValues(size_t values_per_example) {
  return values_per_example >= kLargeExampleValues ? 2 : kMinParallelBatch;
}

// `min_batch`: a layer whose every example costs far more than a fork/join lowers it
// (Layer::min_parallel_batch).
inline bool ShouldParallelize(size_t batch_size, size_t min_batch = kMinParallelBatch) {
  return batch_size >= min_batch && NumThreads() > 1 && !omp_in_parallel();
}

// Calls fn(begin, end) over contiguous chunks that cover [0, n): one chunk per thread when
// `parallel`, else the single chunk [0, n) on the calling thread.
template <typename Fn>
void ForEachChunk(size_t n, bool parallel, Fn&& fn) {
  if (!parallel || n < 2) {
    if (n > 0) fn(size_t{0}, n);
    return;
  }
#pragma omp parallel num_threads(NumThreads())
  {
    const size_t num_chunks = static_cast<size_t>(omp_get_num_threads());
    const size_t chunk = static_cast<size_t>(omp_get_thread_num());
    const size_t begin = n * chunk / num_chunks;
    const size_t end = n * (chunk + 1) / num_chunks;
    if (begin < end) fn(begin, end);
  }
}

// The data of `buffer`, grown to at least `floats` first: the layers' per-thread scratch is
// kept between steps and only ever grows, so a training step does not allocate.
inline float* GrownBuffer(std::vector<float>& buffer, size_t floats) {
  if (buffer.size() < floats) buffer.resize(floats);
  return buffer.data();
}

// result[0, size) = the sum over ForEachChunk's chunks of [0, n) of what fn(begin, end,
// partial) writes into `partial` (`size` floats, uninitialised: fn overwrites it), for
// reductions such as a weight gradient summed over examples. Serially fn writes `result`
// itself. In parallel each chunk gets its own slice of `partials` (grown here; the caller keeps
// it between calls) and the slices are added in chunk order, split over threads by element, so
// a given thread count always gives the same bits.
template <typename Fn>
void SumOverChunks(size_t n, bool parallel, size_t size, std::vector<float>& partials,
                   float* result, Fn&& fn) {
  if (!parallel || n < 2) {
    if (n > 0) fn(size_t{0}, n, result);
    return;
  }
  const auto chunks = static_cast<size_t>(NumThreads());
  float* slices = GrownBuffer(partials, chunks * size);
  std::vector<char> written(chunks, 0);
  ForEachChunk(n, true, [&](size_t begin, size_t end) {
    const auto chunk = static_cast<size_t>(omp_get_thread_num());
    written[chunk] = 1;
    fn(begin, end, slices + chunk * size);
  });
  // The adds are elementwise work like an activation layer's, worth a fork/join from as many
  // floats.
  ForEachChunk(size, size >= kLargeExampleValues, [&](size_t begin, size_t end) {
    bool first = true;
    for (size_t chunk = 0; chunk < chunks; ++chunk) {
      if (!written[chunk]) continue;
      const float* partial = slices + chunk * size;
      if (first) {
        std::copy(partial + begin, partial + end, result + begin);
      } else {
        for (size_t i = begin; i < end; ++i) result[i] += partial[i];
      }
      first = false;
    }
  });
}

// The fp32 GEMM workspace of the calling thread (kernels::GemmF32's packing scratch), made on
// its first GEMM and kept: every OpenMP thread that runs a chunk has its own, and all layers
// on a thread share it, since each GEMM is done with it before it returns.
inline float* ThreadGemmWorkspace() {
  thread_local std::vector<float> workspace(kernels::kGemmF32WorkspaceFloats);
  return workspace.data();
}

}  // namespace edgefl::models::internal

#include "edgefl/models/threading.h"

#include <omp.h>

#include <atomic>

#include "edgefl/common/check.h"
#include "eigen.h"

namespace edgefl::models {
namespace {

// 0 until SetNumThreads is called; then NumThreads() is this value.
std::atomic<int> num_threads{0};

}  // namespace

void SetNumThreads(int n) {
  EDGEFL_CHECK(n >= 1) << "SetNumThreads(" << n << ")";
  num_threads.store(n, std::memory_order_relaxed);
  omp_set_num_threads(n);
  // One active level: a parallel region opened inside another one runs on one thread.
  omp_set_max_active_levels(1);
  // Eigen's own threading is compiled out (eigen.h); keep its setting in step all the same.
  Eigen::setNbThreads(n);
}

int NumThreads() {
  const int n = num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

}  // namespace edgefl::models

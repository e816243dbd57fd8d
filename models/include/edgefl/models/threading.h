// The bound on threads that models' kernels may use (OpenMP), set once from --threads.
//
//   SetNumThreads(2);
#pragma once

namespace edgefl::models {

// n >= 1 (checked). Calls omp_set_num_threads and Eigen::setNbThreads; nested parallel regions
// stay serial (omp_set_max_active_levels(1)). A model splits a pass over at most n threads, and
// only for large batches outside any active parallel region: called from a pool of threads that
// each train one client, a model runs serially on its thread.
void SetNumThreads(int n);
// The last value given to SetNumThreads, or omp_get_max_threads() before the first call.
int NumThreads();

}  // namespace edgefl::models

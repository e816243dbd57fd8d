// Timers the benchmarks share: wall seconds since a start, and the CPU seconds of the whole
// process (every thread: ZeroMQ's I/O threads, OpenMP workers, device threads). On a shared,
// loaded machine CPU time is the steadier measure of work; wall time is what a dedicated
// device or server would see, so the benchmarks report both.
#pragma once

#include <chrono>
#include <ctime>

namespace edgefl::bench {

using SteadyClock = std::chrono::steady_clock;

inline double SecondsSince(SteadyClock::time_point start) {
  return std::chrono::duration<double>(SteadyClock::now() - start).count();
}

inline double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

}  // namespace edgefl::bench

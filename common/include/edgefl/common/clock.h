// Clock: the time seam. The round engine reads time only through a Clock, so the simulator
// can swap WallClock for a VirtualClock (DESIGN.md: the simulator swaps exactly the channel
// and the clock).
//
// WallClock is thread-safe. VirtualClock is advanced by one driver thread; reads from other
// threads are safe (atomic).
//
//   VirtualClock clock;
//   clock.AdvanceBy(std::chrono::seconds(3));
//   auto t = clock.Now();  // 3 s
#pragma once

#include <atomic>
#include <chrono>

namespace edgefl {

class Clock {
 public:
  using Duration = std::chrono::nanoseconds;
  virtual ~Clock() = default;
  // Time since the clock's own epoch. Never decreases.
  virtual Duration Now() const = 0;
};

// Monotonic time from std::chrono::steady_clock; its epoch is construction.
class WallClock final : public Clock {
 public:
  WallClock();
  Duration Now() const override;

 private:
  std::chrono::steady_clock::time_point start_;
};

// Simulated time that moves only when told to. Starts at zero.
class VirtualClock final : public Clock {
 public:
  Duration Now() const override { return Duration(now_ns_.load(std::memory_order_acquire)); }
  // Moves time forward by `delta` (>= 0; a negative delta is a programmer bug).
  void AdvanceBy(Duration delta);
  // Moves time to `t` if it is later than now; an earlier `t` is ignored (time never goes back).
  void AdvanceTo(Duration t);

 private:
  std::atomic<int64_t> now_ns_{0};
};

// Seconds as a double, for reports.
inline double ToSeconds(Clock::Duration d) { return std::chrono::duration<double>(d).count(); }

}  // namespace edgefl

#include "edgefl/common/clock.h"

#include "edgefl/common/check.h"

namespace edgefl {

WallClock::WallClock() : start_(std::chrono::steady_clock::now()) {}

Clock::Duration WallClock::Now() const {
  return std::chrono::duration_cast<Duration>(std::chrono::steady_clock::now() - start_);
}

void VirtualClock::AdvanceBy(Duration delta) {
  EDGEFL_CHECK(delta.count() >= 0) << "VirtualClock cannot go back";
  now_ns_.fetch_add(delta.count(), std::memory_order_acq_rel);
}

void VirtualClock::AdvanceTo(Duration t) {
  int64_t current = now_ns_.load(std::memory_order_acquire);
  while (t.count() > current &&
         !now_ns_.compare_exchange_weak(current, t.count(), std::memory_order_acq_rel)) {
  }
}

}  // namespace edgefl

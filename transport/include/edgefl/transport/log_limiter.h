// LogLimiter: bounds how many lines a repeated warning may write, so a hostile or broken peer
// that floods the coordinator with bad frames cannot flood its log too.
//
// Per reason (a short key chosen by the caller from a fixed set, never peer input, e.g.
// "malformed"), the first `max_lines_per_window` events of each window are admitted (the caller
// logs them in full); later ones in the same window are only counted. Once a window has ended,
// TakeSuppressed() hands back each reason's uncounted-for events once, for one summary line.
// Callers keep their own exact counters; the limiter only decides what gets a line.
//
// Time is passed in (a Clock's Now()), so the limiter reads no clock and tests need no sleeps.
// Not thread-safe: one driving thread, like the channel that owns it.
//
//   LogLimiter limiter;
//   for (const auto& s : limiter.TakeSuppressed(clock.Now())) spdlog::warn("{} more", s.count);
//   if (limiter.Admit("malformed", clock.Now())) spdlog::warn("dropped a frame: {}", why);
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "edgefl/common/clock.h"

namespace edgefl::transport {

class LogLimiter {
 public:
  // Events of one reason that were not logged, in windows that have ended.
  struct Suppressed {
    std::string reason;
    uint64_t count = 0;
  };

  // `max_lines_per_window` >= 1 lines per reason in each `window` (> 0).
  explicit LogLimiter(uint32_t max_lines_per_window = 5,
                      Clock::Duration window = std::chrono::seconds(1))
      : max_lines_per_window_(max_lines_per_window), window_(window) {}

  // Records one event of `reason` at `now` (non-decreasing across calls); true when the caller
  // should log it. A reason's window opens at its first event after the previous one ended.
  bool Admit(std::string_view reason, Clock::Duration now) {
    auto it = reasons_.find(reason);
    if (it == reasons_.end()) it = reasons_.emplace(std::string(reason), State{}).first;
    State& state = it->second;
    if (state.lines == 0 && state.suppressed == 0) {
      state.window_start = now;
    } else if (now - state.window_start >= window_) {
      state.carried += state.suppressed;
      state = State{.window_start = now, .carried = state.carried};
    }
    if (state.lines < max_lines_per_window_) {
      ++state.lines;
      return true;
    }
    ++state.suppressed;
    return false;
  }

  // Per reason (in name order), the events not logged in windows ended by `now`; each count
  // is returned once. Empty (and allocation-free) when there is nothing to report.
  std::vector<Suppressed> TakeSuppressed(Clock::Duration now) {
    std::vector<Suppressed> out;
    for (auto& [reason, state] : reasons_) {
      uint64_t count = state.carried;
      state.carried = 0;
      if ((state.lines > 0 || state.suppressed > 0) && now - state.window_start >= window_) {
        count += state.suppressed;
        state.lines = 0;
        state.suppressed = 0;
      }
      if (count > 0) out.push_back(Suppressed{.reason = reason, .count = count});
    }
    return out;
  }

  Clock::Duration window() const { return window_; }

 private:
  struct State {
    Clock::Duration window_start{0};
    uint32_t lines = 0;       // logged in the current window
    uint64_t suppressed = 0;  // not logged in the current window
    uint64_t carried = 0;     // not logged in ended windows, not yet taken
  };

  uint32_t max_lines_per_window_;
  Clock::Duration window_;
  std::map<std::string, State, std::less<>> reasons_;
};

}  // namespace edgefl::transport

#include "edgefl/transport/log_limiter.h"

#include <doctest/doctest.h>

#include <chrono>

namespace edgefl::transport {
namespace {

using std::chrono::milliseconds;

TEST_CASE("the log limiter admits a burst per reason and window, then reports the rest once") {
  LogLimiter limiter(3, std::chrono::seconds(1));
  int admitted = 0;
  for (int i = 0; i < 1000; ++i) admitted += limiter.Admit("malformed", milliseconds(i % 500));
  CHECK(admitted == 3);
  // Another reason has its own budget.
  CHECK(limiter.Admit("unknown_peer", milliseconds(10)));
  // Nothing is reported before the window has ended.
  CHECK(limiter.TakeSuppressed(milliseconds(999)).empty());

  std::vector<LogLimiter::Suppressed> suppressed = limiter.TakeSuppressed(milliseconds(1000));
  REQUIRE(suppressed.size() == 1);
  CHECK(suppressed[0].reason == "malformed");
  CHECK(suppressed[0].count == 997);
  CHECK(limiter.TakeSuppressed(milliseconds(5000)).empty());

  // A new window admits a new burst.
  CHECK(limiter.Admit("malformed", milliseconds(5000)));
}

TEST_CASE("the log limiter keeps the count of a window that ended before anyone asked") {
  LogLimiter limiter(1, std::chrono::seconds(1));
  CHECK(limiter.Admit("malformed", milliseconds(0)));
  CHECK_FALSE(limiter.Admit("malformed", milliseconds(1)));
  CHECK_FALSE(limiter.Admit("malformed", milliseconds(2)));
  // The next event opens a new window, logged; the two of the old one are carried over.
  CHECK(limiter.Admit("malformed", milliseconds(1500)));
  CHECK_FALSE(limiter.Admit("malformed", milliseconds(1600)));
  std::vector<LogLimiter::Suppressed> suppressed = limiter.TakeSuppressed(milliseconds(1700));
  REQUIRE(suppressed.size() == 1);
  CHECK(suppressed[0].count == 2);
  suppressed = limiter.TakeSuppressed(milliseconds(2500));
  REQUIRE(suppressed.size() == 1);
  CHECK(suppressed[0].count == 1);
}

}  // namespace
}  // namespace edgefl::transport

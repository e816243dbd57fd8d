// EDGEFL_CHECK: invariants that only a programmer bug can break. On in release builds.
//
// A failed check prints file, line, the condition and any streamed context, then aborts.
// Never use it for input from outside the process; that gets a Status (status.h).
//
//   EDGEFL_CHECK(offset + size <= buffer.size()) << "layout " << name << " overruns";
//   EDGEFL_CHECK_EQ(a.size(), b.size());
#pragma once

#include <sstream>

namespace edgefl::internal {

// Collects the streamed message and aborts in its destructor.
class CheckFailure {
 public:
  CheckFailure(const char* file, int line, const char* condition);
  [[noreturn]] ~CheckFailure();
  template <typename T>
  CheckFailure& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  std::ostringstream stream_;
};

// Lets `EDGEFL_CHECK(c) << x;` be one expression of type void.
struct Voidify {
  void operator&(const CheckFailure&) {}
};

}  // namespace edgefl::internal

#define EDGEFL_CHECK(condition)                   \
  (condition) ? (void)0                           \
              : ::edgefl::internal::Voidify() &   \
                    ::edgefl::internal::CheckFailure(__FILE__, __LINE__, #condition)

#define EDGEFL_CHECK_EQ(a, b) EDGEFL_CHECK((a) == (b)) << (a) << " vs " << (b) << " "
#define EDGEFL_CHECK_LE(a, b) EDGEFL_CHECK((a) <= (b)) << (a) << " vs " << (b) << " "
#define EDGEFL_CHECK_LT(a, b) EDGEFL_CHECK((a) < (b)) << (a) << " vs " << (b) << " "

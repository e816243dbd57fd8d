#include "edgefl/models/threading.h"

#include <doctest/doctest.h>

namespace edgefl::models {
namespace {

TEST_CASE("SetNumThreads sets the bound NumThreads reports") {
  const int saved = NumThreads();
  CHECK(saved >= 1);
  SetNumThreads(1);
  CHECK(NumThreads() == 1);
  SetNumThreads(3);
  CHECK(NumThreads() == 3);
  SetNumThreads(saved);
  CHECK(NumThreads() == saved);
}

}  // namespace
}  // namespace edgefl::models

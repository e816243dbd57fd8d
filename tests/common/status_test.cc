#include "edgefl/common/status.h"

#include <doctest/doctest.h>

#include <memory>

namespace edgefl {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd value " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  EDGEFL_ASSIGN_OR_RETURN(int half, Half(x));
  EDGEFL_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

TEST_CASE("Status prints its canonical code name and message") {
  CHECK(OkStatus().ToString() == "OK");
  CHECK(NotFoundError("no file x").ToString() == "NOT_FOUND: no file x");
  CHECK(DataLossError("bad").WithContext("reading y").message() == "reading y: bad");
  CHECK(OkStatus().WithContext("ignored").ok());
}

TEST_CASE("Result carries a value or the error that explains its absence") {
  CHECK(Quarter(8).value() == 2);
  Result<int> r = Quarter(6);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidArgument);
  CHECK(r.status().message() == "odd value 3");
  CHECK(r.value_or(-1) == -1);
}

TEST_CASE("Result holds move-only values") {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
  REQUIRE(r.ok());
  std::unique_ptr<int> p = std::move(r).value();
  CHECK(*p == 7);
}

}  // namespace
}  // namespace edgefl

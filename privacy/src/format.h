// Private to privacy/src: numbers in error messages, "%g" style ("1e-07", "0.5", "inf")
// rather than std::to_string's fixed six decimals, which prints small values as 0.000000.
#pragma once

#include <cstdio>
#include <string>

namespace edgefl::privacy::internal {

inline std::string FormatNumber(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%.9g", value);
  return buffer;
}

}  // namespace edgefl::privacy::internal

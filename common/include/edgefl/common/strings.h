// Small string helpers for error messages: nearest-name suggestions and joined lists.
//
//   std::string hint = DidYouMean("clients_per_rund", {"clients", "clients_per_round"});
//   // " (did you mean 'clients_per_round'?)"
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace edgefl {

// Levenshtein edit distance.
size_t EditDistance(std::string_view a, std::string_view b);

// " (did you mean 'x'?)" naming the candidate nearest to `name` when it is within a third of
// the name's length (at least 2 edits), else "".
std::string DidYouMean(std::string_view name, std::span<const std::string> candidates);

// "a, b, c"
std::string JoinNames(std::span<const std::string> names, std::string_view separator = ", ");

}  // namespace edgefl

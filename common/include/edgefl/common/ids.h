// Strong identifier types shared by every module: ClientId and RoundId.
//
// They are distinct types so a round number can never be passed where a client is meant.
// Plain values; hashable; printable.
//
//   ClientId c{42};
//   std::unordered_map<ClientId, Outcome> outcomes;
//   RoundId next = round.Next();
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace edgefl {

template <typename Tag>
class StrongId {
 public:
  constexpr StrongId() = default;
  constexpr explicit StrongId(uint64_t value) : value_(value) {}
  constexpr uint64_t value() const { return value_; }
  constexpr StrongId Next() const { return StrongId(value_ + 1); }
  friend constexpr auto operator<=>(StrongId, StrongId) = default;
  friend std::ostream& operator<<(std::ostream& os, StrongId id) { return os << id.value_; }

 private:
  uint64_t value_ = 0;
};

struct ClientIdTag {};
struct RoundIdTag {};
using ClientId = StrongId<ClientIdTag>;
using RoundId = StrongId<RoundIdTag>;

}  // namespace edgefl

template <typename Tag>
struct std::hash<edgefl::StrongId<Tag>> {
  size_t operator()(edgefl::StrongId<Tag> id) const noexcept {
    return std::hash<uint64_t>()(id.value());
  }
};

// ClientRegistry: the devices the coordinator knows, with what they told it at registration.
//
// The round engine registers devices from their Hello messages and selects cohorts from the
// registry. Driven by the engine's thread only.
//
//   ClientRegistry registry;
//   registry.Register(ClientId{4}, /*num_examples=*/600);
//   std::vector<ClientId> ids = registry.Available();
#pragma once

#include <cstdint>
#include <map>
#include <vector>

#include "edgefl/common/clock.h"
#include "edgefl/common/ids.h"

namespace edgefl::coordinator {

struct ClientRecord {
  ClientId id;
  uint64_t num_examples = 0;
  Clock::Duration registered_at{0};
  Clock::Duration last_seen{0};
  uint64_t num_rounds_selected = 0;
  uint64_t num_rounds_reported = 0;
};

class ClientRegistry {
 public:
  // Adds the client or refreshes its record (re-registration after a reconnect keeps history).
  void Register(ClientId id, uint64_t num_examples, Clock::Duration now);
  void Unregister(ClientId id);
  void MarkSeen(ClientId id, Clock::Duration now);
  bool Contains(ClientId id) const { return clients_.count(id) != 0; }
  ClientRecord* Find(ClientId id);
  // Registered clients in ascending id order (a stable order makes seeded selection
  // reproducible).
  std::vector<ClientId> Available() const;
  size_t size() const { return clients_.size(); }

 private:
  std::map<ClientId, ClientRecord> clients_;
};

}  // namespace edgefl::coordinator

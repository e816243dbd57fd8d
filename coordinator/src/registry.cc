#include "edgefl/coordinator/registry.h"

namespace edgefl::coordinator {

void ClientRegistry::Register(ClientId id, uint64_t num_examples, Clock::Duration now) {
  auto [it, inserted] = clients_.try_emplace(id);
  ClientRecord& record = it->second;
  if (inserted) {
    record.id = id;
    record.registered_at = now;
  }
  record.num_examples = num_examples;
  record.last_seen = now;
}

void ClientRegistry::Unregister(ClientId id) { clients_.erase(id); }

void ClientRegistry::MarkSeen(ClientId id, Clock::Duration now) {
  if (auto it = clients_.find(id); it != clients_.end()) it->second.last_seen = now;
}

ClientRecord* ClientRegistry::Find(ClientId id) {
  auto it = clients_.find(id);
  return it == clients_.end() ? nullptr : &it->second;
}

std::vector<ClientId> ClientRegistry::Available() const {
  std::vector<ClientId> ids;
  ids.reserve(clients_.size());
  for (const auto& [id, record] : clients_) ids.push_back(id);
  return ids;
}

}  // namespace edgefl::coordinator

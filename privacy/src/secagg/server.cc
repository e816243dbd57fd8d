// The server side of secure aggregation (server.h), after Bonawitz et al. 2017, figure 4, with
// the SecAgg+ neighbourhoods of Bell et al. 2020. Sets, in the paper's names: U1 advertised
// keys, U2 shared keys, U3 sent a masked input (survivors), U4 answered the unmask request.
// The round survives any dropouts as long as, at the end, every survivor has threshold shares
// of its self-mask seed b_u held by responders and every dropped client that a survivor masked
// with has threshold shares of its mask key s_u; the session checks this as early as it can,
// before clients reveal anything.

#include "edgefl/privacy/secagg/server.h"

#include <algorithm>
#include <string>
#include <utility>

#include "secagg/protocol_internal.h"

namespace edgefl::privacy::secagg {
namespace {

Status WrongStep(const char* call) {
  return FailedPreconditionError(std::string(call) + " called out of order");
}

}  // namespace

Result<ServerSession> ServerSession::Create(const SecAggConfig& config, RoundId round) {
  EDGEFL_RETURN_IF_ERROR(config.Validate());
  return ServerSession(config, round);
}

ServerSession::ServerSession(const SecAggConfig& config, RoundId round)
    : config_(config),
      round_(round),
      graph_(config),
      active_(config.num_clients, 1),
      received_(config.num_clients, 0),
      encryption_keys_(config.num_clients),
      mask_keys_(config.num_clients) {}

ServerSession::ServerSession(ServerSession&&) noexcept = default;
ServerSession& ServerSession::operator=(ServerSession&&) noexcept = default;
ServerSession::~ServerSession() = default;

Status ServerSession::AbortWith(Status status) {
  Abort();
  return status;
}

void ServerSession::Abort() {
  state_ = ServerState::kAborted;
  std::fill(active_.begin(), active_.end(), 0);
  std::fill(received_.begin(), received_.end(), 0);
  shares_ = {};
  sum_ = {};
  survivors_ = {};
  dropped_ = {};
  for (std::vector<ShamirShare>& shares : revealed_) {
    SecureWipe(shares.data(), shares.size() * sizeof(ShamirShare));
  }
  revealed_ = {};
}

std::vector<uint32_t> ServerSession::ExpectedSenders() const {
  std::vector<uint32_t> senders;
  if (state_ == ServerState::kDone || state_ == ServerState::kAborted) return senders;
  for (uint32_t i = 0; i < config_.num_clients; ++i) {
    if (active_[i]) senders.push_back(i);
  }
  return senders;
}

size_t ServerSession::PruneSmallGroups(std::vector<uint8_t>& members) const {
  const uint32_t n = config_.num_clients;
  size_t remaining = std::count(members.begin(), members.end(), 1);
  if (graph_.degree() + 1 == n) {
    // Full graph: every group is the whole set.
    if (remaining < config_.threshold) std::fill(members.begin(), members.end(), 0);
    return remaining < config_.threshold ? 0 : remaining;
  }
  std::vector<uint32_t> group(n, 0);
  std::vector<uint32_t> pending;
  for (uint32_t u = 0; u < n; ++u) {
    if (!members[u]) continue;
    group[u] = 1;
    for (uint32_t v : graph_.NeighboursOf(u)) group[u] += members[v];
    if (group[u] < config_.threshold) pending.push_back(u);
  }
  while (!pending.empty()) {
    const uint32_t u = pending.back();
    pending.pop_back();
    if (!members[u]) continue;
    members[u] = 0;
    --remaining;
    for (uint32_t v : graph_.NeighboursOf(u)) {
      if (members[v] && --group[v] == config_.threshold - 1) pending.push_back(v);
    }
  }
  return remaining;
}

Status ServerSession::ReceiveAdvertiseKeys(const AdvertiseKeysMessage& message) {
  if (state_ != ServerState::kAdvertiseKeys) return WrongStep("ReceiveAdvertiseKeys");
  const uint32_t sender = message.sender;
  if (sender >= config_.num_clients) {
    return InvalidArgumentError("AdvertiseKeys from client " + std::to_string(sender) +
                                " outside a cohort of " + std::to_string(config_.num_clients));
  }
  if (received_[sender]) {
    return AlreadyExistsError("client " + std::to_string(sender) + " advertised keys twice");
  }
  EDGEFL_ASSIGN_OR_RETURN(
      X25519PublicKey encryption,
      internal::PublicKeyFromBytes(message.encryption_public_key, "encryption public key", sender));
  EDGEFL_ASSIGN_OR_RETURN(
      X25519PublicKey mask,
      internal::PublicKeyFromBytes(message.mask_public_key, "mask public key", sender));
  encryption_keys_[sender] = encryption;
  mask_keys_[sender] = mask;
  received_[sender] = 1;
  return OkStatus();
}

Status ServerSession::FinishAdvertiseKeys() {
  if (state_ != ServerState::kAdvertiseKeys) return WrongStep("FinishAdvertiseKeys");
  // U1: those who advertised, less those whose group cannot reach t (they could never be
  // unmasked, and would abort in ShareKeys themselves).
  active_ = received_;
  std::fill(received_.begin(), received_.end(), 0);
  const size_t remaining = PruneSmallGroups(active_);
  if (remaining < config_.threshold) {
    return AbortWith(internal::BelowThreshold("AdvertiseKeys", remaining, config_.threshold));
  }
  shares_.assign(config_.num_clients, {});
  state_ = ServerState::kShareKeys;
  return OkStatus();
}

Result<KeyDirectoryMessage> ServerSession::KeyDirectoryFor(uint32_t recipient) const {
  if (state_ != ServerState::kShareKeys) return WrongStep("KeyDirectoryFor");
  if (recipient >= config_.num_clients || !active_[recipient]) {
    return FailedPreconditionError("client " + std::to_string(recipient) + " is not in the round");
  }
  KeyDirectoryMessage directory;
  directory.recipient = recipient;
  for (uint32_t v : graph_.NeighboursOf(recipient)) {
    if (!active_[v]) continue;
    AdvertiseKeysMessage& entry = directory.neighbours.emplace_back();
    entry.sender = v;
    entry.encryption_public_key.assign(encryption_keys_[v].begin(), encryption_keys_[v].end());
    entry.mask_public_key.assign(mask_keys_[v].begin(), mask_keys_[v].end());
  }
  return directory;
}

Status ServerSession::ReceiveShareKeys(ShareKeysMessage message) {
  if (state_ != ServerState::kShareKeys) return WrongStep("ReceiveShareKeys");
  const uint32_t sender = message.sender;
  if (sender >= config_.num_clients) {
    return InvalidArgumentError("ShareKeys from client " + std::to_string(sender) +
                                " outside a cohort of " + std::to_string(config_.num_clients));
  }
  if (!active_[sender]) {
    return FailedPreconditionError("ShareKeys from client " + std::to_string(sender) +
                                   ", which is not in the round");
  }
  if (received_[sender]) {
    return AlreadyExistsError("client " + std::to_string(sender) + " shared keys twice");
  }
  // Exactly one share per neighbour in the sender's key directory.
  std::vector<EncryptedShare>& shares = message.shares;
  std::sort(shares.begin(), shares.end(), [](const EncryptedShare& a, const EncryptedShare& b) {
    return a.recipient < b.recipient;
  });
  size_t expected = 0;
  for (uint32_t v : graph_.NeighboursOf(sender)) expected += active_[v];
  for (size_t i = 0; i < shares.size(); ++i) {
    const EncryptedShare& share = shares[i];
    if (share.sender != sender || share.recipient >= config_.num_clients ||
        !active_[share.recipient] || !graph_.AreNeighbours(sender, share.recipient) ||
        (i > 0 && share.recipient == shares[i - 1].recipient) ||
        share.ciphertext.size() != kEncryptedShareBytes) {
      return InvalidArgumentError(
          "ShareKeys from client " + std::to_string(sender) + " holds a share from " +
          std::to_string(share.sender) + " to " + std::to_string(share.recipient) + " with " +
          std::to_string(share.ciphertext.size()) + " bytes, which is not one it may send");
    }
  }
  if (shares.size() != expected) {
    return InvalidArgumentError("ShareKeys from client " + std::to_string(sender) + " has " +
                                std::to_string(shares.size()) + " shares, expected " +
                                std::to_string(expected));
  }
  shares_[sender] = std::move(shares);
  received_[sender] = 1;
  return OkStatus();
}

Status ServerSession::FinishShareKeys() {
  if (state_ != ServerState::kShareKeys) return WrongStep("FinishShareKeys");
  // U2. A sender dropped here by pruning has its shares discarded: no neighbour will mask with
  // it, exactly as if it had not shared.
  active_ = received_;
  std::fill(received_.begin(), received_.end(), 0);
  const size_t remaining = PruneSmallGroups(active_);
  if (remaining < config_.threshold) {
    return AbortWith(internal::BelowThreshold("ShareKeys", remaining, config_.threshold));
  }
  for (uint32_t u = 0; u < config_.num_clients; ++u) {
    if (!active_[u]) shares_[u] = {};
  }
  shared_keys_ = active_;
  sum_.assign(config_.vector_length, 0);
  state_ = ServerState::kMaskedInputCollection;
  return OkStatus();
}

Result<ShareKeysRelayMessage> ServerSession::RelayFor(uint32_t recipient) const {
  if (state_ != ServerState::kMaskedInputCollection) return WrongStep("RelayFor");
  if (recipient >= config_.num_clients || !active_[recipient]) {
    return FailedPreconditionError("client " + std::to_string(recipient) + " is not in the round");
  }
  ShareKeysRelayMessage relay;
  relay.recipient = recipient;
  for (uint32_t v : graph_.NeighboursOf(recipient)) {
    if (!active_[v]) continue;
    const std::vector<EncryptedShare>& shares = shares_[v];
    auto it = std::lower_bound(
        shares.begin(), shares.end(), recipient,
        [](const EncryptedShare& share, uint32_t r) { return share.recipient < r; });
    // Present by construction: v shared with every neighbour in U1, and U2 is a subset of U1.
    EDGEFL_CHECK(it != shares.end() && it->recipient == recipient);
    relay.shares.push_back(*it);
  }
  return relay;
}

Status ServerSession::ReceiveMaskedInput(const MaskedInputMessage& message) {
  if (state_ != ServerState::kMaskedInputCollection) return WrongStep("ReceiveMaskedInput");
  const uint32_t sender = message.sender;
  if (sender >= config_.num_clients) {
    return InvalidArgumentError("masked input from client " + std::to_string(sender) +
                                " outside a cohort of " + std::to_string(config_.num_clients));
  }
  if (!active_[sender]) {
    return FailedPreconditionError("masked input from client " + std::to_string(sender) +
                                   ", which did not share keys");
  }
  if (received_[sender]) {
    return AlreadyExistsError("client " + std::to_string(sender) + " sent two masked inputs");
  }
  if (message.masked_input.size() != config_.vector_length) {
    return InvalidArgumentError("masked input from client " + std::to_string(sender) + " has " +
                                std::to_string(message.masked_input.size()) +
                                " values, vector_length is " +
                                std::to_string(config_.vector_length));
  }
  // Fold in at once: the session never keeps an individual (masked) input.
  const uint32_t* in = message.masked_input.data();
  uint32_t* sum = sum_.data();
  for (size_t i = 0; i < sum_.size(); ++i) sum[i] += in[i];
  received_[sender] = 1;
  return OkStatus();
}

Result<UnmaskRequestMessage> ServerSession::FinishMaskedInputCollection() {
  if (state_ != ServerState::kMaskedInputCollection) {
    return WrongStep("FinishMaskedInputCollection");
  }
  const uint32_t n = config_.num_clients;
  const uint32_t t = config_.threshold;
  std::vector<uint8_t> survived = received_;
  std::fill(received_.begin(), received_.end(), 0);
  survivors_.clear();
  dropped_.clear();
  for (uint32_t u = 0; u < n; ++u) {
    if (survived[u]) {
      survivors_.push_back(u);
    } else if (shared_keys_[u]) {
      dropped_.push_back(u);
    }
  }
  if (survivors_.size() < t) {
    return AbortWith(internal::BelowThreshold("MaskedInputCollection", survivors_.size(), t));
  }
  // Each secret to rebuild needs t holders among the survivors; find out now, before anyone
  // reveals a share, rather than after.
  if (graph_.degree() + 1 != n) {
    auto surviving_neighbours = [&](uint32_t u) {
      size_t count = 0;
      for (uint32_t v : graph_.NeighboursOf(u)) count += survived[v];
      return count;
    };
    for (uint32_t u : survivors_) {
      if (surviving_neighbours(u) + 1 < t) {
        return AbortWith(internal::BelowThreshold(
            "MaskedInputCollection (group of client " + std::to_string(u) + ")",
            surviving_neighbours(u) + 1, t));
      }
    }
    for (uint32_t d : dropped_) {
      const size_t count = surviving_neighbours(d);
      if (count != 0 && count < t) {
        return AbortWith(internal::BelowThreshold(
            "MaskedInputCollection (group of dropped client " + std::to_string(d) + ")", count, t));
      }
    }
  }
  active_ = std::move(survived);
  shares_ = {};
  revealed_.assign(n, {});
  state_ = ServerState::kUnmasking;
  return UnmaskRequestMessage{survivors_, dropped_};
}

Status ServerSession::ReceiveUnmaskResponse(const UnmaskResponseMessage& message) {
  if (state_ != ServerState::kUnmasking) return WrongStep("ReceiveUnmaskResponse");
  const uint32_t sender = message.sender;
  if (sender >= config_.num_clients) {
    return InvalidArgumentError("unmask response from client " + std::to_string(sender) +
                                " outside a cohort of " + std::to_string(config_.num_clients));
  }
  if (!active_[sender]) {
    return FailedPreconditionError("unmask response from client " + std::to_string(sender) +
                                   ", which is not a survivor");
  }
  if (received_[sender]) {
    return AlreadyExistsError("client " + std::to_string(sender) + " answered unmasking twice");
  }
  // Validate everything before keeping anything. A survivor's self-mask share or a dropped
  // client's mask-key share, each from a member of the owner's group, each owner once.
  std::vector<std::pair<uint32_t, ShamirShare>> accepted;
  accepted.reserve(message.self_mask_shares.size() + message.mask_key_shares.size());
  std::vector<uint32_t> owners;
  owners.reserve(accepted.capacity());
  Status status;
  auto take = [&](const RevealedShare& revealed, bool self_mask) {
    const uint32_t owner = revealed.owner;
    const bool in_group =
        owner < config_.num_clients && (owner == sender || graph_.AreNeighbours(sender, owner));
    const bool kind_ok =
        in_group && (self_mask ? active_[owner] == 1 : !active_[owner] && shared_keys_[owner]);
    if (!kind_ok) {
      return InvalidArgumentError("unmask response from client " + std::to_string(sender) +
                                  " reveals a " + (self_mask ? "self-mask" : "mask-key") +
                                  " share of client " + std::to_string(owner) +
                                  ", which it may not");
    }
    EDGEFL_ASSIGN_OR_RETURN(ShamirShare share, DecodeShamirShare(sender + 1, revealed.share));
    accepted.emplace_back(owner, share);
    owners.push_back(owner);
    return OkStatus();
  };
  for (const RevealedShare& revealed : message.self_mask_shares) {
    if (status.ok()) status = take(revealed, true);
  }
  for (const RevealedShare& revealed : message.mask_key_shares) {
    if (status.ok()) status = take(revealed, false);
  }
  std::sort(owners.begin(), owners.end());
  if (status.ok() && std::adjacent_find(owners.begin(), owners.end()) != owners.end()) {
    status = InvalidArgumentError("unmask response from client " + std::to_string(sender) +
                                  " reveals two shares of one client");
  }
  if (status.ok()) {
    for (auto& [owner, share] : accepted) revealed_[owner].push_back(share);
    received_[sender] = 1;
  }
  for (auto& entry : accepted) SecureWipe(&entry.second, sizeof(entry.second));
  return status;
}

Result<std::vector<uint32_t>> ServerSession::FinishUnmasking() {
  if (state_ != ServerState::kUnmasking) return WrongStep("FinishUnmasking");
  const uint32_t t = config_.threshold;
  const size_t responders = std::count(received_.begin(), received_.end(), 1);
  if (responders < t) return AbortWith(internal::BelowThreshold("Unmasking", responders, t));

  // Which dropped clients' mask keys are needed: those with a neighbour among the survivors.
  std::vector<uint32_t> needed_dropped;
  for (uint32_t d : dropped_) {
    for (uint32_t v : graph_.NeighboursOf(d)) {
      if (active_[v]) {
        needed_dropped.push_back(d);
        break;
      }
    }
  }
  std::vector<uint32_t> owners = survivors_;
  owners.insert(owners.end(), needed_dropped.begin(), needed_dropped.end());
  for (uint32_t owner : owners) {
    if (revealed_[owner].size() < t) {
      return AbortWith(
          internal::BelowThreshold("Unmasking (shares of client " + std::to_string(owner) + ")",
                                   revealed_[owner].size(), t));
    }
    // Ordered by x so that owners with the same holders share Lagrange coefficients.
    std::sort(revealed_[owner].begin(), revealed_[owner].end(),
              [](const ShamirShare& a, const ShamirShare& b) { return a.x < b.x; });
  }

  // Rebuild b_u for survivors and s_sk for the dropped ones.
  ShamirReconstructor reconstructor;
  std::vector<ShamirSecret> self_mask_seeds;
  self_mask_seeds.reserve(survivors_.size());
  for (uint32_t u : survivors_) {
    auto seed = reconstructor.Reconstruct(revealed_[u], t);
    if (!seed.ok())
      return AbortWith(seed.status().WithContext("self-mask seed of client " + std::to_string(u)));
    self_mask_seeds.push_back(std::move(*seed));
  }
  std::vector<X25519PrivateKey> dropped_keys;
  dropped_keys.reserve(needed_dropped.size());
  for (uint32_t d : needed_dropped) {
    auto key = reconstructor.Reconstruct(revealed_[d], t);
    if (!key.ok()) {
      return AbortWith(key.status().WithContext("mask key of client " + std::to_string(d)));
    }
    // The one secret we can check: it must be the private half of the advertised key.
    auto public_key = X25519PublicKeyOf(*key);
    if (!public_key.ok()) return AbortWith(public_key.status());
    if (*public_key != mask_keys_[d]) {
      return AbortWith(DataLossError("rebuilt mask key of client " + std::to_string(d) +
                                     " does not match its advertised public key"));
    }
    dropped_keys.push_back(std::move(*key));
  }

  // The pairwise seeds the survivors used with dropped neighbours: one X25519 each, grouped
  // by dropped client so each of its keys is set up once. Threads go over the dropped clients
  // when there are several, else inside X25519AgreeMany over the survivors.
  struct Pair {
    size_t dropped;  // index into needed_dropped
    uint32_t survivor;
  };
  std::vector<Pair> pairs;
  std::vector<size_t> first_pair(needed_dropped.size() + 1, 0);
  for (size_t i = 0; i < needed_dropped.size(); ++i) {
    first_pair[i] = pairs.size();
    for (uint32_t v : graph_.NeighboursOf(needed_dropped[i])) {
      if (active_[v]) pairs.push_back({i, v});
    }
  }
  first_pair[needed_dropped.size()] = pairs.size();
  std::vector<internal::PairwiseSeed> seeds(pairs.size());
  std::vector<Status> statuses(needed_dropped.size());
  const int threads =
      needed_dropped.size() < 2
          ? 1
          : internal::WorkerThreads(config_.max_threads,
                                    pairs.size() * (internal::kX25519Us + internal::kKdfAndAeadUs));
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(dynamic, 1)
  for (int64_t i = 0; i < static_cast<int64_t>(needed_dropped.size()); ++i) {
    const uint32_t d = needed_dropped[i];
    const size_t begin = first_pair[i];
    const size_t count = first_pair[i + 1] - begin;
    std::vector<X25519PublicKey> survivor_keys(count);
    for (size_t j = 0; j < count; ++j) survivor_keys[j] = mask_keys_[pairs[begin + j].survivor];
    std::vector<SecretBytes<32>> shared(count);
    Status status = X25519AgreeMany(dropped_keys[i], survivor_keys, shared, config_.max_threads);
    for (size_t j = 0; j < count && status.ok(); ++j) {
      auto seed = internal::DerivePairwiseSeed(shared[j], round_, d, pairs[begin + j].survivor);
      if (seed.ok()) {
        seeds[begin + j] = std::move(*seed);
      } else {
        status = seed.status();
      }
    }
    statuses[i] = std::move(status);
  }
  for (const Status& status : statuses) {
    if (!status.ok()) return AbortWith(status);
  }

  // sum - sum_u PRG(b_u) - sum over (u, d) of what u added for d: the mask u added was
  // PairwiseSign(u, d) * PRG(s_{u,d}); undo it.
  std::vector<MaskTerm> terms;
  terms.reserve(self_mask_seeds.size() + seeds.size());
  for (const ShamirSecret& seed : self_mask_seeds) {
    terms.push_back({seed.Reveal(), MaskSign::kSubtract});
  }
  for (size_t i = 0; i < pairs.size(); ++i) {
    const uint32_t d = needed_dropped[pairs[i].dropped];
    const uint32_t u = pairs[i].survivor;
    const MaskSign added = internal::PairwiseSign(u, d);
    terms.push_back(
        {seeds[i].Reveal(), added == MaskSign::kAdd ? MaskSign::kSubtract : MaskSign::kAdd});
  }
  Status status = ApplyMasks(terms, sum_, config_.max_threads);
  if (!status.ok()) return AbortWith(status);
  std::vector<uint32_t> sum = std::move(sum_);
  sum_ = {};
  for (std::vector<ShamirShare>& shares : revealed_) {
    SecureWipe(shares.data(), shares.size() * sizeof(ShamirShare));
  }
  revealed_ = {};
  std::fill(active_.begin(), active_.end(), 0);
  state_ = ServerState::kDone;
  return sum;
}

}  // namespace edgefl::privacy::secagg

// The client side of secure aggregation (client.h). Step numbers and names follow Bonawitz et
// al. 2017, figure 4 ("Practical Secure Aggregation for Privacy-Preserving Machine Learning",
// CCS): AdvertiseKeys, ShareKeys, MaskedInputCollection, Unmasking. SecAgg+ (Bell et al. 2020)
// changes only the set of peers: the client's neighbours instead of the whole cohort, with the
// threshold counted in its group (neighbours + itself).

#include "edgefl/privacy/secagg/client.h"

#include <algorithm>
#include <array>
#include <string>
#include <utility>

#include "secagg/protocol_internal.h"

namespace edgefl::privacy::secagg {

using internal::GetU32;
using internal::PutU32;

struct ClientSession::Peer {
  uint32_t index = 0;
  X25519PublicKey encryption_key{};
  X25519PublicKey mask_key{};
  // True once its share for us arrived in the relay: it is in U2 and we mask with it.
  bool shared = false;
  SecretBytes<kShamirShareBytes> mask_key_share;
  SecretBytes<kShamirShareBytes> self_mask_share;
};

Result<ClientSession> ClientSession::Create(const SecAggConfig& config, RoundId round,
                                            uint32_t index) {
  EDGEFL_RETURN_IF_ERROR(config.Validate());
  if (index >= config.num_clients) {
    return InvalidArgumentError("client index " + std::to_string(index) + " outside a cohort of " +
                                std::to_string(config.num_clients));
  }
  return ClientSession(config, round, index);
}

ClientSession::ClientSession(const SecAggConfig& config, RoundId round, uint32_t index)
    : config_(config), round_(round), index_(index) {
  neighbours_ = NeighbourGraph(config).NeighboursOf(index);
}

ClientSession::ClientSession(ClientSession&&) noexcept = default;
ClientSession& ClientSession::operator=(ClientSession&&) noexcept = default;
ClientSession::~ClientSession() = default;

void ClientSession::WipeSecrets() {
  encryption_keys_.private_key = X25519PrivateKey();
  mask_keys_.private_key = X25519PrivateKey();
  self_mask_seed_ = SecretBytes<kPrgSeedBytes>();
  own_self_mask_share_ = SecretBytes<kShamirShareBytes>();
  peers_.clear();
  peers_.shrink_to_fit();
}

Status ClientSession::AbortWith(Status status) {
  WipeSecrets();
  state_ = ClientState::kAborted;
  return status;
}

void ClientSession::Abort() { AbortWith(AbortedError("aborted by caller")).IgnoreError(); }

ClientSession::Peer* ClientSession::FindPeer(uint32_t index) {
  auto it = std::lower_bound(peers_.begin(), peers_.end(), index,
                             [](const Peer& p, uint32_t i) { return p.index < i; });
  return it != peers_.end() && it->index == index ? &*it : nullptr;
}

Result<AdvertiseKeysMessage> ClientSession::AdvertiseKeys() {
  if (state_ != ClientState::kAdvertiseKeys) {
    return FailedPreconditionError("AdvertiseKeys called out of order");
  }
  // Round 0: two fresh key pairs per round (c for share encryption, s for pairwise masks) and
  // the self-mask seed b.
  auto encryption = GenerateX25519KeyPair();
  if (!encryption.ok()) return AbortWith(encryption.status());
  auto mask = GenerateX25519KeyPair();
  if (!mask.ok()) return AbortWith(mask.status());
  Status status = RandomBytes(self_mask_seed_.MutableReveal());
  if (!status.ok()) return AbortWith(status);
  encryption_keys_ = std::move(*encryption);
  mask_keys_ = std::move(*mask);
  state_ = ClientState::kShareKeys;
  AdvertiseKeysMessage message;
  message.sender = index_;
  message.encryption_public_key.assign(encryption_keys_.public_key.begin(),
                                       encryption_keys_.public_key.end());
  message.mask_public_key.assign(mask_keys_.public_key.begin(), mask_keys_.public_key.end());
  return message;
}

Result<ShareKeysMessage> ClientSession::ShareKeys(const KeyDirectoryMessage& directory) {
  if (state_ != ClientState::kShareKeys) {
    return FailedPreconditionError("ShareKeys called out of order");
  }
  if (directory.recipient != index_) {
    return AbortWith(InvalidArgumentError("key directory for client " +
                                          std::to_string(directory.recipient) +
                                          " delivered to client " + std::to_string(index_)));
  }
  // Round 1: keep the advertised keys of our neighbours.
  std::vector<Peer> peers;
  peers.reserve(directory.neighbours.size());
  std::vector<X25519PublicKey> all_keys = {encryption_keys_.public_key, mask_keys_.public_key};
  for (const AdvertiseKeysMessage& entry : directory.neighbours) {
    if (!std::binary_search(neighbours_.begin(), neighbours_.end(), entry.sender)) {
      return AbortWith(
          InvalidArgumentError("key directory lists client " + std::to_string(entry.sender) +
                               ", not a neighbour of client " + std::to_string(index_)));
    }
    Peer peer;
    peer.index = entry.sender;
    auto encryption = internal::PublicKeyFromBytes(entry.encryption_public_key,
                                                   "encryption public key", entry.sender);
    if (!encryption.ok()) return AbortWith(encryption.status());
    auto mask =
        internal::PublicKeyFromBytes(entry.mask_public_key, "mask public key", entry.sender);
    if (!mask.ok()) return AbortWith(mask.status());
    peer.encryption_key = *encryption;
    peer.mask_key = *mask;
    all_keys.push_back(peer.encryption_key);
    all_keys.push_back(peer.mask_key);
    peers.push_back(std::move(peer));
  }
  std::sort(peers.begin(), peers.end(),
            [](const Peer& a, const Peer& b) { return a.index < b.index; });
  for (size_t i = 1; i < peers.size(); ++i) {
    if (peers[i].index == peers[i - 1].index) {
      return AbortWith(InvalidArgumentError("key directory lists client " +
                                            std::to_string(peers[i].index) + " twice"));
    }
  }
  // Bonawitz et al. 2017, figure 4, round 1: all public keys must differ, or a server could
  // replay one client's keys under another's name.
  std::sort(all_keys.begin(), all_keys.end());
  if (std::adjacent_find(all_keys.begin(), all_keys.end()) != all_keys.end()) {
    return AbortWith(InvalidArgumentError("key directory repeats a public key"));
  }
  if (peers.size() + 1 < config_.threshold) {
    return AbortWith(internal::BelowThreshold("ShareKeys", peers.size() + 1, config_.threshold));
  }

  // t-of-(|peers| + 1) shares of s_sk and b at x = index + 1; our own share of b stays here.
  std::vector<uint32_t> points;
  points.reserve(peers.size() + 1);
  for (const Peer& peer : peers) points.push_back(peer.index + 1);
  points.push_back(index_ + 1);
  auto mask_key_shares = ShamirSplit(mask_keys_.private_key, config_.threshold, points);
  if (!mask_key_shares.ok()) return AbortWith(mask_key_shares.status());
  auto self_mask_shares = ShamirSplit(self_mask_seed_, config_.threshold, points);
  if (!self_mask_shares.ok()) return AbortWith(self_mask_shares.status());
  EncodeShamirShare(self_mask_shares->back(), own_self_mask_share_.MutableReveal());

  // One X25519 per neighbour for its share key, then HKDF and AES-GCM.
  std::vector<X25519PublicKey> peer_keys;
  peer_keys.reserve(peers.size());
  for (const Peer& peer : peers) peer_keys.push_back(peer.encryption_key);
  std::vector<SecretBytes<32>> shared(peers.size());
  Status agreed =
      X25519AgreeMany(encryption_keys_.private_key, peer_keys, shared, config_.max_threads);
  if (!agreed.ok()) {
    SecureWipe(mask_key_shares->data(), mask_key_shares->size() * sizeof(ShamirShare));
    SecureWipe(self_mask_shares->data(), self_mask_shares->size() * sizeof(ShamirShare));
    return AbortWith(agreed);
  }
  ShareKeysMessage message;
  message.sender = index_;
  message.shares.resize(peers.size());
  std::vector<Status> statuses(peers.size());
  const int threads =
      internal::WorkerThreads(config_.max_threads, peers.size() * internal::kKdfAndAeadUs);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(peers.size()); ++i) {
    const Peer& peer = peers[i];
    EncryptedShare& out = message.shares[i];
    out.sender = index_;
    out.recipient = peer.index;
    out.ciphertext.resize(kEncryptedShareBytes);
    auto key = internal::DeriveShareKey(shared[i], round_, index_, peer.index);
    if (!key.ok()) {
      statuses[i] = key.status();
      continue;
    }
    std::array<uint8_t, internal::kSharePlaintextBytes> plaintext;
    PutU32(index_, plaintext.data());
    PutU32(peer.index, plaintext.data() + 4);
    EncodeShamirShare((*mask_key_shares)[i], std::span<uint8_t, kShamirShareBytes>(
                                                 plaintext.data() + 8, kShamirShareBytes));
    EncodeShamirShare((*self_mask_shares)[i],
                      std::span<uint8_t, kShamirShareBytes>(
                          plaintext.data() + 8 + kShamirShareBytes, kShamirShareBytes));
    statuses[i] = AesGcmSeal(
        *key, plaintext, internal::ShareAssociatedData(round_, index_, peer.index), out.ciphertext);
    SecureWipe(plaintext.data(), plaintext.size());
  }
  SecureWipe(mask_key_shares->data(), mask_key_shares->size() * sizeof(ShamirShare));
  SecureWipe(self_mask_shares->data(), self_mask_shares->size() * sizeof(ShamirShare));
  for (const Status& status : statuses) {
    if (!status.ok()) return AbortWith(status);
  }
  peers_ = std::move(peers);
  state_ = ClientState::kMaskedInput;
  return message;
}

Result<MaskedInputMessage> ClientSession::MaskInput(const ShareKeysRelayMessage& relay,
                                                    std::span<const uint32_t> input) {
  if (state_ != ClientState::kMaskedInput) {
    return FailedPreconditionError("MaskInput called out of order");
  }
  if (input.size() != config_.vector_length) {
    return InvalidArgumentError("input has " + std::to_string(input.size()) +
                                " values, vector_length is " +
                                std::to_string(config_.vector_length));
  }
  if (relay.recipient != index_) {
    return AbortWith(InvalidArgumentError("share relay for client " +
                                          std::to_string(relay.recipient) +
                                          " delivered to client " + std::to_string(index_)));
  }
  // Round 2, first half: every relayed share must come from a neighbour in our directory,
  // once, addressed to us, and decrypt under the key we agree with its sender.
  std::vector<Peer*> senders;
  senders.reserve(relay.shares.size());
  for (const EncryptedShare& share : relay.shares) {
    Peer* peer = FindPeer(share.sender);
    if (peer == nullptr || share.recipient != index_ ||
        share.ciphertext.size() != kEncryptedShareBytes) {
      return AbortWith(InvalidArgumentError(
          "relayed share from client " + std::to_string(share.sender) + " to client " +
          std::to_string(share.recipient) + " with " + std::to_string(share.ciphertext.size()) +
          " bytes is not a share client " + std::to_string(index_) + " can accept"));
    }
    if (peer->shared) {
      return AbortWith(InvalidArgumentError("relay repeats the share of client " +
                                            std::to_string(share.sender)));
    }
    peer->shared = true;
    senders.push_back(peer);
  }
  if (senders.size() + 1 < config_.threshold) {
    return AbortWith(
        internal::BelowThreshold("MaskedInputCollection", senders.size() + 1, config_.threshold));
  }

  // Agree share keys and pairwise mask seeds with every sender: 2 X25519 per neighbour, as
  // costly as the PRG itself for short vectors, spread over threads inside X25519AgreeMany.
  std::vector<X25519PublicKey> encryption_peers, mask_peers;
  encryption_peers.reserve(senders.size());
  mask_peers.reserve(senders.size());
  for (const Peer* peer : senders) {
    encryption_peers.push_back(peer->encryption_key);
    mask_peers.push_back(peer->mask_key);
  }
  std::vector<SecretBytes<32>> shared_encryption(senders.size());
  std::vector<SecretBytes<32>> shared_mask(senders.size());
  Status agreed = X25519AgreeMany(encryption_keys_.private_key, encryption_peers, shared_encryption,
                                  config_.max_threads);
  if (agreed.ok()) {
    agreed = X25519AgreeMany(mask_keys_.private_key, mask_peers, shared_mask, config_.max_threads);
  }
  if (!agreed.ok()) return AbortWith(agreed);
  std::vector<internal::PairwiseSeed> seeds(senders.size());
  std::vector<Status> statuses(senders.size());
  const int threads =
      internal::WorkerThreads(config_.max_threads, senders.size() * internal::kKdfAndAeadUs);
#pragma omp parallel for num_threads(threads) if (threads > 1) schedule(static)
  for (int64_t i = 0; i < static_cast<int64_t>(senders.size()); ++i) {
    Peer& peer = *senders[i];
    const EncryptedShare& share = relay.shares[i];
    auto key = internal::DeriveShareKey(shared_encryption[i], round_, index_, peer.index);
    if (!key.ok()) {
      statuses[i] = key.status();
      continue;
    }
    std::array<uint8_t, internal::kSharePlaintextBytes> plaintext;
    Status status =
        AesGcmOpen(*key, share.ciphertext,
                   internal::ShareAssociatedData(round_, peer.index, index_), plaintext);
    if (status.ok() &&
        (GetU32(plaintext.data()) != peer.index || GetU32(plaintext.data() + 4) != index_)) {
      status = DataLossError("share from client " + std::to_string(peer.index) +
                             " names another sender or recipient inside");
    }
    if (status.ok()) {
      // Check the values are field elements now, so Unmask never reveals garbage.
      for (size_t part = 0; part < 2 && status.ok(); ++part) {
        auto decoded = DecodeShamirShare(
            index_ + 1, std::span<const uint8_t>(plaintext.data() + 8 + part * kShamirShareBytes,
                                                 kShamirShareBytes));
        if (!decoded.ok()) status = DataLossError(decoded.status().message());
      }
    }
    if (status.ok()) {
      std::copy_n(plaintext.data() + 8, kShamirShareBytes,
                  peer.mask_key_share.MutableReveal().data());
      std::copy_n(plaintext.data() + 8 + kShamirShareBytes, kShamirShareBytes,
                  peer.self_mask_share.MutableReveal().data());
      auto seed = internal::DerivePairwiseSeed(shared_mask[i], round_, index_, peer.index);
      if (seed.ok()) {
        seeds[i] = std::move(*seed);
      } else {
        status = seed.status();
      }
    }
    SecureWipe(plaintext.data(), plaintext.size());
    statuses[i] = std::move(status);
  }
  for (const Status& status : statuses) {
    if (!status.ok()) return AbortWith(status);
  }

  // Round 2, second half: y = x + PRG(b) + sum_v (+/-) PRG(s_{u,v}) mod 2^32.
  std::vector<MaskTerm> terms;
  terms.reserve(senders.size() + 1);
  terms.push_back({self_mask_seed_.Reveal(), MaskSign::kAdd});
  for (size_t i = 0; i < senders.size(); ++i) {
    terms.push_back({seeds[i].Reveal(), internal::PairwiseSign(index_, senders[i]->index)});
  }
  MaskedInputMessage message;
  message.sender = index_;
  message.masked_input.assign(input.begin(), input.end());
  Status status = ApplyMasks(terms, message.masked_input, config_.max_threads);
  if (!status.ok()) {
    SecureWipe(message.masked_input.data(), message.masked_input.size() * sizeof(uint32_t));
    return AbortWith(status);
  }
  // The keys and b are no longer needed: the server rebuilds what it must from shares.
  encryption_keys_.private_key = X25519PrivateKey();
  mask_keys_.private_key = X25519PrivateKey();
  self_mask_seed_ = SecretBytes<kPrgSeedBytes>();
  state_ = ClientState::kUnmasking;
  return message;
}

Result<UnmaskResponseMessage> ClientSession::Unmask(const UnmaskRequestMessage& request) {
  if (state_ != ClientState::kUnmasking) {
    return FailedPreconditionError("Unmask called out of order");
  }
  auto strictly_ascending = [this](const std::vector<uint32_t>& list) {
    for (size_t i = 0; i < list.size(); ++i) {
      if (list[i] >= config_.num_clients || (i > 0 && list[i] <= list[i - 1])) return false;
    }
    return true;
  };
  if (!strictly_ascending(request.survivors) || !strictly_ascending(request.dropped)) {
    return AbortWith(InvalidArgumentError(
        "unmask request lists are not ascending client indices within the cohort"));
  }
  auto contains = [](const std::vector<uint32_t>& list, uint32_t index) {
    return std::binary_search(list.begin(), list.end(), index);
  };
  if (!contains(request.survivors, index_) || contains(request.dropped, index_)) {
    return AbortWith(InvalidArgumentError("unmask request does not list client " +
                                          std::to_string(index_) + " as a survivor"));
  }
  // Round 4 (Unmasking) of Bonawitz et al. 2017: each neighbour that shared with us is either a
  // survivor (reveal its b share) or dropped (reveal its s_sk share), never both. Anything
  // else means the server's view differs from ours; reveal nothing.
  UnmaskResponseMessage response;
  response.sender = index_;
  size_t group_survivors = 1;  // ourselves
  for (const Peer& peer : peers_) {
    const bool survived = contains(request.survivors, peer.index);
    const bool dropped = contains(request.dropped, peer.index);
    if (survived && dropped) {
      return AbortWith(InvalidArgumentError("unmask request lists client " +
                                            std::to_string(peer.index) + " in both lists"));
    }
    if (peer.shared != (survived || dropped)) {
      return AbortWith(InvalidArgumentError(
          "unmask request " + std::string(peer.shared ? "omits" : "lists") + " client " +
          std::to_string(peer.index) + ", which " + (peer.shared ? "shared" : "did not share") +
          " keys with client " + std::to_string(index_)));
    }
    if (survived) ++group_survivors;
  }
  if (group_survivors < config_.threshold) {
    return AbortWith(internal::BelowThreshold("Unmasking", group_survivors, config_.threshold));
  }
  auto reveal = [](uint32_t owner, const SecretBytes<kShamirShareBytes>& share) {
    RevealedShare revealed;
    revealed.owner = owner;
    revealed.share.assign(share.Reveal().begin(), share.Reveal().end());
    return revealed;
  };
  response.self_mask_shares.push_back(reveal(index_, own_self_mask_share_));
  for (const Peer& peer : peers_) {
    if (!peer.shared) continue;
    if (contains(request.survivors, peer.index)) {
      response.self_mask_shares.push_back(reveal(peer.index, peer.self_mask_share));
    } else {
      response.mask_key_shares.push_back(reveal(peer.index, peer.mask_key_share));
    }
  }
  WipeSecrets();
  state_ = ClientState::kDone;
  return response;
}

}  // namespace edgefl::privacy::secagg

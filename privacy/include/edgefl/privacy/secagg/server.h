// ServerSession: the server's side of one secure-aggregation round (Bonawitz et al. 2017,
// figure 4; SecAgg+ of Bell et al. 2020), as a state machine with no I/O and no clock.
//
// The caller (the coordinator's round engine) feeds it each client message as it arrives and
// calls Finish*() when a step's deadline passes; whoever has not sent by then has dropped.
// The session sees only messages: masked inputs are folded into a running sum as they arrive,
// so no individual input, masked or not, is kept, and the only unmasked vector it ever holds
// is the sum of at least `threshold` inputs that FinishUnmasking returns. A message that fails
// validation is rejected whole and its sender counts as dropped for that step. Whenever fewer
// than the threshold remain, the session aborts: it wipes its state and every later call
// returns kFailedPrecondition. One thread drives a session.
//
//   EDGEFL_ASSIGN_OR_RETURN(ServerSession s, ServerSession::Create(config, round));
//   for (auto& m : advertised) s.ReceiveAdvertiseKeys(m).IgnoreError();  // rejects = dropouts
//   EDGEFL_RETURN_IF_ERROR(s.FinishAdvertiseKeys());  // then KeyDirectoryFor(each client) ...
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "edgefl/common/ids.h"
#include "edgefl/common/status.h"
#include "edgefl/privacy/secagg/config.h"
#include "edgefl/privacy/secagg/crypto.h"
#include "edgefl/privacy/secagg/messages.h"
#include "edgefl/privacy/secagg/shamir.h"

namespace edgefl::privacy::secagg {

enum class ServerState : uint8_t {
  kAdvertiseKeys,          // collecting AdvertiseKeysMessage
  kShareKeys,              // serving KeyDirectoryFor, collecting ShareKeysMessage
  kMaskedInputCollection,  // serving RelayFor, collecting MaskedInputMessage
  kUnmasking,              // collecting UnmaskResponseMessage
  kDone,                   // the sum was returned
  kAborted,                // too few clients, or Abort(); state wiped
};

// Receive*() errors, common to every step: kFailedPrecondition when the session is not in that
// step or the sender left the round at an earlier step; kInvalidArgument for a sender outside
// the cohort or a malformed message; kAlreadyExists for a second message from one sender.
// A rejected message changes nothing. Finish*() errors: kFailedPrecondition out of order;
// kAborted (the session aborts) when too few clients remain.
class ServerSession {
 public:
  // kInvalidArgument when config fails Validate().
  [[nodiscard]] static Result<ServerSession> Create(const SecAggConfig& config, RoundId round);

  ServerSession(ServerSession&&) noexcept;
  ServerSession& operator=(ServerSession&&) noexcept;
  ~ServerSession();

  // Step 0: records the sender's public keys (kInvalidArgument unless 32 bytes each).
  [[nodiscard]] Status ReceiveAdvertiseKeys(const AdvertiseKeysMessage& message);
  // Ends step 0. Clients whose group could never reach the threshold are dropped (SecAgg+);
  // kAborted when fewer than threshold clients remain.
  [[nodiscard]] Status FinishAdvertiseKeys();
  // The keys of the recipient's neighbours still in the round. kFailedPrecondition unless in
  // kShareKeys and the recipient is still in the round.
  [[nodiscard]] Result<KeyDirectoryMessage> KeyDirectoryFor(uint32_t recipient) const;

  // Step 1: stores the sender's encrypted shares, which must be exactly one per neighbour in
  // its key directory (kInvalidArgument otherwise).
  [[nodiscard]] Status ReceiveShareKeys(ShareKeysMessage message);
  // Ends step 1, dropping clients whose group fell below the threshold; kAborted when fewer
  // than threshold clients remain.
  [[nodiscard]] Status FinishShareKeys();
  // The shares addressed to the recipient by neighbours that shared keys. kFailedPrecondition
  // unless in kMaskedInputCollection and the recipient shared keys.
  [[nodiscard]] Result<ShareKeysRelayMessage> RelayFor(uint32_t recipient) const;

  // Step 2: adds the masked input into the running sum (kInvalidArgument unless it has
  // vector_length values).
  [[nodiscard]] Status ReceiveMaskedInput(const MaskedInputMessage& message);
  // Ends step 2 and returns the request to broadcast to the survivors. kAborted when fewer than
  // threshold clients sent inputs, or when some survivor's self mask or some dropped client's
  // mask key could no longer be rebuilt (fewer than threshold surviving in its group).
  [[nodiscard]] Result<UnmaskRequestMessage> FinishMaskedInputCollection();

  // Step 3: stores revealed shares. kInvalidArgument for a share of a client that is not the
  // sender's neighbour or itself, a self-mask share of a dropped client or a mask-key share of
  // a survivor, a repeat, or a malformed share.
  [[nodiscard]] Status ReceiveUnmaskResponse(const UnmaskResponseMessage& message);
  // Ends step 3: rebuilds the survivors' self-mask seeds and the dropped clients' mask keys,
  // removes their masks and returns sum over survivors() of the inputs, mod 2^32.
  // kAborted when fewer than threshold responded or some secret has fewer than threshold
  // shares; kDataLoss (and abort) when a rebuilt mask key does not match its public key.
  [[nodiscard]] Result<std::vector<uint32_t>> FinishUnmasking();

  // Abandons the round and wipes all state. Idempotent.
  void Abort();

  ServerState state() const { return state_; }
  const SecAggConfig& config() const { return config_; }
  // The clients whose message the current step waits for, ascending (empty when done/aborted).
  std::vector<uint32_t> ExpectedSenders() const;
  // The clients whose inputs are in the sum; set by FinishMaskedInputCollection.
  std::span<const uint32_t> survivors() const { return survivors_; }
  // Clients that shared keys but sent no input; set by FinishMaskedInputCollection.
  std::span<const uint32_t> dropped() const { return dropped_; }

 private:
  ServerSession(const SecAggConfig& config, RoundId round);
  Status AbortWith(Status status);
  // Drops members whose group (neighbours in `members` + itself) is below the threshold,
  // until none is; returns how many remain.
  size_t PruneSmallGroups(std::vector<uint8_t>& members) const;

  SecAggConfig config_;
  RoundId round_;
  NeighbourGraph graph_;
  ServerState state_ = ServerState::kAdvertiseKeys;
  // Per client: in the round after the last Finish (1) or not (0), and sent this step (1).
  std::vector<uint8_t> active_;
  std::vector<uint8_t> received_;
  std::vector<X25519PublicKey> encryption_keys_;
  std::vector<X25519PublicKey> mask_keys_;
  // Per sender: its encrypted shares, ascending by recipient.
  std::vector<std::vector<EncryptedShare>> shares_;
  std::vector<uint8_t> shared_keys_;  // U2 membership, kept for the unmasking step
  std::vector<uint32_t> sum_;
  std::vector<uint32_t> survivors_;
  std::vector<uint32_t> dropped_;
  // Per owner: revealed shares of its self-mask seed (survivors) or mask key (dropped).
  std::vector<std::vector<ShamirShare>> revealed_;
};

}  // namespace edgefl::privacy::secagg

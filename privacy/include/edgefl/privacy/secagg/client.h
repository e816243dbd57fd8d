// ClientSession: one client's side of one secure-aggregation round (Bonawitz et al. 2017,
// figure 4; SecAgg+ neighbourhoods of Bell et al. 2020), as a state machine with no I/O.
//
// Each step takes the server's message of the previous step and returns the client's next
// message; the caller moves bytes. The session owns the client's secrets for the round (two
// X25519 key pairs, the self-mask seed, shares received from neighbours) and wipes each as
// soon as the protocol no longer needs it, and all of them when it ends or aborts.
// Deliberately missing: signatures on advertised keys and the consistency-check round of the
// actively secure variant (the server is trusted to relay faithfully, but a majority threshold
// keeps it from learning both shares of any client). One thread drives a session; sessions
// are independent.
//
//   EDGEFL_ASSIGN_OR_RETURN(ClientSession c, ClientSession::Create(config, round, index));
//   EDGEFL_ASSIGN_OR_RETURN(AdvertiseKeysMessage m0, c.AdvertiseKeys());
//   ... ShareKeys(directory) -> MaskInput(relay, input) -> Unmask(request)
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

enum class ClientState : uint8_t {
  kAdvertiseKeys,  // next: AdvertiseKeys()
  kShareKeys,      // next: ShareKeys()
  kMaskedInput,    // next: MaskInput()
  kUnmasking,      // next: Unmask()
  kDone,           // the client's part is over; secrets wiped
  kAborted,        // the round was abandoned; secrets wiped
};

class ClientSession {
 public:
  // kInvalidArgument when config fails Validate() or index >= config.num_clients.
  [[nodiscard]] static Result<ClientSession> Create(const SecAggConfig& config, RoundId round,
                                                    uint32_t index);

  ClientSession(ClientSession&&) noexcept;
  ClientSession& operator=(ClientSession&&) noexcept;
  ~ClientSession();

  // Step 0: draws the round's key pairs and self-mask seed. kFailedPrecondition unless
  // state() == kAdvertiseKeys; kInternal if the CSPRNG fails (the session aborts).
  [[nodiscard]] Result<AdvertiseKeysMessage> AdvertiseKeys();

  // Step 1: Shamir-shares the mask key and self-mask seed among the neighbours in `directory`
  // and encrypts one share to each. kFailedPrecondition unless state() == kShareKeys. The
  // session aborts with kInvalidArgument for a malformed directory (wrong recipient, a
  // non-neighbour, a repeat, a bad key size, keys that are not all distinct) and with kAborted
  // when fewer than threshold - 1 neighbours remain.
  [[nodiscard]] Result<ShareKeysMessage> ShareKeys(const KeyDirectoryMessage& directory);

  // Step 2: decrypts the neighbours' shares in `relay`, then returns input + PRG(b) + the
  // pairwise masks with every neighbour that shared, mod 2^32. kFailedPrecondition unless
  // state() == kMaskedInput; kInvalidArgument when input.size() != vector_length (the session
  // stays in kMaskedInput). The session aborts with kInvalidArgument for a malformed relay,
  // kDataLoss when a share does not decrypt (tampered or misrouted), and kAborted when fewer
  // than threshold - 1 neighbours shared.
  [[nodiscard]] Result<MaskedInputMessage> MaskInput(const ShareKeysRelayMessage& relay,
                                                     std::span<const uint32_t> input);

  // Step 3: reveals, for each neighbour (and itself), the self-mask share of survivors and the
  // mask-key share of dropped clients; never both for one client. kFailedPrecondition unless
  // state() == kUnmasking. The session aborts with kInvalidArgument when the request is
  // malformed or contradicts what the client saw (lists unsorted or overlapping, this client
  // not a survivor, a neighbour that shared keys in neither list or one that did not share in
  // either) and with kAborted when fewer than threshold of its group survived.
  [[nodiscard]] Result<UnmaskResponseMessage> Unmask(const UnmaskRequestMessage& request);

  // Abandons the round (e.g. on a deadline) and wipes every secret. Idempotent.
  void Abort();

  ClientState state() const { return state_; }
  uint32_t index() const { return index_; }
  // This client's neighbours in the round's graph, ascending.
  std::span<const uint32_t> neighbours() const { return neighbours_; }

 private:
  struct Peer;

  ClientSession(const SecAggConfig& config, RoundId round, uint32_t index);
  // Wipes secrets, enters kAborted and returns `status`.
  Status AbortWith(Status status);
  void WipeSecrets();
  Peer* FindPeer(uint32_t index);

  SecAggConfig config_;
  RoundId round_;
  uint32_t index_ = 0;
  ClientState state_ = ClientState::kAdvertiseKeys;
  std::vector<uint32_t> neighbours_;
  X25519KeyPair encryption_keys_;
  X25519KeyPair mask_keys_;
  SecretBytes<kPrgSeedBytes> self_mask_seed_;
  SecretBytes<kShamirShareBytes> own_self_mask_share_;
  std::vector<Peer> peers_;  // the key directory, ascending by index
};

}  // namespace edgefl::privacy::secagg

// RoundEngine: runs synchronous federated rounds. This is the one round engine of DESIGN.md:
// the ZeroMQ coordinator service and the simulator both drive it, differing only in the
// Channel and Clock they hand it.
//
// One round: select a cohort (over-selected for expected dropouts), send each member the
// round's training config and the global weights, collect updates until enough have reported,
// everyone has answered, or the deadline passes; fold each valid update into the Strategy as
// it arrives (O(model) memory); apply the server step; publish. A client's failure is data:
// every cohort member's outcome is recorded in the RoundReport and the round goes on.
//
// A round with no deadline waits for every member; a caller that must be able to stop it (the
// coordinator service on SIGINT, `edgefl simulate --workers` when a worker dies) passes a
// cancel flag, and the round ends within 100 ms of the flag being set, applying nothing.
//
// The engine owns the global weights and the strategy; it borrows the channel and registry.
// Driven by one thread; only the cancel flag may be written by other threads (or a signal
// handler).
//
//   RoundEngine engine(options, initial_weights, std::move(strategy), channel, registry);
//   engine.AcceptRegistrations();
//   EDGEFL_ASSIGN_OR_RETURN(RoundReport report, engine.RunRound(&stop));
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "edgefl/aggregation/strategy.h"
#include "edgefl/common/clock.h"
#include "edgefl/common/ids.h"
#include "edgefl/common/status.h"
#include "edgefl/coordinator/registry.h"
#include "edgefl/privacy/accountant.h"
#include "edgefl/transport/channel.h"
#include "edgefl/transport/messages.h"

namespace edgefl::coordinator {

// Where differential-privacy noise is added (DP-FedAvg, McMahan et al. 2018).
enum class DpMode : uint8_t {
  kNone = 0,
  kCentral = 1,      // the coordinator adds Gaussian noise to the sum of clipped updates
  kDistributed = 2,  // each device adds discrete Gaussian noise under secure aggregation
                     // (Kairouz et al. 2021); needs secure_aggregation
};

// "none", "central" or "distributed"; kInvalidArgument listing them otherwise.
Result<DpMode> ParseDpMode(std::string_view name);

// The engine's seeds, derived from one experiment seed. The simulator and the coordinator
// service both derive them here, so the same seed is the same experiment in either (the
// one-engine equality test depends on it).
uint64_t DeriveSelectionSeed(uint64_t experiment_seed);
uint64_t DeriveTrainingSeed(uint64_t experiment_seed);

struct PrivacyOptions {
  DpMode dp = DpMode::kNone;
  // L2 norm every update is clipped to (> 0). With DP it sets the sensitivity; with secure
  // aggregation alone it bounds the fixed-point range, so its default is loose enough not to
  // bind on ordinary updates. Default 100; DP users want ~0.1-1.
  double clip_norm = 100.0;
  // sigma: the noise on the sum of a round has standard deviation sigma * clip_norm (> 0).
  double noise_multiplier = 1.0;
  // Delta of the reported (epsilon, delta), in (0, 1). Default 1e-5.
  double delta = 1e-5;
  // Secure aggregation (Bonawitz et al. 2017): the coordinator learns only the cohort's sum.
  bool secure_aggregation = false;
  // 0 = complete graph; k > 0 = SecAgg+ with k neighbours per device (Bell et al. 2020).
  uint32_t secagg_neighbours = 0;
  // Fraction of a device's group whose shares reconstruct its secrets: the threshold is
  // floor(fraction * group) + 1, at least 2. Default 0.5 (an honest majority).
  double secagg_threshold_fraction = 0.5;
  // Bits of headroom left when choosing the fixed-point scale so the sum cannot wrap mod 2^32.
  int encoding_headroom_bits = 1;
  // Seeds central noise; real deployments set secure_noise to draw it from OpenSSL instead.
  bool secure_noise = false;

  bool clips() const { return dp != DpMode::kNone || secure_aggregation; }
  Status Validate() const;
};

struct EngineOptions {
  // Updates wanted per round (> 0). Default 10.
  size_t clients_per_round = 10;
  // Extra fraction selected to absorb dropouts, >= 0: 0.3 selects 13 for 10. Default 0.
  double over_selection = 0.0;
  // A round with fewer reported updates than this (>= 1) is failed and leaves the global
  // weights unchanged. Default 1.
  size_t min_clients_reported = 1;
  // Time a round waits for updates after sending the weights; max() waits for every member.
  Clock::Duration round_deadline = Clock::Duration::max();
  // RunBufferedStep (FedBuff) only: devices kept training at once; 0 = clients_per_round x
  // (1 + over_selection). The buffer size K is clients_per_round. Default 0.
  size_t async_concurrency = 0;
  // Local training hyper-parameters sent to the cohort each round.
  transport::TrainingConfig training;
  // Seeds cohort selection; the training seed is training.seed.
  uint64_t seed = 1;
  // When set, only registered clients for which it returns true at the round's start time
  // are selected (device availability, e.g. the simulator's daily windows). It must be a pure
  // function of its arguments so that selection stays seeded. Default: everyone registered.
  std::function<bool(ClientId, Clock::Duration)> is_available;
  // Differential privacy and secure aggregation; off by default.
  PrivacyOptions privacy;
  // kInvalidArgument naming the field when out of range.
  Status Validate() const;
};

enum class ClientOutcomeKind : uint8_t {
  kReported = 0,  // update accepted into the aggregate
  kDropped = 1,   // no answer before the deadline (or not needed after enough reported)
  kRejected = 2,  // answered with an invalid update (wrong size, NaN, zero examples)
  kFailed = 3,    // answered with an error
};
const char* ClientOutcomeName(ClientOutcomeKind kind);

struct ClientOutcome {
  ClientId client;
  ClientOutcomeKind kind = ClientOutcomeKind::kDropped;
  std::string reason;  // empty when reported
};

struct RoundReport {
  RoundId round;
  size_t num_clients_selected = 0;
  size_t num_clients_reported = 0;
  size_t num_clients_dropped = 0;
  size_t num_clients_rejected = 0;  // rejected + failed
  uint64_t num_examples_reported = 0;
  double train_loss = 0.0;  // mean of reported losses weighted by num_examples
  Clock::Duration started_at{0};
  Clock::Duration finished_at{0};
  // OK when the aggregate was applied; otherwise why the global weights did not change.
  Status status;
  std::vector<ClientOutcome> outcomes;  // one per cohort member, ascending client id
  size_t num_stray_messages = 0;        // messages from outside the cohort or round, ignored
  // RunBufferedStep only: mean staleness (server steps between an update's model version and
  // the one it was applied to) of the buffered updates.
  double mean_staleness = 0.0;
  // (epsilon, delta) spent by all applied rounds so far, those restored from a checkpoint
  // included (privacy_spent()); 0 without DP.
  double epsilon = 0.0;
  double best_rdp_order = 0.0;
};

class RoundEngine {
 public:
  // `initial_weights` is the global model's trainable buffer. Options must be valid
  // (checked); the strategy must have been made for initial_weights.size() parameters.
  RoundEngine(EngineOptions options, std::vector<float> initial_weights,
              std::unique_ptr<aggregation::Strategy> strategy,
              transport::CoordinatorChannel& channel, ClientRegistry& registry);

  // Handles every message that has already arrived (registrations, heartbeats, strays)
  // without waiting. Returns the number handled.
  size_t AcceptRegistrations();

  // Runs the next round. Errors only for the engine's own failures; a round that collected
  // too few updates returns an OK Result whose report.status says why. kFailedPrecondition
  // when fewer clients are registered than min_clients_reported.
  //
  // `cancel` (optional, borrowed for the call) is read while the round waits for devices. Once
  // it reads true the round stops waiting and returns an OK Result with report.status
  // kCancelled ("round N cancelled: ..."): what arrived is discarded, the global weights, model
  // version and privacy accounting stay as they were, members still awaited are dropped, and
  // the round id is used up, so late answers to it are ignored as strays. A round that has
  // everything it waits for when the flag is set completes as usual. With a flag, each wait
  // lasts at most 100 ms of the channel's clock before the flag is read again; pass one only
  // with a channel on a wall clock (the ZeroMQ channel). The in-process channel never blocks
  // (it returns kDeadlineExceeded when nothing is left to arrive) and needs none: sliced waits
  // would move its virtual clock through an idle round 100 ms at a time.
  Result<RoundReport> RunRound(const std::atomic<bool>* cancel = nullptr);

  // One FedBuff server step (Nguyen et al. 2022; aggregation/fedbuff.h): keeps
  // async_concurrency devices training (each on the model version current when it was sent,
  // replacing each as it answers), scales every arriving update by 1/sqrt(1 + staleness),
  // and applies the strategy once clients_per_round updates are buffered. Devices are picked
  // uniformly from the available ones not already training, seeded. In the report,
  // num_clients_selected counts devices sent work during this step and num_clients_dropped
  // those given up (past round_deadline since they were sent, or lost). kFailedPrecondition
  // with DP or secure aggregation (not supported asynchronously) or with no registered client.
  // `cancel` as for RunRound: a cancelled step applies nothing (report.status kCancelled) and
  // keeps the devices it sent work to in flight for the next step.
  Result<RoundReport> RunBufferedStep(const std::atomic<bool>* cancel = nullptr);

  std::span<const float> global_weights() const { return *global_weights_; }
  // Replaces the global weights and round counter (checkpoint resume). kInvalidArgument on a
  // size mismatch.
  Status Restore(std::span<const float> weights, RoundId last_completed_round);
  RoundId last_round() const { return last_round_; }
  // The privacy accountant's state for a checkpoint; empty (no orders) without DP.
  privacy::RdpAccountantState accountant_state() const;
  // After Restore, continues the privacy accounting of the restored rounds, so that epsilon
  // covers every round ever applied to the model, across restarts. `state` comes from
  // accountant_state() of an earlier engine (via a checkpoint); empty means its rounds carry no
  // accounting. Rounds run with another noise multiplier, cohort size or population are
  // accounted exactly: RDP adds up over rounds of any parameters. Errors, leaving the accountant
  // unchanged:
  //   kFailedPrecondition  DP is on but the last_round() rounds before have no accounting (run
  //                        without DP, or written before checkpoints carried it): their epsilon
  //                        is unknown and any epsilon reported would leave them out; or DP is
  //                        off but `state` records DP rounds, whose accounting would stop.
  //   kInvalidArgument     a malformed state (RdpAccountant::LoadState).
  Status RestoreAccountant(privacy::RdpAccountantState state);
  // (epsilon, delta) spent so far at options().privacy.delta by every applied round, restored
  // ones included; zero without DP or before any DP round.
  privacy::PrivacySpent privacy_spent() const;
  const aggregation::Strategy& strategy() const { return *strategy_; }
  aggregation::Strategy& strategy() { return *strategy_; }
  const EngineOptions& options() const { return options_; }

 private:
  // Handles a message that is not part of the current round's collection. Returns true if it
  // was a control message (registration, heartbeat, goodbye).
  bool HandleControl(const transport::Message& message);
  Status ValidateUpdate(const transport::Update& update) const;
  // The channel's next message before `deadline`; with a `cancel` flag, kCancelled once it
  // reads true (RunRound's contract).
  Result<transport::Message> ReceiveUnlessCancelled(RoundId round, Clock::Duration deadline,
                                                    const std::atomic<bool>* cancel);
  // Collects plain (float) updates; folds them into the strategy, or, with DP, clips them into
  // private_sum_. kCancelled when `cancel` cut the collection short.
  Status CollectUpdates(RoundId round, const std::vector<ClientId>& cohort,
                        std::map<ClientId, ClientOutcome>& outcomes, RoundReport& report,
                        double& weighted_loss, const std::atomic<bool>* cancel);
  // Runs the four secure-aggregation steps; leaves the decoded sum in private_sum_ and returns
  // the number of devices in it (kAborted below the threshold, kCancelled when `cancel` cut a
  // step short).
  Result<size_t> RunSecureAggregation(RoundId round, const std::vector<ClientId>& cohort,
                                      const transport::PrivacySettings& settings,
                                      std::map<ClientId, ClientOutcome>& outcomes,
                                      RoundReport& report, double& weighted_loss,
                                      const std::atomic<bool>* cancel);
  // Adds central noise to private_sum_ when configured and hands it to the strategy.
  Status AccumulatePrivateSum(RoundId round, size_t num_clients);

  EngineOptions options_;
  std::shared_ptr<std::vector<float>> global_weights_;
  std::unique_ptr<aggregation::Strategy> strategy_;
  transport::CoordinatorChannel& channel_;
  ClientRegistry& registry_;
  RoundId last_round_{0};
  uint64_t model_version_ = 0;
  std::vector<float> private_sum_;  // sum of clipped updates in DP / secure-aggregation rounds
  std::unique_ptr<privacy::RdpAccountant> accountant_;
  // RunBufferedStep: devices training now, with the model version and step they were sent.
  struct InFlight {
    uint64_t model_version = 0;
    RoundId round;
    Clock::Duration sent_at{0};
  };
  std::map<ClientId, InFlight> in_flight_;
  uint64_t num_dispatch_batches_ = 0;
};

}  // namespace edgefl::coordinator

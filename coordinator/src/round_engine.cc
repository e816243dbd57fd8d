#include "edgefl/coordinator/round_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <variant>

#include "edgefl/aggregation/fedbuff.h"
#include "edgefl/common/check.h"
#include "edgefl/common/random.h"
#include "edgefl/coordinator/selection.h"
#include "edgefl/privacy/clipping.h"
#include "edgefl/privacy/encoding.h"
#include "edgefl/privacy/noise.h"
#include "edgefl/privacy/secagg/server.h"
#include "edgefl/privacy/secagg_wire.h"

namespace edgefl::coordinator {

using transport::Message;

Status EngineOptions::Validate() const {
  if (clients_per_round == 0) return InvalidArgumentError("clients_per_round must be > 0");
  if (!(over_selection >= 0.0) || over_selection > 10.0) {
    return InvalidArgumentError("over_selection must be in [0, 10], got " +
                                std::to_string(over_selection));
  }
  if (min_clients_reported == 0) return InvalidArgumentError("min_clients_reported must be >= 1");
  if (min_clients_reported > clients_per_round) {
    return InvalidArgumentError("min_clients_reported (" + std::to_string(min_clients_reported) +
                                ") exceeds clients_per_round (" +
                                std::to_string(clients_per_round) + ")");
  }
  if (round_deadline.count() <= 0) return InvalidArgumentError("round_deadline must be > 0");
  if (training.batch_size == 0) return InvalidArgumentError("batch_size must be > 0");
  if (training.local_epochs == 0 && training.local_steps == 0) {
    return InvalidArgumentError("local_epochs and local_steps are both 0: nothing to train");
  }
  if (!(training.learning_rate > 0.0f)) return InvalidArgumentError("learning_rate must be > 0");
  return privacy.Validate();
}

namespace {

// The outcome of a cohort member that has not answered yet.
constexpr char kNoAnswer[] = "no answer";

// The longest a cancellable wait goes without reading its flag: how late a stop request (Ctrl-C
// on the coordinator, a dead sim-worker) can be noticed mid-round. An idle round wakes this often.
constexpr Clock::Duration kCancelCheckInterval = std::chrono::milliseconds(100);

// A round logs at most this many refused messages, so a misbehaving device cannot flood the log
// (each one is still counted in num_stray_messages).
constexpr size_t kMaxRefusalLinesPerRound = 10;

// Why a message the engine will not use cannot come from a device that follows the protocol, or
// nullptr when it can: an answer to an earlier round is an ordinary straggler (or an
// over-selected member the round stopped waiting for). `current` is the round being collected,
// or the last completed one between rounds.
const char* StrayRefusalReason(RoundId current, RoundId message_round, bool selected,
                               bool answered) {
  if (message_round.value() < current.value()) return nullptr;
  if (message_round.value() > current.value()) return "that round has not started";
  if (!selected) return "the client is not in that round's cohort";
  if (answered) return "no answer from the client is awaited (it already answered)";
  return nullptr;
}

// Logs one stray message: a warning when it is refused (until the round's cap), else debug.
// `num_strays` counts this round's strays including this one.
void LogStray(RoundId current, const Message& message, const char* refusal, size_t num_strays) {
  const char* type = transport::MessageTypeName(transport::TypeOf(message.body));
  if (refusal == nullptr || num_strays > kMaxRefusalLinesPerRound) {
    spdlog::debug("round {}: ignoring {} from client {} for round {}", current.value(), type,
                  message.sender.value(), message.round.value());
    return;
  }
  spdlog::warn("round {}: refused {} from client {} for round {}: {}", current.value(), type,
               message.sender.value(), message.round.value(), refusal);
  if (num_strays == kMaxRefusalLinesPerRound) {
    spdlog::warn("round {}: further stray messages this round are not logged", current.value());
  }
}

}  // namespace

Result<DpMode> ParseDpMode(std::string_view name) {
  if (name == "none") return DpMode::kNone;
  if (name == "central") return DpMode::kCentral;
  if (name == "distributed") return DpMode::kDistributed;
  return InvalidArgumentError("dp must be one of none, central, distributed; got '" +
                              std::string(name) + "'");
}

uint64_t DeriveSelectionSeed(uint64_t experiment_seed) {
  return DeriveSeed(experiment_seed, 0x5e1ecULL);
}

uint64_t DeriveTrainingSeed(uint64_t experiment_seed) {
  return DeriveSeed(experiment_seed, 0x7a1eULL);
}

Status PrivacyOptions::Validate() const {
  if (!(clip_norm > 0.0) || !std::isfinite(clip_norm)) {
    return InvalidArgumentError("clip_norm must be > 0, got " + std::to_string(clip_norm));
  }
  if (dp != DpMode::kNone && !(noise_multiplier > 0.0)) {
    return InvalidArgumentError("noise_multiplier must be > 0, got " +
                                std::to_string(noise_multiplier));
  }
  if (!(delta > 0.0 && delta < 1.0)) {
    return InvalidArgumentError("delta must be in (0, 1), got " + std::to_string(delta));
  }
  if (dp == DpMode::kDistributed && !secure_aggregation) {
    return InvalidArgumentError(
        "distributed DP needs secure aggregation: without it the coordinator would see each "
        "device's noisy update");
  }
  if (!(secagg_threshold_fraction > 0.0 && secagg_threshold_fraction < 1.0)) {
    return InvalidArgumentError("secagg_threshold_fraction must be in (0, 1)");
  }
  if (encoding_headroom_bits < 0 || encoding_headroom_bits > 16) {
    return InvalidArgumentError("encoding_headroom_bits must be in [0, 16]");
  }
  return OkStatus();
}

const char* ClientOutcomeName(ClientOutcomeKind kind) {
  switch (kind) {
    case ClientOutcomeKind::kReported: return "reported";
    case ClientOutcomeKind::kDropped: return "dropped";
    case ClientOutcomeKind::kRejected: return "rejected";
    case ClientOutcomeKind::kFailed: return "failed";
  }
  return "unknown";
}

RoundEngine::RoundEngine(EngineOptions options, std::vector<float> initial_weights,
                         std::unique_ptr<aggregation::Strategy> strategy,
                         transport::CoordinatorChannel& channel, ClientRegistry& registry)
    : options_(std::move(options)),
      global_weights_(std::make_shared<std::vector<float>>(std::move(initial_weights))),
      strategy_(std::move(strategy)),
      channel_(channel),
      registry_(registry) {
  const Status valid = options_.Validate();
  EDGEFL_CHECK(valid.ok()) << valid.ToString();
  EDGEFL_CHECK(strategy_ != nullptr);
  if (options_.privacy.dp != DpMode::kNone) {
    accountant_ = std::make_unique<privacy::RdpAccountant>();
  }
}

Status RoundEngine::Restore(std::span<const float> weights, RoundId last_completed_round) {
  if (weights.size() != global_weights_->size()) {
    return InvalidArgumentError("restored weights have " + std::to_string(weights.size()) +
                                " values, model has " + std::to_string(global_weights_->size()));
  }
  std::copy(weights.begin(), weights.end(), global_weights_->begin());
  last_round_ = last_completed_round;
  model_version_ = last_completed_round.value();
  return OkStatus();
}

privacy::RdpAccountantState RoundEngine::accountant_state() const {
  return accountant_ ? accountant_->SaveState() : privacy::RdpAccountantState{};
}

Status RoundEngine::RestoreAccountant(privacy::RdpAccountantState state) {
  const uint64_t num_rounds = last_round_.value();
  if (!accountant_) {
    if (state.orders.empty()) return OkStatus();
    Result<privacy::PrivacySpent> restored =
        privacy::ComputePrivacySpent(state.orders, state.rdp, options_.privacy.delta);
    const std::string spent = restored.ok() ? fmt::format(" (epsilon {:.4g} at delta {:g})",
                                                          restored->epsilon, options_.privacy.delta)
                                            : std::string();
    return FailedPreconditionError(fmt::format(
        "DP is off, but the {} rounds before include {} DP rounds{}: resuming without DP would "
        "stop accounting for them. Resume with the DP mode they ran with",
        num_rounds, state.num_steps, spent));
  }
  if (state.orders.empty()) {
    if (num_rounds == 0) return OkStatus();
    return FailedPreconditionError(fmt::format(
        "DP is on, but the {} rounds before carry no privacy accounting (they ran without DP, or "
        "their checkpoint predates accounting): the epsilon they spent is unknown, and any "
        "epsilon reported would leave them out. Resume them without DP, or start a new run "
        "without this checkpoint",
        num_rounds));
  }
  return accountant_->LoadState(std::move(state));
}

privacy::PrivacySpent RoundEngine::privacy_spent() const {
  if (!accountant_ || accountant_->num_steps() == 0) return {};
  // delta was validated with the options and the RDP values by AddSteps/LoadState, so an error
  // here is a bug.
  Result<privacy::PrivacySpent> spent = accountant_->GetPrivacySpent(options_.privacy.delta);
  EDGEFL_CHECK(spent.ok()) << spent.status().ToString();
  return *spent;
}

bool RoundEngine::HandleControl(const Message& message) {
  const Clock::Duration now = channel_.clock().Now();
  if (const auto* hello = std::get_if<transport::Hello>(&message.body)) {
    registry_.Register(message.sender, hello->num_examples, now);
    const Status sent = channel_.Send(
        message.sender,
        Message{.sender = ClientId{0},
                .round = last_round_,
                .body = transport::Welcome{.assigned_id = message.sender,
                                           .num_parameters = global_weights_->size()}});
    if (!sent.ok()) spdlog::warn("welcome to client {} not sent: {}", message.sender.value(), sent.ToString());
    return true;
  }
  if (std::holds_alternative<transport::Heartbeat>(message.body)) {
    registry_.MarkSeen(message.sender, now);
    return true;
  }
  if (std::holds_alternative<transport::Goodbye>(message.body)) {
    registry_.Unregister(message.sender);
    return true;
  }
  return false;
}

size_t RoundEngine::AcceptRegistrations() {
  size_t handled = 0, num_strays = 0;
  while (true) {
    Result<Message> message = channel_.Receive(channel_.clock().Now());
    if (!message.ok()) break;
    ++handled;
    if (!HandleControl(*message)) {
      // No round is open: only a late answer to the last one (or an earlier one) is expected.
      LogStray(last_round_, *message,
               StrayRefusalReason(last_round_, message->round, /*selected=*/false,
                                  /*answered=*/false),
               ++num_strays);
    }
  }
  return handled;
}

Result<Message> RoundEngine::ReceiveUnlessCancelled(RoundId round, Clock::Duration deadline,
                                                    const std::atomic<bool>* cancel) {
  if (cancel == nullptr) return channel_.Receive(deadline);
  while (!cancel->load()) {
    const Clock::Duration now = channel_.clock().Now();
    const Clock::Duration until =
        deadline - now > kCancelCheckInterval ? now + kCancelCheckInterval : deadline;
    Result<Message> received = channel_.Receive(until);
    // A slice that passes empty is not the round's deadline: read the flag and wait on.
    if (received.ok() || until == deadline ||
        received.status().code() != StatusCode::kDeadlineExceeded) {
      return received;
    }
  }
  return CancelledError("round " + std::to_string(round.value()) +
                        " cancelled: stop requested while waiting for devices");
}

Status RoundEngine::ValidateUpdate(const transport::Update& update) const {
  if (update.delta.size() != global_weights_->size()) {
    return InvalidArgumentError("update has " + std::to_string(update.delta.size()) +
                                " values, model has " + std::to_string(global_weights_->size()));
  }
  if (update.num_examples == 0) return InvalidArgumentError("update reports 0 examples");
  for (size_t i = 0; i < update.delta.size(); ++i) {
    if (!std::isfinite(update.delta[i])) {
      return InvalidArgumentError("update value " + std::to_string(i) + " is not finite");
    }
  }
  if (!std::isfinite(update.train_loss)) return InvalidArgumentError("train_loss is not finite");
  return OkStatus();
}

Status RoundEngine::CollectUpdates(RoundId round, const std::vector<ClientId>& cohort,
                                   std::map<ClientId, ClientOutcome>& outcomes,
                                   RoundReport& report, double& weighted_loss,
                                   const std::atomic<bool>* cancel) {
  const PrivacyOptions& privacy = options_.privacy;
  const Clock::Duration deadline = options_.round_deadline == Clock::Duration::max()
                                       ? Clock::Duration::max()
                                       : report.started_at + options_.round_deadline;
  size_t num_answered = 0;
  while (report.num_clients_reported < options_.clients_per_round && num_answered < cohort.size()) {
    Result<Message> received = ReceiveUnlessCancelled(round, deadline, cancel);
    if (!received.ok()) {
      if (received.status().code() == StatusCode::kCancelled) return received.status();
      if (received.status().code() != StatusCode::kDeadlineExceeded) {
        spdlog::warn("round {}: receive failed: {}", round.value(), received.status().ToString());
      }
      break;
    }
    Message& message = *received;
    if (HandleControl(message)) continue;
    auto outcome = outcomes.find(message.sender);
    const bool selected = outcome != outcomes.end();
    const bool answered = selected && outcome->second.reason != kNoAnswer;
    if (message.round != round || !selected || answered) {
      LogStray(round, message, StrayRefusalReason(round, message.round, selected, answered),
               ++report.num_stray_messages);
      continue;
    }
    ClientOutcome& result = outcome->second;
    ++num_answered;
    registry_.MarkSeen(message.sender, channel_.clock().Now());
    if (auto* update = std::get_if<transport::Update>(&message.body)) {
      Status valid = ValidateUpdate(*update);
      if (valid.ok() && privacy.dp == DpMode::kCentral) {
        // The trusted coordinator clips again: the sensitivity must not rest on the devices.
        Result<double> norm = privacy::ClipToNorm(update->delta, privacy.clip_norm);
        valid = norm.status();
        if (valid.ok()) {
          for (size_t i = 0; i < private_sum_.size(); ++i) private_sum_[i] += update->delta[i];
        }
      } else if (valid.ok()) {
        valid = strategy_->Accumulate(aggregation::ClientUpdate{
            .client = message.sender, .delta = update->delta, .num_examples = update->num_examples});
      }
      if (!valid.ok()) {
        result = ClientOutcome{message.sender, ClientOutcomeKind::kRejected, valid.message()};
        spdlog::warn("round {}: rejected update from client {}: {}", round.value(),
                     message.sender.value(), valid.message());
        continue;
      }
      result = ClientOutcome{message.sender, ClientOutcomeKind::kReported, ""};
      ++report.num_clients_reported;
      report.num_examples_reported += update->num_examples;
      weighted_loss += static_cast<double>(update->train_loss) * update->num_examples;
      if (ClientRecord* record = registry_.Find(message.sender)) ++record->num_rounds_reported;
    } else if (auto* error = std::get_if<transport::ErrorReply>(&message.body)) {
      result = ClientOutcome{message.sender, ClientOutcomeKind::kFailed,
                             std::string(StatusCodeName(error->code)) + ": " + error->message};
    } else {
      result = ClientOutcome{message.sender, ClientOutcomeKind::kRejected,
                             std::string("unexpected ") +
                                 transport::MessageTypeName(transport::TypeOf(message.body))};
    }
  }
  return OkStatus();
}

Result<size_t> RoundEngine::RunSecureAggregation(RoundId round, const std::vector<ClientId>& cohort,
                                                 const transport::PrivacySettings& settings,
                                                 std::map<ClientId, ClientOutcome>& outcomes,
                                                 RoundReport& report, double& weighted_loss,
                                                 const std::atomic<bool>* cancel) {
  using privacy::SecAggStep;
  namespace secagg = privacy::secagg;
  const secagg::SecAggConfig config{.num_clients = settings.cohort_size,
                                    .threshold = settings.threshold,
                                    .neighbours = settings.neighbours,
                                    .vector_length = static_cast<uint32_t>(private_sum_.size()),
                                    .graph_seed = settings.graph_seed};
  EDGEFL_ASSIGN_OR_RETURN(secagg::ServerSession session, secagg::ServerSession::Create(config, round));
  std::map<ClientId, uint32_t> index_of;
  for (uint32_t i = 0; i < cohort.size(); ++i) index_of[cohort[i]] = i;
  const Clock::Duration step_deadline =
      options_.round_deadline == Clock::Duration::max()
          ? Clock::Duration::max()
          : report.started_at + options_.round_deadline;

  // One protocol step: wait for `step` from each index in `expected` and hand it to `accept`.
  // Anything else from the cohort is recorded; a device that stays silent is a dropout.
  // kCancelled when `cancel` ended the wait: the session must not go on to its next step.
  auto collect = [&](SecAggStep step, std::vector<uint32_t> expected,
                     const std::function<Status(uint32_t, privacy::SecAggMessage&)>& accept)
      -> Status {
    std::vector<uint8_t> waiting(cohort.size(), 0);
    for (uint32_t i : expected) waiting[i] = 1;
    size_t remaining = expected.size();
    while (remaining > 0) {
      Result<Message> received = ReceiveUnlessCancelled(round, step_deadline, cancel);
      if (!received.ok()) {
        if (received.status().code() == StatusCode::kCancelled) return received.status();
        break;
      }
      Message& message = *received;
      if (HandleControl(message)) continue;
      auto index = index_of.find(message.sender);
      auto* payload = std::get_if<transport::SecAggPayload>(&message.body);
      const bool selected = index != index_of.end();
      const bool answered = selected && !waiting[index->second];
      if (message.round != round || !selected || answered) {
        LogStray(round, message, StrayRefusalReason(round, message.round, selected, answered),
                 ++report.num_stray_messages);
        continue;
      }
      ClientOutcome& outcome = outcomes[message.sender];
      waiting[index->second] = 0;
      --remaining;
      if (auto* error = std::get_if<transport::ErrorReply>(&message.body)) {
        outcome = ClientOutcome{message.sender, ClientOutcomeKind::kFailed,
                                std::string(StatusCodeName(error->code)) + ": " + error->message};
        continue;
      }
      Status status = payload == nullptr || payload->step != static_cast<uint8_t>(step)
                          ? InvalidArgumentError("expected secure-aggregation step " +
                                                 std::to_string(static_cast<int>(step)))
                          : OkStatus();
      Result<privacy::SecAggMessage> decoded =
          status.ok() ? privacy::DecodeSecAgg(step, payload->payload) : Result<privacy::SecAggMessage>(status);
      if (decoded.ok()) status = accept(index->second, *decoded);
      else status = decoded.status();
      if (!status.ok()) {
        outcome = ClientOutcome{message.sender, ClientOutcomeKind::kRejected, status.message()};
        spdlog::warn("round {}: secure aggregation: client {}: {}", round.value(),
                     message.sender.value(), status.message());
        continue;
      }
      if (step == SecAggStep::kAdvertiseKeys) {
        outcome.reason = "dropped during secure aggregation";
        report.num_examples_reported += payload->num_examples;
        weighted_loss += static_cast<double>(payload->train_loss) * payload->num_examples;
      }
    }
    return OkStatus();
  };
  auto send = [&](uint32_t index, const privacy::SecAggMessage& message) {
    transport::SecAggPayload payload{.step = static_cast<uint8_t>(privacy::StepOf(message)),
                                     .payload = privacy::EncodeSecAgg(message)};
    Status sent = channel_.Send(cohort[index], Message{.sender = ClientId{0}, .round = round,
                                                       .body = std::move(payload)});
    if (!sent.ok()) spdlog::warn("round {}: send to client {} failed: {}", round.value(),
                                 cohort[index].value(), sent.message());
  };

  // Step 0: the devices trained and advertised their keys.
  std::vector<uint32_t> everyone(cohort.size());
  for (uint32_t i = 0; i < everyone.size(); ++i) everyone[i] = i;
  EDGEFL_RETURN_IF_ERROR(collect(
      SecAggStep::kAdvertiseKeys, everyone, [&](uint32_t i, privacy::SecAggMessage& m) {
        auto& keys = std::get<secagg::AdvertiseKeysMessage>(m);
        if (keys.sender != i) return InvalidArgumentError("advertised index does not match sender");
        return session.ReceiveAdvertiseKeys(keys);
      }));
  EDGEFL_RETURN_IF_ERROR(session.FinishAdvertiseKeys());
  for (uint32_t i : session.ExpectedSenders()) {
    EDGEFL_ASSIGN_OR_RETURN(secagg::KeyDirectoryMessage directory, session.KeyDirectoryFor(i));
    send(i, directory);
  }
  // Step 1: encrypted key shares, relayed.
  EDGEFL_RETURN_IF_ERROR(collect(
      SecAggStep::kShareKeys, session.ExpectedSenders(),
      [&](uint32_t i, privacy::SecAggMessage& m) {
        auto& shares = std::get<secagg::ShareKeysMessage>(m);
        if (shares.sender != i) return InvalidArgumentError("share sender does not match sender");
        return session.ReceiveShareKeys(std::move(shares));
      }));
  EDGEFL_RETURN_IF_ERROR(session.FinishShareKeys());
  for (uint32_t i : session.ExpectedSenders()) {
    EDGEFL_ASSIGN_OR_RETURN(secagg::ShareKeysRelayMessage relay, session.RelayFor(i));
    send(i, relay);
  }
  // Step 2: masked inputs.
  EDGEFL_RETURN_IF_ERROR(collect(
      SecAggStep::kMaskedInput, session.ExpectedSenders(),
      [&](uint32_t i, privacy::SecAggMessage& m) {
        auto& masked = std::get<secagg::MaskedInputMessage>(m);
        if (masked.sender != i) {
          return InvalidArgumentError("masked input sender does not match sender");
        }
        return session.ReceiveMaskedInput(masked);
      }));
  EDGEFL_ASSIGN_OR_RETURN(secagg::UnmaskRequestMessage request, session.FinishMaskedInputCollection());
  for (uint32_t i : request.survivors) send(i, request);
  // Step 3: unmasking, with dropped devices' masks recovered from their neighbours' shares.
  EDGEFL_RETURN_IF_ERROR(collect(
      SecAggStep::kUnmaskResponse, request.survivors, [&](uint32_t i, privacy::SecAggMessage& m) {
        auto& response = std::get<secagg::UnmaskResponseMessage>(m);
        if (response.sender != i) {
          return InvalidArgumentError("unmask sender does not match sender");
        }
        return session.ReceiveUnmaskResponse(response);
      }));
  EDGEFL_ASSIGN_OR_RETURN(std::vector<uint32_t> sum, session.FinishUnmasking());
  EDGEFL_RETURN_IF_ERROR(privacy::Decode(sum, settings.encoding_scale, private_sum_));
  for (uint32_t i : request.survivors) {
    ClientOutcome& outcome = outcomes[cohort[i]];
    if (outcome.kind == ClientOutcomeKind::kDropped) {
      outcome = ClientOutcome{cohort[i], ClientOutcomeKind::kReported, ""};
      ++report.num_clients_reported;
      if (ClientRecord* record = registry_.Find(cohort[i])) ++record->num_rounds_reported;
    }
  }
  return request.survivors.size();
}

Status RoundEngine::AccumulatePrivateSum(RoundId round, size_t num_clients) {
  const PrivacyOptions& privacy = options_.privacy;
  if (privacy.dp == DpMode::kCentral) {
    EDGEFL_ASSIGN_OR_RETURN(
        Rng rng, privacy::MakeNoiseRng(privacy.secure_noise ? privacy::NoiseSeeding::kSecureRandom
                                                            : privacy::NoiseSeeding::kSeeded,
                                       DeriveSeed(options_.seed, 0xd9ULL, round.value())));
    EDGEFL_RETURN_IF_ERROR(
        privacy::AddGaussianNoise(private_sum_, privacy.noise_multiplier * privacy.clip_norm, rng));
  }
  // DP-FedAvg weighs every device equally (McMahan et al. 2018): weighting by example counts
  // would let one device's count change the sensitivity.
  return strategy_->AccumulateSum(private_sum_, static_cast<double>(num_clients), num_clients);
}

Result<RoundReport> RoundEngine::RunRound(const std::atomic<bool>* cancel) {
  AcceptRegistrations();
  const RoundId round = last_round_.Next();
  const PrivacyOptions& privacy = options_.privacy;
  RoundReport report;
  report.round = round;
  report.started_at = channel_.clock().Now();

  std::vector<ClientId> available = registry_.Available();
  if (options_.is_available) {
    std::erase_if(available, [this, &report](ClientId client) {
      return !options_.is_available(client, report.started_at);
    });
  }
  if (available.size() < options_.min_clients_reported) {
    return FailedPreconditionError("round " + std::to_string(round.value()) + " needs at least " +
                                   std::to_string(options_.min_clients_reported) +
                                   " available clients, " + std::to_string(available.size()) +
                                   " available");
  }
  const size_t cohort_size =
      CohortSizeWithOverSelection(options_.clients_per_round, options_.over_selection);
  const std::vector<ClientId> cohort = SelectCohort(available, cohort_size, options_.seed, round);
  report.num_clients_selected = cohort.size();

  transport::PrivacySettings settings;
  if (privacy.clips()) {
    settings.dp_mode = static_cast<uint8_t>(privacy.dp);
    settings.clip_norm = static_cast<float>(privacy.clip_norm);
    private_sum_.assign(global_weights_->size(), 0.0f);
  }
  if (privacy.secure_aggregation) {
    if (cohort.size() < 2) {
      return FailedPreconditionError("secure aggregation needs a cohort of at least 2");
    }
    settings.secure_aggregation = true;
    settings.cohort_size = static_cast<uint32_t>(cohort.size());
    settings.neighbours = privacy.secagg_neighbours;
    settings.graph_seed = DeriveSeed(options_.seed, 0x6a7bULL, round.value());
    const uint32_t group = privacy.secagg_neighbours == 0 ||
                                   privacy.secagg_neighbours + 1 >= cohort.size()
                               ? static_cast<uint32_t>(cohort.size())
                               : privacy.secagg_neighbours + 1;
    settings.threshold = std::max<uint32_t>(
        2, static_cast<uint32_t>(std::floor(privacy.secagg_threshold_fraction * group)) + 1);
    settings.threshold = std::min(settings.threshold, group);
    // Distributed DP: each device's share of the discrete Gaussian noise, in encoded units, so
    // the cohort's noise adds up to variance (sigma * C * scale)^2 (Kairouz et al. 2021).
    const double noise_on_sum = privacy.dp == DpMode::kDistributed
                                    ? privacy.noise_multiplier * privacy.clip_norm
                                    : 0.0;
    EDGEFL_ASSIGN_OR_RETURN(settings.encoding_scale,
                            privacy::ChooseEncodingScale(privacy.clip_norm, cohort.size(),
                                                         noise_on_sum,
                                                         privacy.encoding_headroom_bits));
    settings.local_noise_stddev =
        noise_on_sum * settings.encoding_scale / std::sqrt(static_cast<double>(cohort.size()));
  }

  // Devices train on a snapshot: the live buffer changes at Finish while a straggler may
  // still be reading what it was sent.
  auto snapshot = std::make_shared<const std::vector<float>>(*global_weights_);
  std::map<ClientId, ClientOutcome> outcomes;
  for (size_t i = 0; i < cohort.size(); ++i) {
    const ClientId client = cohort[i];
    outcomes[client] = ClientOutcome{client, ClientOutcomeKind::kDropped, kNoAnswer};
    if (ClientRecord* record = registry_.Find(client)) ++record->num_rounds_selected;
    transport::PrivacySettings mine = settings;
    mine.cohort_index = static_cast<uint32_t>(i);
    Status sent = channel_.Send(client, Message{.sender = ClientId{0},
                                                .round = round,
                                                .body = transport::RoundStart{
                                                    .model_version = model_version_,
                                                    .training = options_.training,
                                                    .global_weights = snapshot,
                                                    .privacy = mine}});
    if (!sent.ok()) outcomes[client].reason = "send failed: " + sent.message();
  }

  double weighted_loss = 0.0;
  Status aggregate_status;
  size_t num_in_private_sum = 0;
  if (privacy.secure_aggregation) {
    Result<size_t> survivors =
        RunSecureAggregation(round, cohort, settings, outcomes, report, weighted_loss, cancel);
    if (survivors.ok()) {
      num_in_private_sum = *survivors;
    } else {
      aggregate_status = survivors.status();
      if (aggregate_status.code() != StatusCode::kCancelled) {
        spdlog::warn("round {}: secure aggregation aborted: {}", round.value(),
                     survivors.status().message());
      }
    }
  } else {
    aggregate_status = CollectUpdates(round, cohort, outcomes, report, weighted_loss, cancel);
    num_in_private_sum = report.num_clients_reported;
  }
  const bool cancelled = aggregate_status.code() == StatusCode::kCancelled;

  for (auto& [client, outcome] : outcomes) {
    if (outcome.kind == ClientOutcomeKind::kDropped && outcome.reason == kNoAnswer) {
      if (cancelled) {
        outcome.reason = "no answer before the round was cancelled";
      } else if (report.num_clients_reported >= options_.clients_per_round) {
        outcome.reason = "not needed: enough updates arrived first";
      }
    }
    switch (outcome.kind) {
      case ClientOutcomeKind::kReported: break;
      case ClientOutcomeKind::kDropped: ++report.num_clients_dropped; break;
      case ClientOutcomeKind::kRejected:
      case ClientOutcomeKind::kFailed: ++report.num_clients_rejected; break;
    }
    report.outcomes.push_back(outcome);
  }
  if (report.num_examples_reported > 0) {
    report.train_loss = weighted_loss / static_cast<double>(report.num_examples_reported);
  }

  last_round_ = round;
  if (cancelled) {
    strategy_->DiscardRound();
    report.status = aggregate_status;
  } else if (!aggregate_status.ok()) {
    strategy_->DiscardRound();
    report.status = AbortedError("round " + std::to_string(round.value()) + ": " +
                                 aggregate_status.message());
  } else if (report.num_clients_reported < options_.min_clients_reported) {
    strategy_->DiscardRound();
    report.status = AbortedError("round " + std::to_string(round.value()) + ": " +
                                 std::to_string(report.num_clients_reported) +
                                 " updates reported, at least " +
                                 std::to_string(options_.min_clients_reported) + " needed");
  } else {
    if (privacy.dp == DpMode::kCentral || privacy.secure_aggregation) {
      report.status = AccumulatePrivateSum(round, num_in_private_sum);
    }
    if (report.status.ok()) report.status = strategy_->Finish(*global_weights_);
    if (report.status.ok()) {
      ++model_version_;
      if (accountant_) {
        // Uniform cohorts of a fixed size: the accountant's sampling rate is cohort/population.
        const double q = std::min(1.0, static_cast<double>(options_.clients_per_round) /
                                           static_cast<double>(available.size()));
        Status added = accountant_->AddSteps(q, privacy.noise_multiplier, 1,
                                             privacy::Sampling::kFixedSize);
        if (!added.ok()) spdlog::warn("privacy accountant: {}", added.message());
      }
    }
  }
  const privacy::PrivacySpent spent = privacy_spent();
  report.epsilon = spent.epsilon;
  report.best_rdp_order = spent.best_order;
  report.finished_at = channel_.clock().Now();
  return report;
}

Result<RoundReport> RoundEngine::RunBufferedStep(const std::atomic<bool>* cancel) {
  if (options_.privacy.clips()) {
    return FailedPreconditionError(
        "buffered asynchronous aggregation (FedBuff) supports neither DP nor secure aggregation");
  }
  AcceptRegistrations();
  const RoundId round = last_round_.Next();
  RoundReport report;
  report.round = round;
  report.started_at = channel_.clock().Now();
  if (registry_.size() == 0) {
    return FailedPreconditionError("round " + std::to_string(round.value()) +
                                   " needs at least one registered client");
  }
  const size_t concurrency =
      options_.async_concurrency > 0
          ? options_.async_concurrency
          : CohortSizeWithOverSelection(options_.clients_per_round, options_.over_selection);
  const bool has_deadline = options_.round_deadline != Clock::Duration::max();
  auto snapshot = std::make_shared<const std::vector<float>>(*global_weights_);
  std::vector<ClientId> candidates = registry_.Available();
  if (options_.is_available) {
    std::erase_if(candidates, [this, &report](ClientId client) {
      return !options_.is_available(client, report.started_at);
    });
  }

  // Gives up on devices past the deadline and sends work to fresh ones up to `concurrency`.
  const auto top_up = [&] {
    const Clock::Duration now = channel_.clock().Now();
    if (has_deadline) {
      report.num_clients_dropped += std::erase_if(in_flight_, [&](const auto& entry) {
        return now - entry.second.sent_at >= options_.round_deadline;
      });
    }
    if (in_flight_.size() >= concurrency) return;
    std::vector<ClientId> idle;
    idle.reserve(candidates.size());
    for (ClientId client : candidates) {
      if (!in_flight_.contains(client)) idle.push_back(client);
    }
    const std::vector<ClientId> picked =
        SelectCohort(idle, concurrency - in_flight_.size(), DeriveSeed(options_.seed, 0xfbULL),
                     RoundId{++num_dispatch_batches_});
    for (ClientId client : picked) {
      in_flight_[client] = InFlight{model_version_, round, now};
      ++report.num_clients_selected;
      if (ClientRecord* record = registry_.Find(client)) ++record->num_rounds_selected;
      Status sent = channel_.Send(client, Message{.sender = ClientId{0},
                                                  .round = round,
                                                  .body = transport::RoundStart{
                                                      .model_version = model_version_,
                                                      .training = options_.training,
                                                      .global_weights = snapshot,
                                                      .privacy = {}}});
      if (!sent.ok()) {
        in_flight_.erase(client);
        ++report.num_clients_dropped;
      }
    }
  };

  double weighted_loss = 0.0, staleness_sum = 0.0;
  size_t idle_receives = 0;
  Status cancellation;  // kCancelled once `cancel` ended the step
  while (report.num_clients_reported < options_.clients_per_round) {
    top_up();
    if (in_flight_.empty()) break;  // nobody left to ask
    Clock::Duration wait = Clock::Duration::max();
    if (has_deadline) {
      for (const auto& [client, info] : in_flight_) {
        wait = std::min(wait, info.sent_at + options_.round_deadline);
      }
    }
    Result<Message> received = ReceiveUnlessCancelled(round, wait, cancel);
    if (!received.ok()) {
      if (received.status().code() == StatusCode::kCancelled) {
        cancellation = received.status();
        break;
      }
      if (received.status().code() != StatusCode::kDeadlineExceeded) {
        spdlog::warn("step {}: receive failed: {}", round.value(), received.status().ToString());
        break;
      }
      if (!has_deadline) {
        // Nothing can arrive any more (an in-process channel with nothing pending): every
        // device in flight is lost. Give up after two such turns in a row.
        report.num_clients_dropped += in_flight_.size();
        in_flight_.clear();
        if (++idle_receives >= 2) break;
      }
      continue;
    }
    idle_receives = 0;
    Message& message = *received;
    if (HandleControl(message)) continue;
    auto flight = in_flight_.find(message.sender);
    if (flight == in_flight_.end() || flight->second.round != message.round) {
      ++report.num_stray_messages;
      continue;
    }
    const InFlight info = flight->second;
    in_flight_.erase(flight);
    registry_.MarkSeen(message.sender, channel_.clock().Now());
    auto* update = std::get_if<transport::Update>(&message.body);
    if (update == nullptr) {
      ++report.num_clients_rejected;
      continue;
    }
    Status valid = ValidateUpdate(*update);
    const uint64_t staleness = model_version_ - info.model_version;
    if (valid.ok()) {
      const float scale = aggregation::FedBuffStalenessWeight(staleness);
      for (float& x : update->delta) x *= scale;
      valid = strategy_->Accumulate(aggregation::ClientUpdate{
          .client = message.sender, .delta = update->delta, .num_examples = update->num_examples});
    }
    if (!valid.ok()) {
      ++report.num_clients_rejected;
      spdlog::warn("step {}: rejected update from client {}: {}", round.value(),
                   message.sender.value(), valid.message());
      continue;
    }
    ++report.num_clients_reported;
    report.num_examples_reported += update->num_examples;
    weighted_loss += static_cast<double>(update->train_loss) * update->num_examples;
    staleness_sum += static_cast<double>(staleness);
    if (ClientRecord* record = registry_.Find(message.sender)) ++record->num_rounds_reported;
  }
  if (report.num_examples_reported > 0) {
    report.train_loss = weighted_loss / static_cast<double>(report.num_examples_reported);
  }
  if (report.num_clients_reported > 0) {
    report.mean_staleness = staleness_sum / static_cast<double>(report.num_clients_reported);
  }
  last_round_ = round;
  if (!cancellation.ok()) {
    strategy_->DiscardRound();
    report.status = cancellation;
  } else if (report.num_clients_reported < options_.min_clients_reported) {
    strategy_->DiscardRound();
    report.status = AbortedError("step " + std::to_string(round.value()) + ": " +
                                 std::to_string(report.num_clients_reported) +
                                 " updates buffered, at least " +
                                 std::to_string(options_.min_clients_reported) + " needed");
  } else {
    report.status = strategy_->Finish(*global_weights_);
    if (report.status.ok()) ++model_version_;
  }
  report.finished_at = channel_.clock().Now();
  return report;
}

}  // namespace edgefl::coordinator

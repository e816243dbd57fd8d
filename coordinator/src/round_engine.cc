#include "edgefl/coordinator/round_engine.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <variant>

#include "edgefl/coordinator/selection.h"

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
  size_t handled = 0;
  while (true) {
    Result<Message> message = channel_.Receive(channel_.clock().Now());
    if (!message.ok()) break;
    ++handled;
    if (!HandleControl(*message)) {
      spdlog::debug("ignoring {} from client {} outside a round",
                    transport::MessageTypeName(transport::TypeOf(message->body)),
                    message->sender.value());
    }
  }
  return handled;
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

Result<RoundReport> RoundEngine::RunRound() {
  AcceptRegistrations();
  const RoundId round = last_round_.Next();
  RoundReport report;
  report.round = round;
  report.started_at = channel_.clock().Now();

  const std::vector<ClientId> available = registry_.Available();
  if (available.size() < options_.min_clients_reported) {
    return FailedPreconditionError("round " + std::to_string(round.value()) + " needs at least " +
                                   std::to_string(options_.min_clients_reported) +
                                   " registered clients, " + std::to_string(available.size()) +
                                   " registered");
  }
  const size_t cohort_size =
      CohortSizeWithOverSelection(options_.clients_per_round, options_.over_selection);
  const std::vector<ClientId> cohort = SelectCohort(available, cohort_size, options_.seed, round);
  report.num_clients_selected = cohort.size();

  // Devices train on a snapshot: the live buffer changes at Finish while a straggler may
  // still be reading what it was sent.
  auto snapshot = std::make_shared<const std::vector<float>>(*global_weights_);
  transport::TrainingConfig training = options_.training;
  std::map<ClientId, ClientOutcome> outcomes;
  for (ClientId client : cohort) {
    outcomes[client] = ClientOutcome{client, ClientOutcomeKind::kDropped, "no answer"};
    if (ClientRecord* record = registry_.Find(client)) ++record->num_rounds_selected;
    Status sent = channel_.Send(client, Message{.sender = ClientId{0},
                                                .round = round,
                                                .body = transport::RoundStart{
                                                    .model_version = model_version_,
                                                    .training = training,
                                                    .global_weights = snapshot}});
    if (!sent.ok()) outcomes[client].reason = "send failed: " + sent.message();
  }

  const Clock::Duration deadline = options_.round_deadline == Clock::Duration::max()
                                       ? Clock::Duration::max()
                                       : report.started_at + options_.round_deadline;
  size_t num_answered = 0;
  double weighted_loss = 0.0;
  while (report.num_clients_reported < options_.clients_per_round && num_answered < cohort.size()) {
    Result<Message> received = channel_.Receive(deadline);
    if (!received.ok()) {
      if (received.status().code() != StatusCode::kDeadlineExceeded) {
        spdlog::warn("round {}: receive failed: {}", round.value(), received.status().ToString());
      }
      break;
    }
    Message& message = *received;
    if (HandleControl(message)) continue;
    auto outcome = outcomes.find(message.sender);
    if (message.round != round || outcome == outcomes.end() ||
        outcome->second.reason != "no answer") {
      ++report.num_stray_messages;
      spdlog::debug("round {}: ignoring {} from client {} for round {}", round.value(),
                    transport::MessageTypeName(transport::TypeOf(message.body)),
                    message.sender.value(), message.round.value());
      continue;
    }
    ClientOutcome& result = outcome->second;
    ++num_answered;
    registry_.MarkSeen(message.sender, channel_.clock().Now());
    if (auto* update = std::get_if<transport::Update>(&message.body)) {
      Status valid = ValidateUpdate(*update);
      if (valid.ok()) {
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

  for (auto& [client, outcome] : outcomes) {
    if (outcome.kind == ClientOutcomeKind::kDropped && outcome.reason == "no answer" &&
        report.num_clients_reported >= options_.clients_per_round) {
      outcome.reason = "not needed: enough updates arrived first";
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
  if (report.num_clients_reported < options_.min_clients_reported) {
    strategy_->DiscardRound();
    report.status = AbortedError("round " + std::to_string(round.value()) + ": " +
                                 std::to_string(report.num_clients_reported) +
                                 " updates reported, at least " +
                                 std::to_string(options_.min_clients_reported) + " needed");
  } else {
    report.status = strategy_->Finish(*global_weights_);
    if (report.status.ok()) ++model_version_;
  }
  report.finished_at = channel_.clock().Now();
  return report;
}

}  // namespace edgefl::coordinator

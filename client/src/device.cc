#include "edgefl/client/device.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <string_view>
#include <variant>

#include "edgefl/common/check.h"
#include "edgefl/common/random.h"
#include "edgefl/privacy/clipping.h"
#include "edgefl/privacy/encoding.h"
#include "edgefl/privacy/noise.h"
#include "edgefl/privacy/secagg/client.h"
#include "edgefl/privacy/secagg_wire.h"
#include "edgefl/models/optimizer.h"
#include "edgefl/models/training.h"
#include "edgefl/transport/limits.h"

namespace edgefl::client {

using transport::Message;

struct Device::SecureRound {
  RoundId round;
  privacy::secagg::ClientSession session;
  std::vector<uint32_t> encoded;
};

namespace {

// The device's own check of whatever a trainer returned, before clipping and encoding: a NaN
// would poison clipping and the fixed-point encoding, and the coordinator would only reject it
// later and less clearly.
Status ValidateLocalUpdate(const LocalUpdate& update, size_t num_weights) {
  if (update.delta.size() != num_weights) {
    return InvalidArgumentError("update has " + std::to_string(update.delta.size()) +
                                " values for " + std::to_string(num_weights) + " global weights");
  }
  for (size_t i = 0; i < update.delta.size(); ++i) {
    if (!std::isfinite(update.delta[i])) {
      return InvalidArgumentError("update value " + std::to_string(i) + " is " +
                                  std::to_string(update.delta[i]) + ", not finite");
    }
  }
  if (update.num_examples == 0) return InvalidArgumentError("update reports 0 examples");
  if (!std::isfinite(update.train_loss)) {
    return InvalidArgumentError("train_loss is " + std::to_string(update.train_loss) +
                                ", not finite");
  }
  return OkStatus();
}

// An ErrorReply longer than the wire limit could not be sent at all, and the coordinator would
// never learn why the device declined; a host trainer's message has no bound of its own. Cut
// at a UTF-8 character boundary so the text stays readable.
std::string FitErrorText(std::string_view text) {
  if (text.size() <= transport::kMaxErrorTextBytes) return std::string(text);
  constexpr std::string_view kCut = " [...]";
  size_t keep = transport::kMaxErrorTextBytes - kCut.size();
  while (keep > 0 && (static_cast<unsigned char>(text[keep]) & 0xC0) == 0x80) --keep;
  return std::string(text.substr(0, keep)) + std::string(kCut);
}

}  // namespace

Result<LocalUpdate> TrainOnLocalData(const TrainingRound& round, LocalData data,
                                     models::Model& model) {
  const std::span<const float> global = round.global_weights;
  if (global.size() != model.num_parameters()) {
    return InvalidArgumentError("global weights have " + std::to_string(global.size()) +
                                " values, model '" + model.name() + "' has " +
                                std::to_string(model.num_parameters()));
  }
  if (data.dataset == nullptr || data.indices.empty()) {
    return FailedPreconditionError("device has no local examples");
  }
  const transport::TrainingConfig& config = round.config;
  const models::SgdOptions sgd_options{.learning_rate = config.learning_rate,
                                       .momentum = config.momentum,
                                       .weight_decay = config.weight_decay,
                                       .proximal_mu = config.proximal_mu};
  EDGEFL_RETURN_IF_ERROR(sgd_options.Validate());
  if (config.batch_size == 0) return InvalidArgumentError("batch_size is 0");

  std::span<float> parameters = model.parameters();
  std::copy(global.begin(), global.end(), parameters.begin());

  models::Sgd sgd(sgd_options, model.num_parameters());
  if (config.proximal_mu > 0.0f) sgd.set_proximal_anchor(global);
  // The shuffling stream depends only on (seed, round, device), never on which thread runs it.
  Rng rng(DeriveSeed(config.seed, round.round.value(), round.client.value()));
  const models::TrainingResult result = models::TrainEpochs(
      model, sgd, *data.dataset, data.indices,
      models::TrainingOptions{.epochs = config.local_epochs,
                              .batch_size = config.batch_size,
                              .max_steps = config.local_steps},
      rng);

  LocalUpdate update;
  update.num_examples = data.indices.size();
  update.train_loss = static_cast<float>(result.mean_loss);
  update.delta.resize(global.size());
  for (size_t i = 0; i < global.size(); ++i) update.delta[i] = parameters[i] - global[i];
  return update;
}

Device::Device(ClientId id, LocalData data) : id_(id), data_(data) {}
Device::Device(ClientId id, HostTrainer host) : id_(id), host_(std::move(host)) {
  EDGEFL_CHECK(host_.train) << "HostTrainer::train is empty";
}
Device::Device(Device&&) noexcept = default;
Device& Device::operator=(Device&&) noexcept = default;
Device::~Device() = default;

Message Device::MakeHello(std::string device_name) const {
  return Message{.sender = id_,
                 .round = RoundId{0},
                 .body = transport::Hello{.device_name = std::move(device_name),
                                          .num_examples = num_examples()}};
}

std::vector<Message> Device::Handle(const Message& message, Workspace& workspace) {
  return HandleWith(message, &workspace);
}

std::vector<Message> Device::Handle(const Message& message) { return HandleWith(message, nullptr); }

std::vector<Message> Device::HandleWith(const Message& message, Workspace* workspace) {
  std::vector<Message> replies;
  if (const auto* start = std::get_if<transport::RoundStart>(&message.body)) {
    replies.push_back(Train(message.round, *start, workspace));
  } else if (const auto* payload = std::get_if<transport::SecAggPayload>(&message.body)) {
    replies.push_back(ContinueSecureAggregation(message.round, *payload));
  }
  return replies;
}

Message Device::Error(RoundId round, const Status& status) const {
  return Message{.sender = id_,
                 .round = round,
                 .body = transport::ErrorReply{.code = status.code(),
                                               .message = FitErrorText(status.message())}};
}

Result<LocalUpdate> Device::TrainLocally(const TrainingRound& round, Workspace* workspace) {
  if (!host_.train) {
    if (workspace == nullptr) {
      return FailedPreconditionError("the built-in trainer needs a Workspace with a model");
    }
    return TrainOnLocalData(round, data_, workspace->model());
  }
  if (host_.num_parameters != 0 && round.global_weights.size() != host_.num_parameters) {
    return InvalidArgumentError("global weights have " +
                                std::to_string(round.global_weights.size()) +
                                " values, the host trainer's model has " +
                                std::to_string(host_.num_parameters));
  }
  // The host's code is not ours: whatever it throws becomes this round's error, not a crash
  // of the device (or of a C program above the C API).
  try {
    Result<LocalUpdate> update = host_.train(round);
    if (!update.ok()) return update.status().WithContext("host trainer");
    return update;
  } catch (const std::exception& e) {
    return InternalError(std::string("host trainer threw: ") + e.what());
  } catch (...) {
    return InternalError("host trainer threw a non-standard exception");
  }
}

Message Device::Train(RoundId round, const transport::RoundStart& start, Workspace* workspace) {
  // A new round supersedes any unfinished secure session of an earlier one.
  secure_round_.reset();
  if (!start.global_weights) {
    return Error(round, InvalidArgumentError("round start carries no global weights"));
  }
  const std::vector<float>& global = *start.global_weights;
  Result<LocalUpdate> trained = TrainLocally(
      TrainingRound{.round = round, .client = id_, .config = start.training,
                    .global_weights = global},
      workspace);
  if (!trained.ok()) return Error(round, trained.status());
  LocalUpdate& update = *trained;
  if (Status valid = ValidateLocalUpdate(update, global.size()); !valid.ok()) {
    return Error(round, valid.WithContext("local training"));
  }

  // From here on the privacy pipeline, the same for every trainer.
  const transport::PrivacySettings& privacy = start.privacy;
  if (privacy.clip_norm > 0.0f) {
    Result<double> norm = privacy::ClipToNorm(update.delta, privacy.clip_norm);
    if (!norm.ok()) return Error(round, norm.status().WithContext("clipping the update"));
  }
  if (privacy.secure_aggregation) {
    return StartSecureAggregation(round, start, std::move(update.delta), update.num_examples,
                                  update.train_loss);
  }
  return Message{.sender = id_,
                 .round = round,
                 .body = transport::Update{.num_examples = update.num_examples,
                                           .train_loss = update.train_loss,
                                           .delta = std::move(update.delta)}};
}

Message Device::StartSecureAggregation(RoundId round, const transport::RoundStart& start,
                                       std::vector<float> delta, uint64_t num_examples,
                                       float train_loss) {
  const transport::PrivacySettings& settings = start.privacy;
  secure_round_.reset();
  const privacy::secagg::SecAggConfig config{.num_clients = settings.cohort_size,
                                             .threshold = settings.threshold,
                                             .neighbours = settings.neighbours,
                                             .vector_length = static_cast<uint32_t>(delta.size()),
                                             .graph_seed = settings.graph_seed,
                                             .max_threads = 1};
  Result<privacy::secagg::ClientSession> session =
      privacy::secagg::ClientSession::Create(config, round, settings.cohort_index);
  if (!session.ok()) return Error(round, session.status());
  std::vector<uint32_t> encoded(delta.size());
  // Rounding and noise draw from the device's own stream; their secrecy rests on the masks.
  Rng rng(DeriveSeed(start.training.seed, {round.value(), id_.value(), 0xe7c0deULL}));
  Status status = privacy::Encode(delta, settings.encoding_scale, rng, encoded);
  if (status.ok() && settings.local_noise_stddev > 0.0) {
    status = privacy::AddDiscreteGaussianNoise(encoded, settings.local_noise_stddev, rng);
  }
  if (!status.ok()) return Error(round, status);
  Result<privacy::secagg::AdvertiseKeysMessage> keys = session->AdvertiseKeys();
  if (!keys.ok()) return Error(round, keys.status());
  secure_round_ = std::make_unique<SecureRound>(
      SecureRound{round, std::move(session).value(), std::move(encoded)});
  return Message{.sender = id_,
                 .round = round,
                 .body = transport::SecAggPayload{
                     .step = static_cast<uint8_t>(privacy::SecAggStep::kAdvertiseKeys),
                     .num_examples = num_examples,
                     .train_loss = train_loss,
                     .payload = privacy::EncodeSecAgg(*keys)}};
}

Message Device::ContinueSecureAggregation(RoundId round, const transport::SecAggPayload& payload) {
  if (!secure_round_ || secure_round_->round != round) {
    return Error(round, FailedPreconditionError("no secure-aggregation session for round " +
                                                std::to_string(round.value())));
  }
  const auto step = static_cast<privacy::SecAggStep>(payload.step);
  Result<privacy::SecAggMessage> decoded = privacy::DecodeSecAgg(step, payload.payload);
  if (!decoded.ok()) return Error(round, decoded.status());
  privacy::secagg::ClientSession& session = secure_round_->session;
  Result<privacy::SecAggMessage> reply = InvalidArgumentError(
      "unexpected secure-aggregation step " + std::to_string(payload.step));
  if (auto* directory = std::get_if<privacy::secagg::KeyDirectoryMessage>(&*decoded)) {
    auto shares = session.ShareKeys(*directory);
    reply = shares.ok() ? Result<privacy::SecAggMessage>(std::move(shares).value())
                        : Result<privacy::SecAggMessage>(shares.status());
  } else if (auto* relay = std::get_if<privacy::secagg::ShareKeysRelayMessage>(&*decoded)) {
    auto masked = session.MaskInput(*relay, secure_round_->encoded);
    reply = masked.ok() ? Result<privacy::SecAggMessage>(std::move(masked).value())
                        : Result<privacy::SecAggMessage>(masked.status());
  } else if (auto* request = std::get_if<privacy::secagg::UnmaskRequestMessage>(&*decoded)) {
    auto response = session.Unmask(*request);
    reply = response.ok() ? Result<privacy::SecAggMessage>(std::move(response).value())
                          : Result<privacy::SecAggMessage>(response.status());
    secure_round_.reset();  // the device's part of the round is over; secrets are wiped
  }
  if (!reply.ok()) {
    secure_round_.reset();
    return Error(round, reply.status());
  }
  return Message{.sender = id_,
                 .round = round,
                 .body = transport::SecAggPayload{
                     .step = static_cast<uint8_t>(privacy::StepOf(*reply)),
                     .payload = privacy::EncodeSecAgg(*reply)}};
}

}  // namespace edgefl::client

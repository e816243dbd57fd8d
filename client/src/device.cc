#include "edgefl/client/device.h"

#include <algorithm>
#include <variant>

#include "edgefl/common/random.h"
#include "edgefl/privacy/clipping.h"
#include "edgefl/privacy/encoding.h"
#include "edgefl/privacy/noise.h"
#include "edgefl/privacy/secagg/client.h"
#include "edgefl/privacy/secagg_wire.h"
#include "edgefl/models/optimizer.h"
#include "edgefl/models/training.h"

namespace edgefl::client {

using transport::Message;

struct Device::SecureRound {
  RoundId round;
  privacy::secagg::ClientSession session;
  std::vector<uint32_t> encoded;
};

Device::Device(ClientId id, LocalData data) : id_(id), data_(data) {}
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
                 .body = transport::ErrorReply{.code = status.code(), .message = status.message()}};
}

Message Device::Train(RoundId round, const transport::RoundStart& start, Workspace& workspace) {
  models::Model& model = workspace.model();
  if (!start.global_weights || start.global_weights->size() != model.num_parameters()) {
    return Error(round, InvalidArgumentError(
                            "global weights have " +
                            std::to_string(start.global_weights ? start.global_weights->size() : 0) +
                            " values, model '" + model.name() + "' has " +
                            std::to_string(model.num_parameters())));
  }
  if (data_.dataset == nullptr || data_.indices.empty()) {
    return Error(round, FailedPreconditionError("device has no local examples"));
  }
  const transport::TrainingConfig& config = start.training;
  const models::SgdOptions sgd_options{.learning_rate = config.learning_rate,
                                       .momentum = config.momentum,
                                       .weight_decay = config.weight_decay,
                                       .proximal_mu = config.proximal_mu};
  if (Status valid = sgd_options.Validate(); !valid.ok()) return Error(round, valid);
  if (config.batch_size == 0) return Error(round, InvalidArgumentError("batch_size is 0"));

  const std::vector<float>& global = *start.global_weights;
  std::span<float> parameters = model.parameters();
  std::copy(global.begin(), global.end(), parameters.begin());

  models::Sgd sgd(sgd_options, model.num_parameters());
  if (config.proximal_mu > 0.0f) sgd.set_proximal_anchor(global);
  // The shuffling stream depends only on (seed, round, device), never on which thread runs it.
  Rng rng(DeriveSeed(config.seed, round.value(), id_.value()));
  const models::TrainingResult result = models::TrainEpochs(
      model, sgd, *data_.dataset, data_.indices,
      models::TrainingOptions{.epochs = config.local_epochs,
                              .batch_size = config.batch_size,
                              .max_steps = config.local_steps},
      rng);

  transport::Update update;
  update.num_examples = data_.indices.size();
  update.train_loss = static_cast<float>(result.mean_loss);
  update.delta.resize(global.size());
  for (size_t i = 0; i < global.size(); ++i) update.delta[i] = parameters[i] - global[i];
  const transport::PrivacySettings& privacy = start.privacy;
  if (privacy.clip_norm > 0.0f) {
    Result<double> norm = privacy::ClipToNorm(update.delta, privacy.clip_norm);
    if (!norm.ok()) return Error(round, norm.status().WithContext("clipping the update"));
  }
  if (privacy.secure_aggregation) {
    return StartSecureAggregation(round, start, std::move(update.delta), update.num_examples,
                                  update.train_loss);
  }
  return Message{.sender = id_, .round = round, .body = std::move(update)};
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

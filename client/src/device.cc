#include "edgefl/client/device.h"

#include <algorithm>
#include <variant>

#include "edgefl/common/random.h"
#include "edgefl/models/optimizer.h"
#include "edgefl/models/training.h"

namespace edgefl::client {

using transport::Message;

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
  return Message{.sender = id_, .round = round, .body = std::move(update)};
}

}  // namespace edgefl::client

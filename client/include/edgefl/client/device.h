// Device: the device runtime's protocol logic, as a state machine with no I/O.
//
// It answers each coordinator message with the messages to send back. The ZeroMQ device
// process and the simulator's virtual devices run this same code (DESIGN.md, one round
// engine); only who carries the messages differs.
//
// Local training is a seam: a device trains either with the built-in trainer (a built-in model
// on LocalData, TrainOnLocalData) or with a LocalTrainer the host application supplies (its own
// model and data, e.g. through the C API's callback). Whichever produced the update, the device
// validates it and runs the one privacy pipeline on it (clip, encode, noise, secagg masks).
//
// A Device owns only its identity, its view of local data (or its host trainer) and its small
// protocol state. The heavy scratch of the built-in trainer (a model instance, optimizer
// buffers) lives in a Workspace that a thread lends to whichever device it is running, so a
// thousand virtual devices need only as many models as there are threads. A Device is driven by
// one thread at a time; a Workspace likewise. A host trainer is called on that thread.
//
//   Workspace ws(std::move(model));
//   Device device(ClientId{7}, LocalData{&train, my_indices});
//   std::vector<transport::Message> replies = device.Handle(round_start, ws);
//
//   Device hosted(ClientId{7}, HostTrainer{.train = my_trainer, .num_parameters = n});
//   std::vector<transport::Message> replies = hosted.Handle(round_start);
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/ids.h"
#include "edgefl/common/status.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "edgefl/transport/messages.h"

namespace edgefl::client {

// A device's examples: indices into a dataset shared read-only with other devices.
struct LocalData {
  const models::Dataset* dataset = nullptr;
  std::span<const uint32_t> indices;
};

// One round's request to a local trainer: the coordinator's weights and hyper-parameters.
// The spans borrow the RoundStart and are valid only during the call.
struct TrainingRound {
  RoundId round;
  ClientId client;
  // Hyper-parameters the coordinator chose; a host trainer may follow or ignore them. Seed
  // shuffling from (config.seed, round, client) to stay reproducible (common/random.h).
  transport::TrainingConfig config;
  std::span<const float> global_weights;
};

// What local training produced, before the privacy pipeline touches it.
struct LocalUpdate {
  std::vector<float> delta;   // trained weights minus global weights; global_weights.size()
  uint64_t num_examples = 0;  // examples trained on, > 0; the update's FedAvg weight
  float train_loss = 0.0f;    // mean training loss, finite
};

// The local-training seam. Returns the update, or a Status the device sends back as an
// ErrorReply (the device declines the round; the coordinator records it as failed and the
// round goes on). May throw: the device catches it and reports kInternal.
using LocalTrainer = std::function<Result<LocalUpdate>(const TrainingRound& round)>;

// A trainer supplied by the host application, with what the device advertises about it.
struct HostTrainer {
  LocalTrainer train;  // required
  // Trainable parameters of the host's model. A RoundStart carrying another number of global
  // weights gets a kInvalidArgument ErrorReply and `train` is not called. 0 = accept any.
  uint64_t num_parameters = 0;
  // Examples the device reports in its Hello (the coordinator's registry). Default 0.
  uint64_t num_examples = 0;
};

// Per-thread scratch lent to a device while it trains.
class Workspace {
 public:
  explicit Workspace(std::unique_ptr<models::Model> model) : model_(std::move(model)) {}
  models::Model& model() { return *model_; }

 private:
  std::unique_ptr<models::Model> model_;
};

// The built-in trainer: loads `round.global_weights` into `model`, runs the round's SGD
// (epochs or steps, FedProx term) on `data`, shuffled from (config.seed, round, client), and
// returns trained minus global. kInvalidArgument when the weights do not fit the model or the
// hyper-parameters are invalid; kFailedPrecondition when `data` is empty.
[[nodiscard]] Result<LocalUpdate> TrainOnLocalData(const TrainingRound& round, LocalData data,
                                                   models::Model& model);

class Device {
 public:
  // Trains with the built-in trainer on `data`, using the model of the Workspace it is lent.
  Device(ClientId id, LocalData data);
  // Trains with the host's trainer; needs no Workspace. `host.train` must be set (checked).
  Device(ClientId id, HostTrainer host);
  Device(Device&&) noexcept;
  Device& operator=(Device&&) noexcept;
  ~Device();

  ClientId id() const { return id_; }
  uint64_t num_examples() const { return host_.train ? host_.num_examples : data_.indices.size(); }
  // True between this device's first secure-aggregation message of a round and its last
  // (unmasking) or an error: leaving now would drop it from the round.
  bool in_secure_round() const { return secure_round_ != nullptr; }

  // The device's first message: asks the coordinator to register it.
  transport::Message MakeHello(std::string device_name) const;

  // Answers one coordinator message. RoundStart -> Update, or with secure aggregation the
  // first SecAggPayload (advertised keys), or ErrorReply when local training fails or declines
  // (weights that do not fit the model, no data, a host trainer's error) or its update is
  // invalid (wrong size, a NaN or Inf value or loss, 0 examples). Later SecAggPayloads of the
  // same round -> the next protocol step. Welcome, RoundEnd and Heartbeat -> nothing. Never
  // throws; problems become ErrorReply messages, their text cut to the wire limit
  // (transport::kMaxErrorTextBytes) so that a long host trainer's message still gets through.
  //
  // The privacy pipeline runs here, on the device (DESIGN.md, data flow 3), whichever trainer
  // made the update: clip to the round's clip norm; with secure aggregation encode into
  // Z_2^32 with stochastic rounding, add this device's discrete Gaussian noise share when DP is
  // distributed, and mask.
  std::vector<transport::Message> Handle(const transport::Message& message, Workspace& workspace);
  // The same for a device with a HostTrainer, which needs no Workspace. A built-in-trainer
  // device answers a RoundStart with a kFailedPrecondition ErrorReply.
  std::vector<transport::Message> Handle(const transport::Message& message);

 private:
  std::vector<transport::Message> HandleWith(const transport::Message& message,
                                             Workspace* workspace);
  Result<LocalUpdate> TrainLocally(const TrainingRound& round, Workspace* workspace);
  transport::Message Train(RoundId round, const transport::RoundStart& start, Workspace* workspace);
  transport::Message Error(RoundId round, const Status& status) const;
  transport::Message StartSecureAggregation(RoundId round, const transport::RoundStart& start,
                                            std::vector<float> delta, uint64_t num_examples,
                                            float train_loss);
  transport::Message ContinueSecureAggregation(RoundId round,
                                               const transport::SecAggPayload& payload);

  struct SecureRound;  // this round's secure-aggregation session and encoded input

  ClientId id_;
  LocalData data_;
  HostTrainer host_;  // host_.train empty: the built-in trainer on data_
  std::unique_ptr<SecureRound> secure_round_;
};

}  // namespace edgefl::client

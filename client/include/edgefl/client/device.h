// Device: the device runtime's protocol logic, as a state machine with no I/O.
//
// It answers each coordinator message with the messages to send back. The ZeroMQ device
// process and the simulator's virtual devices run this same code (DESIGN.md, one round
// engine); only who carries the messages differs.
//
// A Device owns only its identity, its view of local data and its small protocol state. The
// heavy scratch (a model instance, optimizer buffers) lives in a Workspace that a thread lends
// to whichever device it is running, so a thousand virtual devices need only as many models as
// there are threads. A Device is driven by one thread at a time; a Workspace likewise.
//
//   Workspace ws(std::move(model));
//   Device device(ClientId{7}, LocalData{&train, my_indices});
//   std::vector<transport::Message> replies = device.Handle(round_start, ws);
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/ids.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "edgefl/transport/messages.h"

namespace edgefl::client {

// A device's examples: indices into a dataset shared read-only with other devices.
struct LocalData {
  const models::Dataset* dataset = nullptr;
  std::span<const uint32_t> indices;
};

// Per-thread scratch lent to a device while it trains.
class Workspace {
 public:
  explicit Workspace(std::unique_ptr<models::Model> model) : model_(std::move(model)) {}
  models::Model& model() { return *model_; }

 private:
  std::unique_ptr<models::Model> model_;
};

class Device {
 public:
  Device(ClientId id, LocalData data);
  Device(Device&&) noexcept;
  Device& operator=(Device&&) noexcept;
  ~Device();

  ClientId id() const { return id_; }
  uint64_t num_examples() const { return data_.indices.size(); }

  // The device's first message: asks the coordinator to register it.
  transport::Message MakeHello(std::string device_name) const;

  // Answers one coordinator message. RoundStart -> Update, or with secure aggregation the
  // first SecAggPayload (advertised keys), or ErrorReply when the weights do not fit the
  // workspace's model or the device has no data. Later SecAggPayloads of the same round ->
  // the next protocol step. Welcome, RoundEnd and Heartbeat -> nothing. Never throws; problems
  // become ErrorReply messages.
  //
  // The privacy pipeline runs here, on the device (DESIGN.md, data flow 3): clip to the
  // round's clip norm; with secure aggregation encode into Z_2^32 with stochastic rounding,
  // add this device's discrete Gaussian noise share when DP is distributed, and mask.
  std::vector<transport::Message> Handle(const transport::Message& message, Workspace& workspace);

 private:
  transport::Message Train(RoundId round, const transport::RoundStart& start,
                           Workspace& workspace);
  transport::Message Error(RoundId round, const Status& status) const;
  transport::Message StartSecureAggregation(RoundId round, const transport::RoundStart& start,
                                            std::vector<float> delta, uint64_t num_examples,
                                            float train_loss);
  transport::Message ContinueSecureAggregation(RoundId round,
                                               const transport::SecAggPayload& payload);

  struct SecureRound;  // this round's secure-aggregation session and encoded input

  ClientId id_;
  LocalData data_;
  std::unique_ptr<SecureRound> secure_round_;
};

}  // namespace edgefl::client

// The messages of the edgefl protocol, as C++ values.
//
// Coordinator and devices exchange these; a Channel carries them (channel.h). The in-process
// channel moves them as they are; the ZeroMQ channel encodes each in the versioned envelope of
// docs/protocol.md (codec.h). Enum values and field order are part of the wire format: never
// renumber or reorder, only append.
//
// Global weights are shared immutable buffers so one RoundStart can go to a thousand
// in-process devices without a thousand copies.
//
//   Message m{.sender = id, .round = r, .body = Update{.num_examples = 600, .delta = delta}};
//   if (auto* update = std::get_if<Update>(&m.body)) { ... }
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "edgefl/common/ids.h"
#include "edgefl/common/status.h"

namespace edgefl::transport {

// 2: Hello carries requested_id (docs/protocol.md, section 11).
inline constexpr uint16_t kProtocolVersion = 2;

enum class MessageType : uint16_t {
  kHello = 1,
  kWelcome = 2,
  kRoundStart = 3,
  kUpdate = 4,
  kRoundEnd = 5,
  kHeartbeat = 6,
  kError = 7,
  kGoodbye = 8,
  kSecAgg = 9,
};

// Device -> coordinator: asks to join.
struct Hello {
  std::string device_name;    // for logs; at most 256 bytes on the wire
  uint64_t num_examples = 0;  // size of the device's local data
  // The ClientId the device asks for; 0 lets the coordinator assign one. A coordinator channel
  // grants it when no other live connection holds it (zmq_channel.h), so devices hosted by
  // several processes keep the ids of one experiment however their Hellos interleave.
  uint64_t requested_id = 0;
};

// Coordinator -> device: accepted, with the identity the coordinator will use.
struct Welcome {
  ClientId assigned_id;
  uint64_t num_parameters = 0;  // size of the trainable buffer the device must train
};

// Hyper-parameters of local training, chosen by the coordinator for a round.
struct TrainingConfig {
  uint32_t local_epochs = 1;
  uint32_t local_steps = 0;  // > 0: this many steps instead of epochs
  uint32_t batch_size = 10;
  float learning_rate = 0.05f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
  float proximal_mu = 0.0f;  // FedProx; 0 = off
  uint64_t seed = 0;         // the device derives its shuffling seed from (seed, round, id)
};

// The privacy pipeline a cohort member must run on its update (DESIGN.md, data flow 3),
// chosen by the coordinator for the round.
struct PrivacySettings {
  uint8_t dp_mode = 0;       // 0 none, 1 central, 2 distributed (coordinator::DpMode)
  float clip_norm = 0.0f;    // > 0: clip the update to this L2 norm; 0: do not clip
  bool secure_aggregation = false;
  // Secure aggregation only: this device's index in the cohort and the protocol parameters
  // (privacy/secagg/config.h); the fixed-point scale of the encoding; the standard deviation,
  // in encoded units, of the discrete Gaussian noise this device adds (0 = none).
  uint32_t cohort_index = 0;
  uint32_t cohort_size = 0;
  uint32_t threshold = 0;
  uint32_t neighbours = 0;   // 0 = complete graph
  uint64_t graph_seed = 0;
  double encoding_scale = 0.0;
  double local_noise_stddev = 0.0;
};

// Coordinator -> cohort member: train on these weights.
struct RoundStart {
  uint64_t model_version = 0;
  TrainingConfig training;
  std::shared_ptr<const std::vector<float>> global_weights;
  PrivacySettings privacy;
};

// Cohort member -> coordinator: the result of local training.
struct Update {
  uint64_t num_examples = 0;  // examples seen per epoch; the FedAvg weight
  float train_loss = 0.0f;    // mean local training loss
  std::vector<float> delta;   // trained weights - global weights, layout order
};

// Coordinator -> device: the round is over for you (completed or aborted, with why).
struct RoundEnd {
  StatusCode outcome = StatusCode::kOk;
  std::string reason;
};

struct Heartbeat {};

// Either direction: the request failed; `code` is a canonical StatusCode.
struct ErrorReply {
  StatusCode code = StatusCode::kUnknown;
  std::string message;
};

struct Goodbye {};

// Either direction: one step of secure aggregation, in the byte form of
// privacy/secagg_wire.h (transport does not look inside). The first client message of a
// round (step 1, advertised keys) also carries the training metadata a plain Update would.
struct SecAggPayload {
  uint8_t step = 0;           // privacy::SecAggStep
  uint64_t num_examples = 0;  // step 1 only
  float train_loss = 0.0f;    // step 1 only
  std::vector<uint8_t> payload;
};

using Body = std::variant<Hello, Welcome, RoundStart, Update, RoundEnd, Heartbeat, ErrorReply,
                          Goodbye, SecAggPayload>;

struct Message {
  ClientId sender;  // the device (device -> coordinator) or ClientId{0} for the coordinator
  RoundId round;    // 0 outside rounds
  Body body;
};

MessageType TypeOf(const Body& body);
const char* MessageTypeName(MessageType type);

}  // namespace edgefl::transport

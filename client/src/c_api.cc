// The C API of client.h over client::RunDeviceProcess. Every entry point catches everything:
// no exception crosses into C. A training callback becomes a client::HostTrainer, so its update
// takes the same validation and privacy pipeline as the built-in trainer's (client/device.h).
#include "edgefl/client.h"

#include <atomic>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "edgefl/client/device_process.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "edgefl/transport/limits.h"

struct edgefl_client {
  edgefl::client::DeviceProcessOptions options;
  std::unique_ptr<edgefl::client::Workspace> workspace;
  edgefl::models::Dataset data;
  std::vector<uint32_t> indices;
  size_t input_size = 0;
  size_t num_classes = 0;
  // Set: the host trains (edgefl_client_set_train_callback) and data/indices are empty.
  edgefl_train_fn train = nullptr;
  void* train_user = nullptr;
  size_t num_parameters = 0;
  uint64_t num_examples = 0;
  std::atomic<bool> stop{false};
  std::string last_error;
};

namespace {

// The text of edgefl_client_last_error(NULL): calls that fail without a client to hold it.
thread_local std::string g_error_without_client;

// The training callback running on this thread: edgefl_train_set_error checks that the round it
// is given is this call's and keeps the message here. Thread-local because the callback runs on
// the thread of edgefl_client_run, and clients run on other threads have calls of their own.
struct TrainingCall {
  const edgefl_round_info* round = nullptr;
  std::optional<std::string> error;
};
thread_local TrainingCall* g_training_call = nullptr;

// Makes `call` this thread's training call for its lifetime, and the outer one again after,
// even when a C++ exception escapes the callback.
class ScopedTrainingCall {
 public:
  explicit ScopedTrainingCall(TrainingCall& call) : outer_(std::exchange(g_training_call, &call)) {}
  ~ScopedTrainingCall() { g_training_call = outer_; }
  ScopedTrainingCall(const ScopedTrainingCall&) = delete;
  ScopedTrainingCall& operator=(const ScopedTrainingCall&) = delete;

 private:
  TrainingCall* outer_;
};

edgefl_status ToC(edgefl::StatusCode code) {
  using edgefl::StatusCode;
  switch (code) {
    case StatusCode::kOk: return EDGEFL_OK;
    case StatusCode::kInvalidArgument: return EDGEFL_INVALID_ARGUMENT;
    case StatusCode::kNotFound: return EDGEFL_NOT_FOUND;
    case StatusCode::kFailedPrecondition: return EDGEFL_FAILED_PRECONDITION;
    case StatusCode::kUnavailable: return EDGEFL_UNAVAILABLE;
    case StatusCode::kDeadlineExceeded: return EDGEFL_DEADLINE_EXCEEDED;
    case StatusCode::kInternal: return EDGEFL_INTERNAL;
    default: return EDGEFL_UNKNOWN;
  }
}

edgefl_status Fail(std::string& slot, edgefl_status code, std::string message) {
  slot = std::move(message);
  return code;
}

// The HostTrainer that calls the client's C callback. Sizes were checked by the device against
// num_parameters before the call, so the callback's buffers have exactly num_weights floats.
edgefl::client::HostTrainer MakeHostTrainer(const edgefl_client& client) {
  const edgefl_train_fn train = client.train;
  void* const user = client.train_user;
  const uint64_t advertised_examples = client.num_examples;
  return edgefl::client::HostTrainer{
      .train = [train, user, advertised_examples](const edgefl::client::TrainingRound& round)
          -> edgefl::Result<edgefl::client::LocalUpdate> {
        const edgefl::transport::TrainingConfig& config = round.config;
        const edgefl_round_info info{.round = round.round.value(),
                                     .client_id = round.client.value(),
                                     .seed = config.seed,
                                     .local_epochs = config.local_epochs,
                                     .local_steps = config.local_steps,
                                     .batch_size = config.batch_size,
                                     .learning_rate = config.learning_rate,
                                     .momentum = config.momentum,
                                     .weight_decay = config.weight_decay,
                                     .proximal_mu = config.proximal_mu};
        edgefl::client::LocalUpdate update;
        update.delta.assign(round.global_weights.size(), 0.0f);
        update.num_examples = advertised_examples;
        update.train_loss = 0.0f;
        TrainingCall call{.round = &info};
        int result = 0;
        {
          ScopedTrainingCall scope(call);
          result = train(user, &info, round.global_weights.data(), round.global_weights.size(),
                         update.delta.data(), &update.num_examples, &update.train_loss);
        }
        // An error the host reported declines the round even if it then returned 0: an update
        // its own code calls failed is not worth sending.
        if (result != 0 || call.error) {
          std::string reason = "the training callback declined round " +
                               std::to_string(info.round) + " (returned " + std::to_string(result) +
                               ")";
          if (call.error) reason += ": " + *call.error;
          return edgefl::AbortedError(std::move(reason));
        }
        return update;
      },
      .num_parameters = client.num_parameters,
      .num_examples = client.num_examples};
}

std::chrono::milliseconds Millis(double seconds, double fallback) {
  if (!(seconds > 0)) seconds = fallback;
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

}  // namespace

extern "C" {

edgefl_client_config edgefl_client_default_config(void) {
  edgefl_client_config config{};
  config.model = "mlp";
  config.input_size = 784;
  config.num_classes = 10;
  config.heartbeat_seconds = 5.0;
  config.silence_timeout_seconds = 30.0;
  return config;
}

edgefl_status edgefl_client_create(const edgefl_client_config* config, edgefl_client_t** out) {
  try {
    if (out == nullptr || config == nullptr) {
      return Fail(g_error_without_client, EDGEFL_INVALID_ARGUMENT,
                  "config and out must not be NULL");
    }
    *out = nullptr;
    if (config->endpoint == nullptr || config->endpoint[0] == '\0') {
      return Fail(g_error_without_client, EDGEFL_INVALID_ARGUMENT, "endpoint is required");
    }
    if (config->input_size == 0 || config->num_classes < 2) {
      return Fail(g_error_without_client, EDGEFL_INVALID_ARGUMENT,
                  "input_size must be > 0 and num_classes >= 2");
    }
    auto client = std::make_unique<edgefl_client>();
    auto model = edgefl::models::CreateModel(
        {.name = config->model ? config->model : "mlp",
         .input_size = config->input_size,
         .num_classes = config->num_classes});
    if (!model.ok()) {
      return Fail(g_error_without_client, ToC(model.status().code()), model.status().ToString());
    }
    client->workspace = std::make_unique<edgefl::client::Workspace>(std::move(*model));
    client->input_size = config->input_size;
    client->num_classes = config->num_classes;
    auto& channel = client->options.channel;
    channel.endpoint = config->endpoint;
    channel.insecure_plaintext = config->insecure_plaintext != 0;
    if (config->secret_key_file) channel.secret_key_file = config->secret_key_file;
    if (config->server_public_key_file) {
      channel.server_public_key_file = config->server_public_key_file;
    }
    channel.heartbeat_interval = Millis(config->heartbeat_seconds, 5.0);
    client->options.silence_timeout = Millis(config->silence_timeout_seconds, 30.0);
    if (config->device_name) client->options.device_name = config->device_name;
    const edgefl::Status valid = channel.Validate();
    if (!valid.ok()) return Fail(g_error_without_client, ToC(valid.code()), valid.ToString());
    *out = client.release();
    g_error_without_client.clear();
    return EDGEFL_OK;
  } catch (const std::exception& e) {
    return Fail(g_error_without_client, EDGEFL_INTERNAL, e.what());
  } catch (...) {
    return Fail(g_error_without_client, EDGEFL_INTERNAL, "unknown exception");
  }
}

edgefl_status edgefl_client_set_data(edgefl_client_t* client, const float* features,
                                     const uint8_t* labels, size_t num_examples) {
  if (client == nullptr) return EDGEFL_INVALID_ARGUMENT;
  try {
    if (features == nullptr || labels == nullptr || num_examples == 0) {
      return Fail(client->last_error, EDGEFL_INVALID_ARGUMENT,
                  "features and labels must not be NULL and num_examples > 0");
    }
    for (size_t i = 0; i < num_examples; ++i) {
      if (labels[i] >= client->num_classes) {
        return Fail(client->last_error, EDGEFL_INVALID_ARGUMENT,
                    "label " + std::to_string(labels[i]) + " of example " + std::to_string(i) +
                        " is >= num_classes");
      }
    }
    edgefl::models::Dataset& data = client->data;
    data.name = "host";
    data.num_examples = num_examples;
    data.example_shape = {static_cast<int64_t>(client->input_size)};
    data.example_size = client->input_size;
    data.num_classes = client->num_classes;
    data.features.assign(features, features + num_examples * client->input_size);
    data.labels.assign(labels, labels + num_examples);
    client->indices.resize(num_examples);
    for (size_t i = 0; i < num_examples; ++i) client->indices[i] = static_cast<uint32_t>(i);
    client->train = nullptr;
    client->train_user = nullptr;
    return EDGEFL_OK;
  } catch (const std::exception& e) {
    return Fail(client->last_error, EDGEFL_INTERNAL, e.what());
  } catch (...) {
    return Fail(client->last_error, EDGEFL_INTERNAL, "unknown exception");
  }
}

edgefl_status edgefl_client_set_train_callback(edgefl_client_t* client, edgefl_train_fn train,
                                               void* user, size_t num_parameters,
                                               uint64_t num_examples) {
  if (client == nullptr) return EDGEFL_INVALID_ARGUMENT;
  try {
    if (train == nullptr || num_parameters == 0) {
      return Fail(client->last_error, EDGEFL_INVALID_ARGUMENT,
                  "train must not be NULL and num_parameters > 0");
    }
    client->train = train;
    client->train_user = user;
    client->num_parameters = num_parameters;
    client->num_examples = num_examples;
    // The callback replaces the built-in trainer: drop the copy of the data it would use.
    client->data = edgefl::models::Dataset{};
    client->indices.clear();
    return EDGEFL_OK;
  } catch (const std::exception& e) {
    return Fail(client->last_error, EDGEFL_INTERNAL, e.what());
  } catch (...) {
    return Fail(client->last_error, EDGEFL_INTERNAL, "unknown exception");
  }
}

edgefl_status edgefl_client_run(edgefl_client_t* client, uint64_t max_rounds,
                                uint64_t* rounds_trained) {
  if (client == nullptr) return EDGEFL_INVALID_ARGUMENT;
  if (rounds_trained) *rounds_trained = 0;
  try {
    if (client->indices.empty() && client->train == nullptr) {
      return Fail(client->last_error, EDGEFL_FAILED_PRECONDITION,
                  "no local data and no training callback: call edgefl_client_set_data or "
                  "edgefl_client_set_train_callback first");
    }
    client->options.max_rounds = max_rounds;
    auto stats = client->train != nullptr
                     ? edgefl::client::RunDeviceProcess(client->options, MakeHostTrainer(*client),
                                                        client->stop)
                     : edgefl::client::RunDeviceProcess(
                           client->options,
                           edgefl::client::LocalData{&client->data, client->indices},
                           *client->workspace, client->stop);
    if (!stats.ok()) {
      return Fail(client->last_error, ToC(stats.status().code()), stats.status().ToString());
    }
    if (rounds_trained) *rounds_trained = stats->rounds_answered;
    client->last_error.clear();
    return EDGEFL_OK;
  } catch (const std::exception& e) {
    return Fail(client->last_error, EDGEFL_INTERNAL, e.what());
  } catch (...) {
    return Fail(client->last_error, EDGEFL_INTERNAL, "unknown exception");
  }
}

edgefl_status edgefl_train_set_error(const edgefl_round_info* round, const char* message) {
  try {
    if (message == nullptr) {
      return Fail(g_error_without_client, EDGEFL_INVALID_ARGUMENT,
                  "edgefl_train_set_error: message must not be NULL");
    }
    if (round == nullptr || g_training_call == nullptr || g_training_call->round != round) {
      return Fail(g_error_without_client, EDGEFL_FAILED_PRECONDITION,
                  "edgefl_train_set_error: not called from inside the training callback given "
                  "this round, on the thread running edgefl_client_run");
    }
    // One byte past the wire limit is enough for the device to see the text was cut and say
    // so; a host that passes megabytes does not get them copied.
    g_training_call->error.emplace(message,
                                   strnlen(message, edgefl::transport::kMaxErrorTextBytes + 1));
    return EDGEFL_OK;
  } catch (const std::exception& e) {
    return Fail(g_error_without_client, EDGEFL_INTERNAL, e.what());
  } catch (...) {
    return Fail(g_error_without_client, EDGEFL_INTERNAL, "unknown exception");
  }
}

void edgefl_client_stop(edgefl_client_t* client) {
  if (client != nullptr) client->stop.store(true);
}

const char* edgefl_client_last_error(const edgefl_client_t* client) {
  return client == nullptr ? g_error_without_client.c_str() : client->last_error.c_str();
}

void edgefl_client_free(edgefl_client_t* client) { delete client; }

}  // extern "C"

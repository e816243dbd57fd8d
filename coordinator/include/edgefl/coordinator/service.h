// The coordinator service: the round engine on a ZeroMQ channel, for deployments.
//
// RunService binds the channel, registers devices, waits for `min_clients`, then runs
// synchronous rounds with the one RoundEngine (strategy, over-selection, round deadline,
// secure aggregation and DP as configured), logs one structured line per round, checkpoints
// atomically after every round and resumes from the checkpoint on start. Devices silent for
// `heartbeat_timeout_seconds` are forgotten. Between rounds a device that has heard nothing for
// a third of `device_silence_timeout_seconds` gets a keep-alive (keep_alive.h), so none
// reconnects for want of a message, and N idle devices cost N / (timeout / 3) messages per
// second. When done (or asked to stop) it sends every device a Goodbye and returns. A stop
// request during a round cancels the round within about 100 ms, even with no round deadline
// (RoundEngine::RunRound's cancel flag): the round is logged as `event=round_cancelled` and is
// not checkpointed, exported or passed to on_round, so a restart from the checkpoint runs it
// again. The weights are seeded as in the simulator (same seed derivations). With
// `metrics_address` set it serves Prometheus metrics (metrics.h) on `GET /metrics` from its own
// threads; with `export_model` set it writes the global model as safetensors after every round
// and at the end.
//
// Thread-safety: RunService runs on the calling thread; `stop` may be set from a signal handler.
//
//   EDGEFL_ASSIGN_OR_RETURN(ServiceConfig config, LoadServiceConfig("coordinator.toml"));
//   std::atomic<bool> stop{false};
//   EDGEFL_RETURN_IF_ERROR(RunService(config, stop));
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/status.h"
#include "edgefl/coordinator/round_engine.h"

namespace edgefl::coordinator {

// TOML keys are the field names.
struct ServiceConfig {
  // Network. "tcp://127.0.0.1:*" picks a free port (written to endpoint_file when set).
  std::string endpoint = "tcp://*:7878";
  bool insecure_plaintext = false;  // tests on loopback only
  std::string secret_key_file;      // coordinator CURVE secret key (edgefl keygen)
  std::string allowed_keys_path;    // folder of device *.pub or a file of Z85 keys
  std::string endpoint_file;        // if set, the bound endpoint is written there
  // Prometheus `GET /metrics` over HTTP at "host:port" (e.g. "127.0.0.1:9464"; port 0 picks a
  // free port); empty = off. The bound address is logged and, when metrics_address_file is
  // set, written there.
  std::string metrics_address;
  std::string metrics_address_file;
  // Model: a built-in name or a model file; Fashion-MNIST shapes by default.
  std::string model = "mlp";
  uint64_t input_size = 784;
  uint64_t num_classes = 10;
  // Rounds.
  uint64_t rounds = 5;
  uint64_t min_clients = 2;  // registered devices before the first round
  uint64_t clients_per_round = 10;
  double over_selection = 0.0;
  uint64_t min_clients_reported = 1;
  double round_deadline_seconds = 60.0;  // 0 = wait for every cohort member
  double heartbeat_timeout_seconds = 20.0;
  // The devices' silence timeout (`edgefl client` silence_timeout_seconds, DeviceProcessOptions::
  // silence_timeout; default 30, the devices' default): a device that hears nothing for this
  // long reconnects. Between rounds the service sends a keep-alive to each device that has heard
  // nothing for a third of it, paced over a sixth of it, and starts each round with every device
  // fresh enough to outlast round_deadline_seconds (keep_alive.h). Set it to the smallest
  // timeout of your devices; range [0.001, 1e6].
  double device_silence_timeout_seconds = 30.0;
  // Warnings per second for each kind of refused frame; the rest are counted in one summary
  // line (and in /metrics). Raise it to see every refusal while debugging a device.
  uint64_t drop_warnings_per_second = 5;
  // Local training sent to devices.
  uint64_t local_epochs = 1;
  uint64_t local_steps = 0;
  uint64_t batch_size = 10;
  double lr = 0.05;
  double momentum = 0.0;
  double weight_decay = 0.0;
  double proximal_mu = 0.0;
  // Server strategy.
  std::string strategy = "fedavg";
  double server_lr = 1.0;
  double server_momentum = 0.9;
  double beta1 = 0.9;
  double beta2 = 0.99;
  double tau = 1e-3;
  double trim_fraction = 0.2;  // fedtrimmedavg: dropped at each end per coordinate, [0, 0.5)
  // Privacy.
  std::string dp = "none";  // none, central, distributed
  double clip = 100.0;
  double noise_multiplier = 1.0;
  double delta = 1e-5;
  bool secagg = false;
  uint64_t secagg_neighbours = 0;
  uint64_t seed = 1;
  // Durable state and output.
  std::string checkpoint;    // checkpoint file; empty = none
  std::string save_weights;  // final global weights as raw little-endian float32; empty = none
  // The global model as safetensors (tensor names and shapes of the model's layout), written
  // atomically after every round and at the end; empty = none.
  std::string export_model;

  // kInvalidArgument naming the field.
  [[nodiscard]] Status Validate() const;
};

// The TOML keys, in declaration order.
std::vector<std::string> ServiceConfigKeys();
// Reads `path` over `base`. kNotFound, or kInvalidArgument for a parse error, an unknown key
// (with a did-you-mean hint) or a value of the wrong type.
[[nodiscard]] Result<ServiceConfig> LoadServiceConfig(const std::filesystem::path& path,
                                                      ServiceConfig base = {});
// The configuration as TOML that LoadServiceConfig reads back.
std::string FormatServiceConfig(const ServiceConfig& config);

// Observers of a RunService, called on its thread (`edgefl simulate --workers` evaluates the
// global model and writes its results through them). Each may be empty.
struct ServiceHooks {
  // Once the channel is bound, with the port resolved ("tcp://127.0.0.1:40123").
  std::function<void(const std::string& endpoint)> on_listening;
  // After each round (and its checkpoint): the report and the global weights it left. Not
  // called for a round cancelled by `stop`.
  std::function<void(const RoundReport& report, std::span<const float> global_weights)> on_round;
};

// Runs the service until `config.rounds` rounds are complete or `stop` becomes true; once it is
// set, returns within about 100 ms plus the time to finish the step in hand (a round whose
// updates are all in, its checkpoint and on_round). OK in both cases. Errors: an invalid config,
// channel creation, a corrupted checkpoint, an engine failure.
[[nodiscard]] Status RunService(const ServiceConfig& config, const std::atomic<bool>& stop,
                                const ServiceHooks& hooks = {});

// Writes `weights` as raw float32 to `path`. kInternal on I/O failure.
[[nodiscard]] Status SaveRawWeights(const std::filesystem::path& path,
                                    const std::vector<float>& weights);

}  // namespace edgefl::coordinator

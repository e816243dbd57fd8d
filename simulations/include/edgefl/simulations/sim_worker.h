// Simulation across processes and machines: sim-workers host many virtual devices each and
// talk to a real coordinator service over ZeroMQ (DESIGN.md, one round engine: the devices run
// client::Device, the coordinator the RoundEngine of `edgefl coordinator`).
//
// RunSimWorker (`edgefl sim-worker`) hosts devices [first_device, first_device + num_devices)
// of an experiment, built from the same SimulationConfig as `edgefl simulate`, so each holds
// the data the in-process simulator gives it. Each device has its own ZeroMQ connection (one
// DEALER, so the coordinator sees ordinary devices) on one shared ZeroMQ context; one I/O
// thread polls them all, sends their heartbeats and replies, and hands RoundStart and
// secure-aggregation messages to a pool of training threads, each with its own scratch model.
// Every Hello asks for the device's experiment id (index + 1, Hello.requested_id), so ids do
// not depend on the order in which workers connect.
//
// RunWorkerSimulation (`edgefl simulate --workers K`) runs the coordinator service on a thread
// on 127.0.0.1 (plaintext loopback), starts K sim-worker processes splitting the devices,
// evaluates the global model after each round as RunSimulation does, and returns the same
// SimulationResult. Same seed, same results as in process: selection, seeds and data are
// derived identically and the aggregate does not depend on arrival order beyond the last bits
// of a double sum (aggregation/src/accumulator.h). The coordinator runs on wall time, so
// features that live in virtual time are refused (SimulationConfig::Validate with workers > 0).
//
// Thread-safety: each function runs on the calling thread (and threads of its own); `stop`
// may be set from a signal handler.
//
//   SimWorkerOptions options{.endpoint = "tcp://10.0.0.1:7878", .first_device = 5000,
//                            .num_devices = 5000, .secret_key_file = "w.key", ...};
//   EDGEFL_ASSIGN_OR_RETURN(SimWorkerStats stats, RunSimWorker(config, options, stop));
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "edgefl/common/status.h"
#include "edgefl/simulations/config.h"
#include "edgefl/simulations/simulation.h"

namespace edgefl::simulations {

struct SimWorkerOptions {
  // The coordinator's endpoint, e.g. "tcp://coordinator.local:7878". Required.
  std::string endpoint;
  // 0-based index of the first device hosted (device i has ClientId i + 1). Default 0.
  size_t first_device = 0;
  // Devices hosted (>= 1; first_device + num_devices <= config.clients); 0 = every device
  // from first_device on. Default 0.
  size_t num_devices = 0;
  // No CURVE: the coordinator must be insecure_plaintext too. Loopback tests only.
  bool insecure_plaintext = false;
  // CURVE secret key (`edgefl keygen` PREFIX.key) that every hosted device uses; its public key
  // must be on the coordinator's allow-list. Required unless insecure_plaintext.
  std::string secret_key_file;
  // The coordinator's public key file. Required unless insecure_plaintext.
  std::string server_public_key_file;
  // Training threads (>= 0; 0 = every core). Results do not depend on it.
  size_t threads = 0;
  // Heartbeat period of every hosted device (> 0). Default 5 s.
  std::chrono::milliseconds heartbeat_interval{5000};
  // Give up when the coordinator sent nothing to any hosted device for this long (> 0). It
  // must exceed the longest round. Default 10 min.
  std::chrono::milliseconds silence_timeout{600'000};

  // kInvalidArgument naming the field.
  [[nodiscard]] Status Validate() const;
};

struct SimWorkerStats {
  size_t num_devices = 0;
  uint64_t num_messages_handled = 0;  // RoundStart and secure-aggregation messages answered
  uint64_t num_replies_sent = 0;
  uint64_t num_heartbeats_sent = 0;
};

// Hosts the devices until the coordinator says Goodbye to all of them or `stop` is set.
// Errors: kInvalidArgument (options, config or a device range outside config.clients),
// kNotFound (data), kAlreadyExists when the coordinator granted a device another id than it
// asked for (another process hosts it), kDeadlineExceeded after silence_timeout, channel
// errors. Needs two descriptors per device: raises RLIMIT_NOFILE as far as that (the hard limit
// too when privileged), kResourceExhausted saying how many when it cannot.
[[nodiscard]] Result<SimWorkerStats> RunSimWorker(const SimulationConfig& config,
                                                  const SimWorkerOptions& options,
                                                  const std::atomic<bool>& stop);

// Runs `config` (config.workers >= 1) with the coordinator service in this process and
// config.workers `program sim-worker` processes; each worker's output goes to
// config.out/workers/worker-K.log. `program` is the edgefl executable (default: this one).
// `on_round` runs on the service's thread, never after this returns.
// Errors: as RunSimulation, kInvalidArgument for combinations that need virtual time,
// kResourceExhausted when RLIMIT_NOFILE cannot be raised to a descriptor per device,
// kInternal when a worker cannot be started, or exits or is killed before the last round (at
// start-up too): the message names the worker (index, pid, devices), its exit code or signal,
// the rounds completed and the other workers stopped, and ends with its log's last lines. Then
// it returns within about a second (at most 3 s), every worker stopped and reaped; the rounds
// completed were passed to `on_round`. Polls its children with waitpid(WNOHANG) on their pids,
// so SIGCHLD and other children stay the caller's.
[[nodiscard]] Result<SimulationResult> RunWorkerSimulation(
    const SimulationConfig& config, const std::function<void(const RoundRecord&)>& on_round = {},
    const std::string& program = "/proc/self/exe");

}  // namespace edgefl::simulations

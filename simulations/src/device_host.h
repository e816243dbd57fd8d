// VirtualDeviceHost: runs the simulator's virtual devices behind an InProcessChannel.
//
// It is the channel's pump: when the round engine waits, the host takes the messages sent to
// devices, orders them by their predicted arrival time (from each device's profile), and runs
// them in fixed-size chunks on the thread pool, each thread lending its own Workspace. Replies
// are delivered in that order, so what the engine sees does not depend on the thread count.
// Memory is O(chunk x model) however large the cohort.
//
// Driven by the simulation's thread (through the channel's pump).
#pragma once

#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

#include "edgefl/client/device.h"
#include "edgefl/common/clock.h"
#include "edgefl/transport/in_process_channel.h"

namespace edgefl::simulations {

// How fast a virtual device computes and communicates, for the virtual clock.
struct DeviceProfile {
  double examples_per_second = 2000.0;  // local training throughput (one epoch = n examples)
  double downlink_bytes_per_second = 10e6;
  double uplink_bytes_per_second = 2e6;
  Clock::Duration latency = std::chrono::milliseconds(50);
};

// Injected failures: a selected device drops out of a round with `probability`, at a protocol
// step drawn uniformly (before answering RoundStart, or before any later secure-aggregation
// step), decided from (seed, round, device) so every run with the seed drops the same ones.
struct DropoutOptions {
  double probability = 0.0;  // [0, 1)
  uint64_t seed = 0;
};

class VirtualDeviceHost {
 public:
  // Devices are addressed by ClientId; devices[i] must have id i + 1. `workspaces` holds one
  // per worker thread.
  VirtualDeviceHost(std::vector<client::Device> devices, std::vector<DeviceProfile> profiles,
                    std::vector<std::unique_ptr<client::Workspace>> workspaces,
                    DropoutOptions dropout = {});

  void set_channel(transport::InProcessChannel* channel) { channel_ = channel; }

  // The pump: runs the next chunk of pending device work. False when nothing was pending.
  bool RunPending();

  // Every device's Hello, delivered at time zero.
  void RegisterAll();

 private:
  struct Pending {
    transport::Addressed addressed;
    Clock::Duration arrival;
  };
  Clock::Duration PredictArrival(const transport::Addressed& addressed) const;
  // True when the device is gone by the time this message reaches it.
  bool DropsBefore(const transport::Addressed& addressed) const;

  std::vector<client::Device> devices_;
  std::vector<DeviceProfile> profiles_;
  std::vector<std::unique_ptr<client::Workspace>> workspaces_;
  DropoutOptions dropout_;
  transport::InProcessChannel* channel_ = nullptr;
  std::deque<Pending> pending_;
};

}  // namespace edgefl::simulations

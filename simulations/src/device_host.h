// VirtualDeviceHost: runs the simulator's virtual devices behind an InProcessChannel.
//
// It is the channel's pump: when the round engine waits, the host takes the messages sent to
// devices, orders them by their predicted arrival time (from each device's profile), and runs
// them in fixed-size chunks on the thread pool, each thread lending its own Workspace. It is a
// discrete-event simulation: a reply is handed to the channel only when no pending work can
// arrive before it, one at a time, so the engine sees replies in virtual-time order even when
// it keeps sending while it receives (FedBuff), and never depending on the thread count.
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
#include "edgefl/simulations/profiles.h"
#include "edgefl/transport/in_process_channel.h"

namespace edgefl::simulations {

// Injected failures: a selected device drops out of a round with `probability` (or its
// profile's dropout when larger), at a protocol
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

  const std::vector<DeviceProfile>& profiles() const { return profiles_; }

 private:
  struct Pending {
    transport::Addressed addressed;
    Clock::Duration arrival;
  };
  // A computed reply waiting for its virtual arrival time.
  struct Ready {
    Clock::Duration arrival;
    uint64_t sequence;
    transport::Message message;
  };
  Clock::Duration PredictArrival(const transport::Addressed& addressed) const;
  // True when the device is gone by the time this message reaches it.
  bool DropsBefore(const transport::Addressed& addressed) const;

  std::vector<client::Device> devices_;
  std::vector<DeviceProfile> profiles_;
  std::vector<std::unique_ptr<client::Workspace>> workspaces_;
  DropoutOptions dropout_;
  transport::InProcessChannel* channel_ = nullptr;
  std::deque<Pending> pending_;  // sorted by (arrival, device)
  std::deque<Ready> ready_;      // sorted by (arrival, sequence)
  uint64_t next_sequence_ = 0;
};

}  // namespace edgefl::simulations

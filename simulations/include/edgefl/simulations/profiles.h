// Device profiles: how fast each virtual device computes and communicates, when in the day it
// is online, and how likely it is to vanish mid-round. The virtual clock turns them into each
// round's simulated duration (in the spirit of FedScale, Lai et al. 2022).
//
// Profiles are drawn from built-in distributions (DrawProfiles) or read from a CSV trace
// (LoadDeviceTrace). Pure functions and plain values; thread-compatible.
//
//   EDGEFL_ASSIGN_OR_RETURN(std::vector<DeviceProfile> profiles, LoadDeviceTrace("trace.csv", n));
//   bool online = IsAvailable(profiles[0], clock.Now());
//   Clock::Duration busy = RoundTripTime(profiles[0], 4 * num_params, 1500);
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/clock.h"
#include "edgefl/common/status.h"

namespace edgefl::simulations {

struct DeviceProfile {
  double examples_per_second = 2000.0;  // local training throughput (one epoch = n examples)
  double downlink_bytes_per_second = 10e6;
  double uplink_bytes_per_second = 2e6;
  Clock::Duration latency = std::chrono::milliseconds(50);  // one way
  // Daily window of availability in hours of virtual time modulo 24: online when
  // from <= hour < to, or, when from > to, when hour >= from or hour < to (a window across
  // midnight). [0, 24) is always online; from == to is never online.
  double available_from_hour = 0.0;
  double available_to_hour = 24.0;
  // Probability [0, 1) that the device drops out of a round it was selected for; the run's
  // global dropout applies when it is larger.
  double dropout = 0.0;
};

// Whether the device is online at virtual time `now` (see DeviceProfile's window).
bool IsAvailable(const DeviceProfile& profile, Clock::Duration now);

// The earliest time >= `now` at which the device is online (`now` itself when it is), or
// Clock::Duration::max() when its window is empty.
Clock::Duration NextAvailableTime(const DeviceProfile& profile, Clock::Duration now);
// The earliest such time over `profiles` (max() when none is ever online).
Clock::Duration NextAvailableTime(std::span<const DeviceProfile> profiles, Clock::Duration now);

// Time from the round's start until the device's update arrives: latency + download of
// `model_bytes` + `examples` / speed + upload of `model_bytes` + latency.
Clock::Duration RoundTripTime(const DeviceProfile& profile, double model_bytes, double examples);

// Built-in populations.
//  - "uniform": every device the DeviceProfile defaults, always online (the default run).
//  - "lognormal": heterogeneous devices after FedScale's device traces, each drawn
//    independently from the seed:
//      examples_per_second ~ LogNormal(median 2,000, sigma 0.8)   (~ 10x between p5 and p95)
//      downlink bytes/s    ~ LogNormal(median 12.5e6 (100 Mbit/s), sigma 1.0)
//      uplink bytes/s      ~ LogNormal(median 2.5e6 (20 Mbit/s), sigma 1.0)
//      latency             ~ LogNormal(median 50 ms, sigma 0.5)
//      availability        : 30% always online; the rest online a daily window starting at
//                            a uniform hour and lasting Uniform(4, 16) hours
//      dropout             : 0 (the run's global dropout applies)
// kInvalidArgument for another name.
Result<std::vector<DeviceProfile>> DrawProfiles(const std::string& distribution, size_t count,
                                                uint64_t seed);

// Reads a CSV trace with the header (columns in this order)
//   device_id,examples_per_second,downlink_bytes_per_second,uplink_bytes_per_second,
//   latency_ms,available_from_hour,available_to_hour,dropout
// device_id runs 1, 2, 3, ... (one row per device, in order); '#' lines and blank lines are
// skipped. When the trace has fewer rows than `count` devices, device i takes row
// ((i - 1) mod rows) + 1. kNotFound for a missing file; kInvalidArgument naming the file,
// line and column for a bad header, a missing/extra field or an out-of-range value.
Result<std::vector<DeviceProfile>> LoadDeviceTrace(const std::filesystem::path& path,
                                                   size_t count);

}  // namespace edgefl::simulations

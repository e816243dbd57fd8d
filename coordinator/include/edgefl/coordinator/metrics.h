// Service metrics: what the coordinator service shows to Prometheus (text exposition format
// 0.0.4, https://prometheus.io/docs/instrumenting/exposition_formats/) on `GET /metrics`.
//
// Ownership and threads: the round engine knows nothing of HTTP. The service's engine thread
// fills a ServiceMetrics and Publish()es it into a MetricsRegistry (a mutex-protected copy);
// MetricsServer answers scrapes on its own threads from Render(). Counters that move during a
// round (bytes, messages) come from a refresh function that Render() calls, which must be
// thread-safe (ZmqCoordinatorChannel::stats() is).
//
//   MetricsRegistry registry;
//   EDGEFL_ASSIGN_OR_RETURN(auto server, MetricsServer::Start("127.0.0.1:9464", registry));
//   registry.Publish(metrics);  // from the engine thread, as often as it likes
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "edgefl/common/status.h"

namespace edgefl::coordinator {

// One view of the service. Counters count since the process started (Prometheus handles
// restarts); "round" numbers continue across a resume from a checkpoint.
struct ServiceMetrics {
  uint64_t current_round = 0;       // the round in progress; between rounds, the last completed
  uint64_t rounds_completed = 0;    // rounds run to their end by this process, applied or not
  uint64_t rounds_failed = 0;       // ... of which the aggregate was not applied
  uint64_t devices_connected = 0;   // devices the channel has mapped (said Hello, not forgotten)
  uint64_t devices_registered = 0;  // devices available for selection
  uint64_t clients_selected = 0;    // cohort members, summed over rounds
  uint64_t updates_accepted = 0;    // updates aggregated (reported)
  uint64_t updates_rejected = 0;    // updates rejected or failed
  uint64_t clients_dropped = 0;     // cohort members that did not report in time
  double last_round_seconds = 0.0;  // wall time of the last completed round
  double train_loss = 0.0;          // the last round's example-weighted mean client loss
  double epsilon = 0.0;             // (epsilon, delta)-DP spent so far; 0 without DP
  // The coordinator channel's counters (transport::ZmqCoordinatorStats).
  uint64_t bytes_received = 0;
  uint64_t bytes_sent = 0;
  uint64_t messages_received = 0;
  uint64_t frames_dropped = 0;
  uint64_t handshakes_admitted = 0;
  uint64_t handshakes_refused = 0;
};

// Upper bounds (seconds) of the round-duration histogram's buckets; +Inf is implied.
inline constexpr std::array<double, 12> kRoundSecondsBuckets = {
    0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};

// Thread-safe.
class MetricsRegistry {
 public:
  // Replaces the published view.
  void Publish(const ServiceMetrics& metrics);
  // Adds one round's wall time (>= 0 seconds) to the histogram.
  void ObserveRoundSeconds(double seconds);
  // Called by Render() on the published view just before formatting, under the registry's
  // lock; for live counters. Must be thread-safe and outlive the registry's readers.
  void SetRefresh(std::function<void(ServiceMetrics&)> refresh);
  // The whole exposition: for each metric `# HELP`, `# TYPE` and its samples, names prefixed
  // `edgefl_`, ending with a newline.
  std::string Render() const;

 private:
  mutable std::mutex mutex_;
  ServiceMetrics metrics_;
  std::array<uint64_t, kRoundSecondsBuckets.size()> bucket_counts_{};  // not cumulative
  uint64_t round_count_ = 0;
  double round_seconds_sum_ = 0.0;
  std::function<void(ServiceMetrics&)> refresh_;
};

// "host:port" as the metrics address takes it: an IPv4 address or name, or an IPv6 address in
// brackets ("[::1]:9464"); port 0 picks a free port.
struct HostPort {
  std::string host;
  uint16_t port = 0;
};
// kInvalidArgument naming `address` when the host is empty or the port is not in [0, 65535].
Result<HostPort> ParseHostPort(std::string_view address);

// An HTTP server answering `GET /metrics` with registry.Render() (everything else: 404), on
// its own threads. Destruction stops it and joins them; the registry must outlive it.
class MetricsServer {
 public:
  // Binds `address` (ParseHostPort) and starts serving.
  //   kInvalidArgument  a malformed address;
  //   kUnavailable      the address cannot be bound (in use, not local, ...).
  [[nodiscard]] static Result<std::unique_ptr<MetricsServer>> Start(
      std::string_view address, const MetricsRegistry& registry);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound address with the port resolved, e.g. "127.0.0.1:40123" or "[::1]:9464".
  const std::string& address() const { return address_; }
  uint16_t port() const { return port_; }

 private:
  struct Impl;
  MetricsServer(std::unique_ptr<Impl> impl, std::string address, uint16_t port);
  std::unique_ptr<Impl> impl_;
  std::string address_;
  uint16_t port_;
};

}  // namespace edgefl::coordinator

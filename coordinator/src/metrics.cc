#include "edgefl/coordinator/metrics.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <cmath>
#include <thread>
#include <utility>

namespace edgefl::coordinator {
namespace {

// Scrapes are tiny and rare (every 15 s or so); two workers keep one slow client from
// blocking the next scrape without spending threads on a service that is mostly idle here.
constexpr size_t kServerThreads = 2;
constexpr int kServerTimeoutSeconds = 5;

// Prometheus's float spelling: shortest round-trip decimal, "NaN", "+Inf", "-Inf".
std::string FormatDouble(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  const auto [end, error] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, end);
}

class Exposition {
 public:
  void Family(std::string_view name, std::string_view type, std::string_view help) {
    out_.append("# HELP edgefl_").append(name).append(" ").append(help).append("\n");
    out_.append("# TYPE edgefl_").append(name).append(" ").append(type).append("\n");
  }
  void Sample(std::string_view name, std::string_view value, std::string_view labels = {}) {
    out_.append("edgefl_").append(name);
    if (!labels.empty()) out_.append("{").append(labels).append("}");
    out_.append(" ").append(value).append("\n");
  }
  void Counter(std::string_view name, uint64_t value, std::string_view help) {
    Family(name, "counter", help);
    Sample(name, std::to_string(value));
  }
  void Gauge(std::string_view name, double value, std::string_view help) {
    Family(name, "gauge", help);
    Sample(name, FormatDouble(value));
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

}  // namespace

void MetricsRegistry::Publish(const ServiceMetrics& metrics) {
  std::lock_guard<std::mutex> lock(mutex_);
  metrics_ = metrics;
}

void MetricsRegistry::ObserveRoundSeconds(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < kRoundSecondsBuckets.size(); ++i) {
    if (seconds <= kRoundSecondsBuckets[i]) {
      ++bucket_counts_[i];
      break;
    }
  }
  ++round_count_;
  round_seconds_sum_ += seconds;
}

void MetricsRegistry::SetRefresh(std::function<void(ServiceMetrics&)> refresh) {
  std::lock_guard<std::mutex> lock(mutex_);
  refresh_ = std::move(refresh);
}

std::string MetricsRegistry::Render() const {
  std::unique_lock<std::mutex> lock(mutex_);
  ServiceMetrics m = metrics_;
  if (refresh_) refresh_(m);
  const auto bucket_counts = bucket_counts_;
  const uint64_t round_count = round_count_;
  const double round_seconds_sum = round_seconds_sum_;
  lock.unlock();

  Exposition e;
  e.Gauge("current_round", static_cast<double>(m.current_round),
          "The round in progress; between rounds, the last completed round.");
  e.Counter("rounds_completed_total", m.rounds_completed,
            "Rounds run to their end by this process, whether or not the aggregate was applied.");
  e.Counter("rounds_failed_total", m.rounds_failed,
            "Rounds that ended without applying an aggregate (too few updates, ...).");
  e.Gauge("devices_connected", static_cast<double>(m.devices_connected),
          "Devices connected to the coordinator channel (said Hello, not yet forgotten).");
  e.Gauge("devices_registered", static_cast<double>(m.devices_registered),
          "Devices registered and available for selection.");
  e.Counter("clients_selected_total", m.clients_selected, "Cohort members selected.");
  e.Counter("updates_accepted_total", m.updates_accepted, "Client updates aggregated.");
  e.Counter("updates_rejected_total", m.updates_rejected,
            "Client updates rejected (invalid) or failed.");
  e.Counter("clients_dropped_total", m.clients_dropped,
            "Cohort members that did not report before the round deadline.");
  e.Gauge("last_round_duration_seconds", m.last_round_seconds,
          "Wall time of the last completed round.");

  e.Family("round_duration_seconds", "histogram", "Wall time of each completed round.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kRoundSecondsBuckets.size(); ++i) {
    cumulative += bucket_counts[i];
    e.Sample("round_duration_seconds_bucket", std::to_string(cumulative),
             "le=\"" + FormatDouble(kRoundSecondsBuckets[i]) + "\"");
  }
  e.Sample("round_duration_seconds_bucket", std::to_string(round_count), "le=\"+Inf\"");
  e.Sample("round_duration_seconds_sum", FormatDouble(round_seconds_sum));
  e.Sample("round_duration_seconds_count", std::to_string(round_count));

  e.Gauge("train_loss", m.train_loss,
          "The last round's mean client training loss, weighted by examples.");
  e.Gauge("epsilon", m.epsilon,
          "Privacy budget spent by every round applied to the model, rounds before a restart "
          "from the checkpoint included: epsilon of (epsilon, delta)-DP at the configured "
          "delta; 0 without DP.");
  e.Counter("received_bytes_total", m.bytes_received,
            "Bytes of frames received on the coordinator channel (envelope + payload).");
  e.Counter("sent_bytes_total", m.bytes_sent,
            "Bytes of frames sent on the coordinator channel, once per recipient.");
  e.Counter("messages_received_total", m.messages_received,
            "Well-formed messages received from devices, heartbeats included.");
  e.Counter("frames_dropped_total", m.frames_dropped,
            "Frames dropped: malformed, oversized, unknown peer, wrong direction, ...");
  e.Counter("handshakes_admitted_total", m.handshakes_admitted,
            "CURVE handshakes admitted (device key on the allow-list).");
  e.Counter("handshakes_refused_total", m.handshakes_refused,
            "CURVE handshakes refused (device key not on the allow-list, malformed).");
  return e.Take();
}

Result<HostPort> ParseHostPort(std::string_view address) {
  auto bad = [&](std::string_view why) {
    return InvalidArgumentError("metrics address '" + std::string(address) + "': " +
                                std::string(why) + " (expected host:port, e.g. 127.0.0.1:9464)");
  };
  const size_t colon = address.rfind(':');
  if (colon == std::string_view::npos) return bad("no port");
  std::string_view host = address.substr(0, colon);
  const std::string_view port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return bad("an IPv6 host must be in brackets");
  }
  if (host.empty()) return bad("empty host");
  unsigned value = 0;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || value > 65535) {
    return bad("port must be an integer in [0, 65535]");
  }
  return HostPort{.host = std::string(host), .port = static_cast<uint16_t>(value)};
}

struct MetricsServer::Impl {
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};

  ~Impl() {
    // httplib's stop() is a no-op until the listening loop has started; wait for that (it is
    // the thread's first step) so the join cannot hang.
    while (!server.is_running() && !listen_returned.load()) std::this_thread::yield();
    server.stop();
    if (thread.joinable()) thread.join();
  }
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl, std::string address, uint16_t port)
    : impl_(std::move(impl)), address_(std::move(address)), port_(port) {}

MetricsServer::~MetricsServer() = default;

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(std::string_view address,
                                                            const MetricsRegistry& registry) {
  EDGEFL_ASSIGN_OR_RETURN(HostPort where, ParseHostPort(address));
  auto impl = std::make_unique<Impl>();
  httplib::Server& server = impl->server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  server.set_read_timeout(kServerTimeoutSeconds, 0);
  server.set_write_timeout(kServerTimeoutSeconds, 0);
  server.set_payload_max_length(1024);
  // httplib's default adds SO_REUSEPORT, which would let a second coordinator bind the same
  // port and take half the scrapes; SO_REUSEADDR alone still allows a quick restart.
  server.set_socket_options([](socket_t socket) {
    const int yes = 1;
    (void)setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.Get("/metrics", [&registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry.Render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  int port = where.port;
  if (where.port == 0) {
    port = server.bind_to_any_port(where.host);
  } else if (!server.bind_to_port(where.host, where.port)) {
    port = -1;
  }
  if (port <= 0) {
    impl->listen_returned = true;  // nothing to stop
    return UnavailableError("cannot bind the metrics address '" + std::string(address) + "'");
  }
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    raw->server.listen_after_bind();
    raw->listen_returned = true;
  });
  const bool ipv6 = where.host.find(':') != std::string::npos;
  std::string bound = (ipv6 ? "[" + where.host + "]" : where.host) + ":" + std::to_string(port);
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(impl), std::move(bound), static_cast<uint16_t>(port)));
}

}  // namespace edgefl::coordinator

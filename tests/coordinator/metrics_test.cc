#include "edgefl/coordinator/metrics.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <span>
#include <sstream>
#include <thread>

#include "edgefl/client/device_process.h"
#include "edgefl/coordinator/service.h"
#include "edgefl/models/checkpoint.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "coordinator/loopback_service.h"
#include "coordinator/tiny_dataset.h"

namespace edgefl::coordinator {
namespace {

using testing::TempDir;

// Checks the Prometheus text format (0.0.4) line by line and returns each sample's value by
// its full name with labels ("edgefl_x_bucket{le=\"1\"}"). Every sample must belong to a
// family announced by `# HELP` then `# TYPE` before it.
std::map<std::string, double> ParseExposition(const std::string& text) {
  static const std::regex kSample(R"(^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^{}]*\})? (\S+)$)");
  static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                               "untyped"};
  std::map<std::string, double> samples;
  std::map<std::string, std::string> types;  // family -> type
  std::set<std::string> helped;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    INFO("line: " << line);
    if (line.rfind("# HELP ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name;
      words >> name;
      CHECK(helped.insert(name).second);
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream words(line.substr(7));
      std::string name, type;
      words >> name >> type;
      CHECK(helped.count(name) == 1);
      CHECK(kTypes.count(type) == 1);
      CHECK(types.emplace(name, type).second);
      continue;
    }
    std::smatch match;
    REQUIRE(std::regex_match(line, match, kSample));
    const std::string name = match[1];
    CHECK(name.rfind("edgefl_", 0) == 0);
    std::string family = name;
    if (!types.count(family)) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s(suffix);
        if (family.size() > s.size() && family.ends_with(s)) {
          family = family.substr(0, family.size() - s.size());
          break;
        }
      }
      CHECK(types[family] == "histogram");
    }
    const std::string value = match[3];
    char* end = nullptr;
    const double parsed = std::strtod(value.c_str(), &end);
    CHECK(*end == '\0');
    CHECK(samples.emplace(name + std::string(match[2]), parsed).second);
  }
  return samples;
}

// Scrapes `where`'s /metrics until `done` holds for the samples (or 30 s pass: the caller's
// checks then fail on the last scrape), and returns the last scrape.
std::map<std::string, double> ScrapeUntil(
    const HostPort& where, const std::function<bool(const std::map<std::string, double>&)>& done) {
  httplib::Client client(where.host, where.port);
  client.set_connection_timeout(std::chrono::seconds(5));
  client.set_read_timeout(std::chrono::seconds(5));
  std::map<std::string, double> samples;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < give_up) {
    httplib::Result response = client.Get("/metrics");
    REQUIRE(response);
    REQUIRE(response->status == 200);
    samples = ParseExposition(response->body);
    if (done(samples)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling, not timing
  }
  return samples;
}

TEST_CASE("metrics render as Prometheus text with HELP, TYPE and a cumulative histogram") {
  MetricsRegistry registry;
  registry.Publish(ServiceMetrics{.current_round = 4,
                                  .rounds_completed = 3,
                                  .devices_connected = 7,
                                  .last_round_seconds = 0.75,
                                  .epsilon = 1.5});
  registry.ObserveRoundSeconds(0.2);
  registry.ObserveRoundSeconds(0.75);
  registry.ObserveRoundSeconds(1000.0);
  registry.SetRefresh([](ServiceMetrics& m) { m.bytes_received = 123; });
  const std::map<std::string, double> samples = ParseExposition(registry.Render());
  CHECK(samples.at("edgefl_current_round") == 4);
  CHECK(samples.at("edgefl_rounds_completed_total") == 3);
  CHECK(samples.at("edgefl_devices_connected") == 7);
  CHECK(samples.at("edgefl_last_round_duration_seconds") == 0.75);
  CHECK(samples.at("edgefl_epsilon") == 1.5);
  CHECK(samples.at("edgefl_received_bytes_total") == 123);
  CHECK(samples.at("edgefl_round_duration_seconds_bucket{le=\"0.1\"}") == 0);
  CHECK(samples.at("edgefl_round_duration_seconds_bucket{le=\"0.25\"}") == 1);
  CHECK(samples.at("edgefl_round_duration_seconds_bucket{le=\"1\"}") == 2);
  CHECK(samples.at("edgefl_round_duration_seconds_bucket{le=\"300\"}") == 2);
  CHECK(samples.at("edgefl_round_duration_seconds_bucket{le=\"+Inf\"}") == 3);
  CHECK(samples.at("edgefl_round_duration_seconds_count") == 3);
  CHECK(samples.at("edgefl_round_duration_seconds_sum") == doctest::Approx(1000.95));
}

TEST_CASE("metrics addresses are host:port with a port in [0, 65535]") {
  Result<HostPort> v4 = ParseHostPort("127.0.0.1:9464");
  REQUIRE(v4.ok());
  CHECK(v4->host == "127.0.0.1");
  CHECK(v4->port == 9464);
  Result<HostPort> v6 = ParseHostPort("[::1]:0");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  CHECK(v6->port == 0);
  for (const char* bad : {"", "9464", ":9464", "localhost:", "localhost:65536", "host:12x",
                          "::1:9464", "localhost:-1"}) {
    INFO(bad);
    CHECK(ParseHostPort(bad).status().code() == StatusCode::kInvalidArgument);
  }
  ServiceConfig config{.insecure_plaintext = true, .metrics_address = "127.0.0.1"};
  CHECK(config.Validate().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("the metrics server answers GET /metrics, 404 elsewhere, and refuses a taken port" *
          doctest::test_suite("integration")) {
  MetricsRegistry registry;
  registry.Publish(ServiceMetrics{.rounds_completed = 2});
  Result<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1:0", registry);
  REQUIRE(server.ok());
  const uint16_t port = (*server)->port();
  CHECK(port != 0);
  CHECK((*server)->address() == "127.0.0.1:" + std::to_string(port));
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(std::chrono::seconds(5));
  client.set_read_timeout(std::chrono::seconds(5));
  httplib::Result metrics = client.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  CHECK(metrics->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0) == 0);
  CHECK(ParseExposition(metrics->body).at("edgefl_rounds_completed_total") == 2);
  httplib::Result other = client.Get("/admin");
  REQUIRE(other);
  CHECK(other->status == 404);
  CHECK(MetricsServer::Start("127.0.0.1:" + std::to_string(port), registry).status().code() ==
        StatusCode::kUnavailable);
}

TEST_CASE("the service serves metrics while rounds run and exports the model as safetensors" *
          doctest::test_suite("integration")) {
  const auto dir = TempDir("service");
  const models::Dataset data = testing::TinyDataset(40);
  const std::vector<std::vector<uint32_t>> shards = {{0, 2, 4, 6, 8, 10, 12, 14, 16, 18},
                                                     {1, 3, 5, 7, 9, 11, 13, 15, 17, 19}};
  ServiceConfig config = testing::LoopbackServiceConfig(dir);
  config.metrics_address = "127.0.0.1:0";
  config.metrics_address_file = (dir / "metrics_address").string();
  config.rounds = 3;
  config.min_clients = 2;
  config.clients_per_round = 2;
  config.round_deadline_seconds = 20;
  config.save_weights = (dir / "weights.bin").string();
  config.export_model = (dir / "final.safetensors").string();

  std::atomic<bool> service_stop{false};
  std::atomic<bool> devices_stop{false};
  Status service_status;
  std::thread service([&] { service_status = RunService(config, service_stop); });
  const std::string endpoint = testing::WaitForLine(config.endpoint_file);
  const std::string metrics_address = testing::WaitForLine(config.metrics_address_file);
  Result<HostPort> where = ParseHostPort(metrics_address);
  REQUIRE(where.ok());

  // Devices hold on after answering round 1 until the test has scraped, so the scrape sees a
  // completed round while the service is still running.
  std::mutex mutex;
  std::condition_variable scraped_cv;
  bool scraped = false;
  std::vector<std::thread> devices;
  for (const auto& shard : shards) {
    devices.emplace_back([&, &shard = shard] {
      (void)testing::RunTinyDevice(testing::LoopbackDeviceOptions(endpoint), data, shard,
                                   devices_stop, [&](uint64_t round) {
                                     if (round != 1) return;
                                     std::unique_lock<std::mutex> lock(mutex);
                                     scraped_cv.wait(lock, [&] { return scraped; });
                                   });
    });
  }

  const std::map<std::string, double> samples =
      ScrapeUntil(*where, [](const std::map<std::string, double>& samples) {
        return samples.at("edgefl_rounds_completed_total") >= 1;
      });
  {
    std::lock_guard<std::mutex> lock(mutex);
    scraped = true;
  }
  scraped_cv.notify_all();
  service.join();
  devices_stop = true;
  for (auto& device : devices) device.join();
  REQUIRE(service_status.ok());

  CHECK(samples.at("edgefl_rounds_completed_total") == 1);
  CHECK(samples.at("edgefl_current_round") >= 1);
  CHECK(samples.at("edgefl_received_bytes_total") > 0);
  CHECK(samples.at("edgefl_sent_bytes_total") > 0);
  CHECK(samples.at("edgefl_messages_received_total") >= 4);  // 2 Hellos + 2 updates
  CHECK(samples.at("edgefl_devices_connected") == 2);
  CHECK(samples.at("edgefl_devices_registered") == 2);
  CHECK(samples.at("edgefl_updates_accepted_total") == 2);
  CHECK(samples.at("edgefl_updates_rejected_total") == 0);
  CHECK(samples.at("edgefl_round_duration_seconds_count") == 1);
  CHECK(samples.at("edgefl_last_round_duration_seconds") > 0);
  CHECK(samples.at("edgefl_frames_dropped_total") == 0);
  CHECK(samples.at("edgefl_handshakes_refused_total") == 0);

  // The export holds the final weights under the model's tensor names and shapes.
  Result<models::Safetensors> exported = models::LoadSafetensors(config.export_model);
  REQUIRE(exported.ok());
  auto model = models::CreateModel({.name = "logreg", .input_size = 4, .num_classes = 2});
  REQUIRE(model.ok());
  size_t num_values = 0;
  for (const auto& [name, tensor] : exported->tensors) {
    size_t elements = 1;
    for (int64_t d : tensor.shape) elements *= static_cast<size_t>(d);
    num_values += elements;
  }
  CHECK(num_values == (*model)->num_parameters());
  CHECK(exported->metadata.at("round") == "3");
  REQUIRE(models::SetModelParameters(exported->tensors, **model).ok());
  std::vector<float> saved((*model)->num_parameters());
  std::ifstream raw(config.save_weights, std::ios::binary);
  raw.read(reinterpret_cast<char*>(saved.data()),
           static_cast<std::streamsize>(saved.size() * sizeof(float)));
  REQUIRE(raw.gcount() == static_cast<std::streamsize>(saved.size() * sizeof(float)));
  const std::vector<float> loaded((*model)->parameters().begin(), (*model)->parameters().end());
  CHECK(loaded == saved);
  std::filesystem::remove_all(dir);
}

TEST_CASE("after a restart from its checkpoint the service reports the epsilon of every round" *
          doctest::test_suite("integration")) {
  const auto dir = TempDir("epsilon_resume");
  const models::Dataset data = testing::TinyDataset(40);
  const std::vector<std::vector<uint32_t>> shards = testing::RoundRobinShards(data, 2);
  ServiceConfig config = testing::LoopbackServiceConfig(dir);
  config.rounds = 2;
  config.min_clients = 2;
  config.clients_per_round = 2;
  config.dp = "central";
  config.clip = 1.0;
  config.noise_multiplier = 1.0;
  config.round_deadline_seconds = 20;
  config.checkpoint = (dir / "ckpt.bin").string();

  // First run: two DP rounds with devices, checkpointed.
  double epsilon_before_restart = 0.0;
  ServiceHooks hooks;
  hooks.on_round = [&](const RoundReport& report, std::span<const float>) {
    epsilon_before_restart = report.epsilon;
  };
  REQUIRE(testing::RunServiceWithTinyDevices(config, data, shards, hooks).ok());
  REQUIRE(epsilon_before_restart > 0.0);

  // The restarted service has run no round of its own and has no devices: its gauge shows what
  // the checkpoint's two rounds spent, not 0.
  std::filesystem::remove(config.endpoint_file);
  config.rounds = 3;
  config.metrics_address = "127.0.0.1:0";
  config.metrics_address_file = (dir / "metrics_address").string();
  std::atomic<bool> service_stop{false};
  Status service_status;
  std::thread service([&] { service_status = RunService(config, service_stop); });
  Result<HostPort> where = ParseHostPort(testing::WaitForLine(config.metrics_address_file));
  REQUIRE(where.ok());
  const std::map<std::string, double> samples =
      ScrapeUntil(*where, [](const std::map<std::string, double>& samples) {
        return samples.at("edgefl_current_round") == 2;
      });
  service_stop = true;
  service.join();
  REQUIRE(service_status.ok());
  CHECK(samples.at("edgefl_current_round") == 2);
  CHECK(samples.at("edgefl_rounds_completed_total") == 0);
  // Prometheus's shortest round-trip spelling: the very double the engine reported.
  CHECK(samples.at("edgefl_epsilon") == epsilon_before_restart);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgefl::coordinator

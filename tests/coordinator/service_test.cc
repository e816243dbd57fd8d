#include "edgefl/coordinator/service.h"

#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <thread>

#include "edgefl/client/device_process.h"
#include "edgefl/coordinator/checkpoint.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "edgefl/transport/zmq_channel.h"
#include "coordinator/loopback_service.h"
#include "coordinator/tiny_dataset.h"

namespace edgefl::coordinator {
namespace {

using testing::TempDir;

TEST_CASE("a checkpoint reads back exactly what was saved") {
  const auto dir = TempDir("ckpt");
  const Checkpoint saved{.round = 7,
                         .weights = {1.5f, -2.0f, 3.25f},
                         .strategy_state = {0.5f},
                         .accountant_steps = 7,
                         .accountant_rdp = {0.25, 1.5}};
  REQUIRE(SaveCheckpoint(dir / "c.bin", saved).ok());
  Result<Checkpoint> loaded = LoadCheckpoint(dir / "c.bin");
  REQUIRE(loaded.ok());
  CHECK(loaded->round == 7);
  CHECK(loaded->weights == saved.weights);
  CHECK(loaded->strategy_state == saved.strategy_state);
  CHECK(loaded->accountant_steps == 7);
  CHECK(loaded->accountant_rdp == saved.accountant_rdp);
  CHECK_FALSE(std::filesystem::exists(dir / "c.bin.tmp"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("a missing, truncated or corrupted checkpoint is reported, not loaded") {
  const auto dir = TempDir("ckpt_bad");
  CHECK(LoadCheckpoint(dir / "none.bin").status().code() == StatusCode::kNotFound);
  REQUIRE(SaveCheckpoint(dir / "c.bin", {.round = 1, .weights = {1, 2, 3, 4}}).ok());
  const auto size = std::filesystem::file_size(dir / "c.bin");
  std::filesystem::resize_file(dir / "c.bin", size - 3);
  CHECK(LoadCheckpoint(dir / "c.bin").status().code() == StatusCode::kDataLoss);
  REQUIRE(SaveCheckpoint(dir / "d.bin", {.round = 1, .weights = {1, 2, 3, 4}}).ok());
  {
    std::fstream f(dir / "d.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x7f');
  }
  CHECK(LoadCheckpoint(dir / "d.bin").status().code() == StatusCode::kDataLoss);
  std::filesystem::remove_all(dir);
}

TEST_CASE("the service config rejects unknown keys with a hint and round-trips through TOML") {
  const auto dir = TempDir("config");
  {
    std::ofstream out(dir / "bad.toml");
    out << "rounds = 3\nclients_per_rund = 4\n";
  }
  Result<ServiceConfig> bad = LoadServiceConfig(dir / "bad.toml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("clients_per_round") != std::string::npos);

  ServiceConfig config;
  config.rounds = 9;
  config.secagg = true;
  config.dp = "distributed";
  config.endpoint = "tcp://127.0.0.1:*";
  {
    std::ofstream out(dir / "good.toml");
    out << FormatServiceConfig(config);
  }
  Result<ServiceConfig> good = LoadServiceConfig(dir / "good.toml");
  REQUIRE(good.ok());
  CHECK(good->rounds == 9);
  CHECK(good->secagg);
  CHECK(good->dp == "distributed");
  CHECK(good->endpoint == "tcp://127.0.0.1:*");
  std::filesystem::remove_all(dir);
}

// Runs the service to `rounds` with three device threads; returns the final weights.
std::vector<float> RunWithDevices(const ServiceConfig& config, const models::Dataset& data,
                                  const std::vector<std::vector<uint32_t>>& shards) {
  std::atomic<bool> service_stop{false};
  std::atomic<bool> devices_stop{false};
  Status service_status;
  std::thread service([&] { service_status = RunService(config, service_stop); });
  // The endpoint file appears once the service is bound.
  const std::string endpoint = testing::WaitForLine(config.endpoint_file);
  std::vector<std::thread> devices;
  for (const auto& shard : shards) {
    devices.emplace_back([&, &shard = shard] {
      (void)testing::RunTinyDevice(testing::LoopbackDeviceOptions(endpoint), data, shard,
                                   devices_stop);
    });
  }
  service.join();
  devices_stop = true;
  for (auto& device : devices) device.join();
  REQUIRE(service_status.ok());
  std::ifstream in(config.save_weights, std::ios::binary);
  std::vector<float> weights(10);
  in.read(reinterpret_cast<char*>(weights.data()), 10 * sizeof(float));
  REQUIRE(in.gcount() == 10 * sizeof(float));
  return weights;
}

TEST_CASE("the service runs secure rounds with device processes, checkpoints and resumes" *
          doctest::test_suite("integration")) {
  const auto dir = TempDir("run");
  const models::Dataset data = testing::TinyDataset(60);
  const std::vector<std::vector<uint32_t>> shards = testing::RoundRobinShards(data, 3);

  ServiceConfig config = testing::LoopbackServiceConfig(dir);
  config.rounds = 2;
  config.min_clients = 3;
  config.clients_per_round = 3;
  config.secagg = true;
  config.dp = "distributed";
  config.clip = 1.0;
  config.noise_multiplier = 0.5;
  config.round_deadline_seconds = 20;
  config.checkpoint = (dir / "ckpt.bin").string();
  config.save_weights = (dir / "weights.bin").string();
  const std::vector<float> after_two = RunWithDevices(config, data, shards);
  Result<Checkpoint> checkpoint = LoadCheckpoint(config.checkpoint);
  REQUIRE(checkpoint.ok());
  CHECK(checkpoint->round == 2);
  CHECK(checkpoint->weights == after_two);

  // A restart with rounds = 3 resumes after round 2 and runs only round 3.
  std::filesystem::remove(config.endpoint_file);
  config.rounds = 3;
  const std::vector<float> after_three = RunWithDevices(config, data, shards);
  checkpoint = LoadCheckpoint(config.checkpoint);
  REQUIRE(checkpoint.ok());
  CHECK(checkpoint->round == 3);
  CHECK(after_three != after_two);
  std::filesystem::remove_all(dir);
}

TEST_CASE("a stop request mid-round ends the service without applying or saving the round" *
          doctest::test_suite("integration")) {
  const auto dir = TempDir("cancel");
  const models::Dataset data = testing::TinyDataset(40);
  ServiceConfig config = testing::LoopbackServiceConfig(dir);
  config.rounds = 3;
  config.min_clients = 2;
  config.clients_per_round = 2;
  config.round_deadline_seconds = 0;  // wait for every cohort member
  config.checkpoint = (dir / "ckpt.bin").string();
  config.export_model = (dir / "model.safetensors").string();
  std::atomic<bool> stop{false};
  std::atomic<int> rounds_seen{0};
  ServiceHooks hooks;
  hooks.on_round = [&](const RoundReport&, std::span<const float>) { ++rounds_seen; };
  Status service_status = InternalError("RunService did not return");
  std::thread service([&] { service_status = RunService(config, stop, hooks); });
  const std::string endpoint = testing::WaitForLine(config.endpoint_file);

  // A real device that answers, and one that takes its RoundStart and never answers.
  std::atomic<bool> device_stop{false};
  std::thread device([&] {
    (void)testing::RunTinyDevice(testing::LoopbackDeviceOptions(endpoint), data,
                                 testing::RoundRobinShards(data, 1)[0], device_stop);
  });
  WallClock clock;
  std::unique_ptr<transport::ZmqDeviceChannel> silent =
      testing::ConnectBareDevice(endpoint, clock).value();
  REQUIRE(testing::AwaitMessage<transport::RoundStart>(*silent).ok());

  stop = true;
  service.join();
  CHECK(service_status.ok());
  CHECK(rounds_seen == 0);
  CHECK_FALSE(std::filesystem::exists(config.checkpoint));
  CHECK_FALSE(std::filesystem::exists(config.export_model));
  // The devices are told the run is over.
  CHECK(testing::AwaitMessage<transport::Goodbye>(*silent).ok());
  device_stop = true;
  device.join();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgefl::coordinator

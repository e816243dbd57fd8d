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
  REQUIRE(testing::RunServiceWithTinyDevices(config, data, shards).ok());
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

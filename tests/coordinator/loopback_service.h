// For the coordinator tests that run RunService on loopback with device threads: a fresh
// folder, a plaintext service for TinyDataset's logistic regression, waiting for the files the
// service writes once bound, the real device process on a shard of the tiny dataset, a whole
// service run with such devices, and a bare device that registers and answers only what the
// test sends.
//
//   ServiceConfig config = testing::LoopbackServiceConfig(testing::TempDir("run"));
//   std::thread service([&] { status = RunService(config, stop); });
//   auto stats = testing::RunTinyDevice(testing::WaitForLine(config.endpoint_file), ...);
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "edgefl/client/device_process.h"
#include "edgefl/common/clock.h"
#include "edgefl/coordinator/service.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "edgefl/transport/zmq_channel.h"

namespace edgefl::coordinator::testing {

// A fresh, empty folder under the system's temp folder, unique to `name` and this process.
inline std::filesystem::path TempDir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("edgefl_coordinator_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// The first line of `path`, once another thread (the service) has written it.
inline std::string WaitForLine(const std::string& path) {
  std::string line;
  while (line.empty()) {
    std::ifstream in(path);
    if (in) std::getline(in, line);
    if (line.empty()) std::this_thread::yield();
  }
  return line;
}

// A plaintext service on a free loopback port, written to dir/endpoint, for the logistic
// regression of TinyDataset; the caller sets the rounds and clients.
inline ServiceConfig LoopbackServiceConfig(const std::filesystem::path& dir) {
  ServiceConfig config;
  config.endpoint = "tcp://127.0.0.1:*";
  config.insecure_plaintext = true;
  config.endpoint_file = (dir / "endpoint").string();
  config.model = "logreg";
  config.input_size = 4;
  config.num_classes = 2;
  return config;
}

// Example indices dealt round-robin to `num_devices` shards: example i goes to shard i % n.
inline std::vector<std::vector<uint32_t>> RoundRobinShards(const models::Dataset& data,
                                                           size_t num_devices) {
  std::vector<std::vector<uint32_t>> shards(num_devices);
  for (uint32_t i = 0; i < data.num_examples; ++i) shards[i % num_devices].push_back(i);
  return shards;
}

// A plaintext device of `endpoint` with heartbeats every 200 ms and no linger.
inline client::DeviceProcessOptions LoopbackDeviceOptions(const std::string& endpoint) {
  client::DeviceProcessOptions options;
  options.channel.endpoint = endpoint;
  options.channel.insecure_plaintext = true;
  options.channel.heartbeat_interval = std::chrono::milliseconds(200);
  options.channel.linger = std::chrono::milliseconds(0);
  return options;
}

// A device channel on `endpoint` that has said Hello and answers only what the test sends
// through it; left alone, a cohort member that never reports. Its heartbeats (every 200 ms) keep
// it registered. `clock` must outlive it.
inline Result<std::unique_ptr<transport::ZmqDeviceChannel>> ConnectBareDevice(
    const std::string& endpoint, const Clock& clock) {
  EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<transport::ZmqDeviceChannel> device,
                          transport::ZmqDeviceChannel::Create(
                              LoopbackDeviceOptions(endpoint).channel, clock));
  EDGEFL_RETURN_IF_ERROR(
      device->Send(transport::Message{.body = transport::Hello{.device_name = "silent"}}));
  return device;
}

// The first message of type `T` that `device` receives, skipping others (Welcome, keep-alives).
// kDeadlineExceeded when none comes within a minute: the test fails instead of hanging.
template <typename T>
Result<transport::Message> AwaitMessage(transport::DeviceChannel& device) {
  const Clock::Duration give_up = device.clock().Now() + std::chrono::minutes(1);
  while (true) {
    Result<transport::Message> received = device.Receive(give_up);
    if (!received.ok() || std::holds_alternative<T>(received->body)) return received;
  }
}

// The device process with the built-in trainer and its own logistic regression on `shard` of
// `data`, until Goodbye or `stop` (client/device_process.h).
inline Result<client::DeviceProcessStats> RunTinyDevice(
    const client::DeviceProcessOptions& options, const models::Dataset& data,
    const std::vector<uint32_t>& shard, const std::atomic<bool>& stop,
    const std::function<void(uint64_t round)>& on_round = {}) {
  EDGEFL_ASSIGN_OR_RETURN(
      std::unique_ptr<models::Model> model,
      models::CreateModel({.name = "logreg", .input_size = 4, .num_classes = 2}));
  client::Workspace workspace(std::move(model));
  return client::RunDeviceProcess(options, client::LocalData{&data, shard}, workspace, stop,
                                  on_round);
}

// Runs the service of `config` with one RunTinyDevice thread per shard until the service
// returns (its rounds done), then stops the devices. Returns the service's status.
inline Status RunServiceWithTinyDevices(const ServiceConfig& config, const models::Dataset& data,
                                        const std::vector<std::vector<uint32_t>>& shards,
                                        const ServiceHooks& hooks = {}) {
  std::atomic<bool> service_stop{false};
  std::atomic<bool> devices_stop{false};
  Status service_status;
  std::thread service([&] { service_status = RunService(config, service_stop, hooks); });
  // The endpoint file appears once the service is bound.
  const std::string endpoint = WaitForLine(config.endpoint_file);
  std::vector<std::thread> devices;
  for (const auto& shard : shards) {
    devices.emplace_back([&, &shard = shard] {
      (void)RunTinyDevice(LoopbackDeviceOptions(endpoint), data, shard, devices_stop);
    });
  }
  service.join();
  devices_stop = true;
  for (auto& device : devices) device.join();
  return service_status;
}

}  // namespace edgefl::coordinator::testing

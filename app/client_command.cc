// `edgefl client --config client.toml`: one device process training a Fashion-MNIST shard.
// The shard is the simulator's: the same partition (kind, alpha, seed, num_clients) and index.
#include "client_command.h"

#include <spdlog/spdlog.h>
#include <toml++/toml.h>

#include <atomic>
#include <csignal>
#include <iostream>
#include <memory>
#include <variant>

#include "edgefl/client/device_process.h"
#include "edgefl/common/random.h"
#include "edgefl/common/strings.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "edgefl/simulations/partition.h"

namespace edgefl::app {
namespace {

std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }

// TOML keys are the field names.
struct ClientConfig {
  std::string endpoint = "tcp://127.0.0.1:7878";
  bool insecure_plaintext = false;
  std::string secret_key_file;
  std::string server_public_key_file;
  std::string name = "device";
  std::string model = "mlp";
  std::string data_dir = "/usr/share/datasets/fashion-mnist";
  std::string partition = "iid";
  double alpha = 0.5;
  uint64_t shards_per_client = 2;
  uint64_t seed = 1;
  uint64_t num_clients = 100;
  uint64_t index = 0;  // which shard, 0-based
  double heartbeat_seconds = 2.0;
  double silence_timeout_seconds = 30.0;
  uint64_t max_rounds = 0;
};

using FieldPointer = std::variant<std::string ClientConfig::*, uint64_t ClientConfig::*,
                                  double ClientConfig::*, bool ClientConfig::*>;
struct Field {
  const char* key;
  FieldPointer pointer;
};
const std::vector<Field>& Fields() {
  static const std::vector<Field> fields = {
      {"endpoint", &ClientConfig::endpoint},
      {"insecure_plaintext", &ClientConfig::insecure_plaintext},
      {"secret_key_file", &ClientConfig::secret_key_file},
      {"server_public_key_file", &ClientConfig::server_public_key_file},
      {"name", &ClientConfig::name},
      {"model", &ClientConfig::model},
      {"data_dir", &ClientConfig::data_dir},
      {"partition", &ClientConfig::partition},
      {"alpha", &ClientConfig::alpha},
      {"shards_per_client", &ClientConfig::shards_per_client},
      {"seed", &ClientConfig::seed},
      {"num_clients", &ClientConfig::num_clients},
      {"index", &ClientConfig::index},
      {"heartbeat_seconds", &ClientConfig::heartbeat_seconds},
      {"silence_timeout_seconds", &ClientConfig::silence_timeout_seconds},
      {"max_rounds", &ClientConfig::max_rounds},
  };
  return fields;
}

Status Load(const std::string& path, ClientConfig& config) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return InvalidArgumentError(path + ": " + std::string(e.description()));
  }
  std::vector<std::string> keys;
  for (const Field& f : Fields()) keys.emplace_back(f.key);
  for (const auto& [key, node] : table) {
    const std::string name(key.str());
    const Field* field = nullptr;
    for (const Field& f : Fields()) {
      if (name == f.key) field = &f;
    }
    if (field == nullptr) {
      return InvalidArgumentError(path + ": unknown key '" + name + "'" + DidYouMean(name, keys));
    }
    const std::string where = path + ": " + name;
    Status status = std::visit(
        [&](auto member) -> Status {
          using T = std::remove_cvref_t<decltype(config.*member)>;
          if constexpr (std::is_same_v<T, uint64_t>) {
            auto v = node.value<int64_t>();
            if (!node.is_integer() || !v || *v < 0) {
              return InvalidArgumentError(where + " must be a non-negative integer");
            }
            config.*member = static_cast<uint64_t>(*v);
          } else if constexpr (std::is_same_v<T, double>) {
            auto v = node.value<double>();
            if (!v) return InvalidArgumentError(where + " must be a number");
            config.*member = *v;
          } else if constexpr (std::is_same_v<T, bool>) {
            if (!node.is_boolean()) return InvalidArgumentError(where + " must be true or false");
            config.*member = *node.value<bool>();
          } else {
            if (!node.is_string()) return InvalidArgumentError(where + " must be a string");
            config.*member = *node.value<std::string>();
          }
          return OkStatus();
        },
        field->pointer);
    EDGEFL_RETURN_IF_ERROR(status);
  }
  return OkStatus();
}

std::string Format(const ClientConfig& config) {
  std::ostringstream out;
  for (const Field& field : Fields()) {
    toml::table one;
    std::visit(
        [&](auto member) {
          using T = std::remove_cvref_t<decltype(config.*member)>;
          if constexpr (std::is_same_v<T, uint64_t>) {
            one.insert(field.key, static_cast<int64_t>(config.*member));
          } else {
            one.insert(field.key, config.*member);
          }
        },
        field.pointer);
    out << one << "\n";
  }
  return out.str();
}

Status RunClient(const ClientConfig& config) {
  if (config.index >= config.num_clients) {
    return InvalidArgumentError("index must be < num_clients");
  }
  // Data exactly as the simulator prepares it (simulation.cc): standardised with the training
  // set's moments, partitioned with the same derived seed.
  EDGEFL_ASSIGN_OR_RETURN(models::Dataset train,
                          models::LoadFashionMnist(config.data_dir, models::Split::kTrain));
  models::StandardizeFeatures(train, models::ComputeFeatureMoments(train));
  EDGEFL_ASSIGN_OR_RETURN(simulations::PartitionKind kind,
                          simulations::ParsePartitionKind(config.partition));
  EDGEFL_ASSIGN_OR_RETURN(
      simulations::ClientPartition partition,
      simulations::Partition(train.labels, train.num_classes, config.num_clients,
                             simulations::PartitionOptions{.kind = kind,
                                                           .alpha = config.alpha,
                                                           .shards_per_client =
                                                               config.shards_per_client},
                             DeriveSeed(config.seed, 0x9a27ULL)));
  EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<models::Model> model,
                          models::CreateModel(models::ModelSpec{
                              .name = config.model,
                              .input_size = train.example_size,
                              .num_classes = train.num_classes}));
  client::Workspace workspace(std::move(model));
  client::DeviceProcessOptions options;
  options.channel.endpoint = config.endpoint;
  options.channel.insecure_plaintext = config.insecure_plaintext;
  options.channel.secret_key_file = config.secret_key_file;
  options.channel.server_public_key_file = config.server_public_key_file;
  options.channel.heartbeat_interval =
      std::chrono::milliseconds(static_cast<int64_t>(config.heartbeat_seconds * 1000));
  options.device_name = config.name;
  options.silence_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(config.silence_timeout_seconds * 1000));
  options.max_rounds = config.max_rounds;
  EDGEFL_ASSIGN_OR_RETURN(
      client::DeviceProcessStats stats,
      client::RunDeviceProcess(options, client::LocalData{&train, partition[config.index]},
                               workspace, g_stop));
  spdlog::info("event=client_done rounds={} connections={}", stats.rounds_answered,
               stats.connections);
  return OkStatus();
}

}  // namespace

void AddClientCommand(CLI::App& app, int& exit_code) {
  struct Flags {
    std::string config_path;
    bool print_config = false;
    bool insecure = false;
    std::string endpoint;
    int64_t index = -1;
  };
  auto flags = std::make_shared<Flags>();
  CLI::App* command = app.add_subcommand(
      "client", "Run one device process: connect to a coordinator and train rounds on a\n"
                "Fashion-MNIST shard (the simulator's partition).");
  command->add_option("-c,--config", flags->config_path, "TOML file (ClientConfig keys)")
      ->check(CLI::ExistingFile);
  command->add_flag("--print-config", flags->print_config, "Print the configuration as TOML");
  command->add_flag("--insecure-plaintext", flags->insecure, "No CURVE (loopback tests only)");
  command->add_option("--endpoint", flags->endpoint, "Coordinator endpoint");
  command->add_option("--index", flags->index, "Shard index (0-based)");
  command->callback([flags, &exit_code] {
    ClientConfig config;
    if (!flags->config_path.empty()) {
      Status loaded = Load(flags->config_path, config);
      if (!loaded.ok()) {
        std::cerr << "edgefl client: " << loaded.ToString() << "\n";
        exit_code = 2;
        return;
      }
    }
    if (flags->insecure) config.insecure_plaintext = true;
    if (!flags->endpoint.empty()) config.endpoint = flags->endpoint;
    if (flags->index >= 0) config.index = static_cast<uint64_t>(flags->index);
    if (flags->print_config) {
      std::cout << Format(config);
      return;
    }
    std::signal(SIGTERM, OnSignal);
    std::signal(SIGINT, OnSignal);
    const Status status = RunClient(config);
    if (!status.ok()) {
      std::cerr << "edgefl client: " << status.ToString() << "\n";
      exit_code = 1;
    }
  });
}

}  // namespace edgefl::app

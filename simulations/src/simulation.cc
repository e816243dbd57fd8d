#include "edgefl/simulations/simulation.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <ostream>
#include <sstream>

#include "device_host.h"
#include "experiment.h"
#include "edgefl/aggregation/strategy.h"
#include "edgefl/client/device.h"
#include "edgefl/coordinator/registry.h"
#include "edgefl/coordinator/round_engine.h"
#include "edgefl/coordinator/round_settings.h"
#include "edgefl/models/charlm.h"
#include "edgefl/models/dataset.h"
#include "edgefl/models/model.h"
#include "edgefl/models/threading.h"
#include "edgefl/models/training.h"
#include "edgefl/models/text_data.h"
#include "edgefl/simulations/partition.h"
#include "edgefl/simulations/profiles.h"
#include "edgefl/simulations/sim_worker.h"
#include "edgefl/transport/in_process_channel.h"

namespace edgefl::simulations {

Result<Datasets> LoadData(const SimulationConfig& config, bool load_test) {
  if (config.data == "fortunes") {
    std::vector<std::string> names;
    std::istringstream list(config.categories);
    for (std::string name; std::getline(list, name, ',');) {
      if (!name.empty()) names.push_back(name);
    }
    const std::string dir = config.data_dir == SimulationConfig{}.data_dir
                                ? std::string(models::kDefaultFortunesDir)
                                : config.data_dir;
    EDGEFL_ASSIGN_OR_RETURN(std::vector<models::TextCategory> texts,
                            models::LoadTextCategories(dir, names));
    EDGEFL_ASSIGN_OR_RETURN(
        models::CategoryPartition partition,
        models::PartitionByCategory(texts, models::CharLmConfig{}.context));
    return Datasets{std::move(partition.train),
                    load_test ? std::move(partition.test) : models::Dataset{},
                    std::move(partition.client_indices)};
  }
  EDGEFL_ASSIGN_OR_RETURN(models::Dataset train,
                          models::LoadFashionMnist(config.data_dir, models::Split::kTrain));
  models::Dataset test;
  if (load_test) {
    EDGEFL_ASSIGN_OR_RETURN(test, models::LoadFashionMnist(config.data_dir, models::Split::kTest));
  }
  // Standardised inputs (the training set's moments, for both splits) train the MLP markedly
  // faster than raw [0, 1] pixels.
  const models::FeatureMoments moments = models::ComputeFeatureMoments(train);
  models::StandardizeFeatures(train, moments);
  if (load_test) models::StandardizeFeatures(test, moments);
  return Datasets{std::move(train), std::move(test)};
}

// Test-set evaluation split over the worker threads' scratch models. Chunks are fixed, and
// the sums are combined in chunk order, so the result does not depend on the thread count.
models::Evaluation EvaluateParallel(std::span<const float> weights, const models::Dataset& test,
                                    std::vector<std::unique_ptr<client::Workspace>>& workspaces) {
  constexpr size_t kChunks = 20;
  const size_t per_chunk = (test.num_examples + kChunks - 1) / kChunks;
  std::vector<models::Evaluation> parts(kChunks);
  std::vector<std::vector<uint32_t>> indices(kChunks);
  for (size_t c = 0; c < kChunks; ++c) {
    for (size_t i = c * per_chunk; i < std::min(test.num_examples, (c + 1) * per_chunk); ++i) {
      indices[c].push_back(static_cast<uint32_t>(i));
    }
  }
  for (auto& workspace : workspaces) {
    std::span<float> parameters = workspace->model().parameters();
    std::copy(weights.begin(), weights.end(), parameters.begin());
  }
  const int num_threads = static_cast<int>(workspaces.size());
#pragma omp parallel for schedule(dynamic, 1) num_threads(num_threads)
  for (size_t c = 0; c < kChunks; ++c) {
    if (indices[c].empty()) continue;
    // In Evaluate's bounded batches: each thread's model holds one batch of activations.
    parts[c] = models::Evaluate(workspaces[omp_get_thread_num()]->model(), test, indices[c]);
  }
  return models::CombineEvaluations(parts);
}

Result<std::vector<std::vector<uint32_t>>> PartitionDevices(const SimulationConfig& config,
                                                            const models::Dataset& train) {
  // Each virtual device gets indices into the shared training set. With more devices than
  // examples, the training set is split into one part per example and device i uses part
  // i mod parts (devices then share data; they still train and fail independently).
  if (train.targets_per_example > 1) {
    return InvalidArgumentError("text is partitioned by category: PartitionDevices(config, data)");
  }
  const size_t num_parts = std::min(config.clients, train.num_examples);
  EDGEFL_ASSIGN_OR_RETURN(PartitionKind kind, ParsePartitionKind(config.partition));
  const PartitionOptions partition_options{.kind = kind,
                                           .alpha = config.alpha,
                                           .shards_per_client = config.shards_per_client};
  return Partition(train.labels, train.num_classes, num_parts, partition_options,
                   DeriveSeed(config.seed, 0x9a27ULL));
}

Result<std::vector<std::vector<uint32_t>>> PartitionDevices(const SimulationConfig& config,
                                                            const Datasets& data) {
  if (data.groups.empty()) return PartitionDevices(config, data.train);
  return PartitionGroups(data.groups, config.clients);
}

models::ModelSpec ModelSpecFor(const SimulationConfig& config, const models::Dataset& train) {
  models::ModelSpec spec{.name = config.model,
                         .input_size = train.example_size,
                         .num_classes = train.num_classes,
                         .base = config.base,
                         .lora_rank = config.lora_rank,
                         .lora_alpha = static_cast<float>(config.lora_alpha)};
  std::istringstream targets(config.lora_targets);
  for (std::string target; std::getline(targets, target, ',');) {
    if (!target.empty()) spec.lora_targets.push_back(target);
  }
  return spec;
}

Result<std::vector<std::unique_ptr<client::Workspace>>> MakeWorkspaces(
    const models::ModelSpec& spec, size_t count) {
  std::vector<std::unique_ptr<client::Workspace>> workspaces;
  for (size_t t = 0; t < count; ++t) {
    EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<models::Model> model, models::CreateModel(spec));
    workspaces.push_back(std::make_unique<client::Workspace>(std::move(model)));
  }
  return workspaces;
}

RoundRecord MakeRoundRecord(const SimulationConfig& config, size_t round,
                            const coordinator::RoundReport& report, double sim_seconds,
                            std::span<const float> weights, const Datasets& data,
                            std::vector<std::unique_ptr<client::Workspace>>& workspaces) {
  RoundRecord record;
  record.round = round;
  record.train_loss = report.train_loss;
  record.applied = report.status.ok();
  record.num_clients_selected = report.num_clients_selected;
  record.num_clients_reported = report.num_clients_reported;
  record.num_clients_dropped = report.num_clients_dropped;
  record.num_clients_rejected = report.num_clients_rejected;
  record.sim_seconds = sim_seconds;
  record.epsilon = report.epsilon;
  record.mean_staleness = report.mean_staleness;
  record.test_loss = std::numeric_limits<double>::quiet_NaN();
  record.test_accuracy = std::numeric_limits<double>::quiet_NaN();
  if (round % config.eval_every == 0 || round == config.rounds) {
    const models::Evaluation eval = EvaluateParallel(weights, data.test, workspaces);
    record.test_loss = eval.loss;
    record.test_accuracy = eval.accuracy;
    if (data.train.targets_per_example > 1) {
      record.test_perplexity = models::Perplexity(eval.loss);
    }
  }
  return record;
}

Result<SimulationResult> RunSimulation(const SimulationConfig& config,
                                       const std::function<void(const RoundRecord&)>& on_round) {
  EDGEFL_RETURN_IF_ERROR(config.Validate());
  if (config.workers > 0) return RunWorkerSimulation(config, on_round);
  const auto wall_start = std::chrono::steady_clock::now();
  const int num_threads =
      config.threads > 0 ? static_cast<int>(config.threads) : std::max(1, omp_get_num_procs());
  models::SetNumThreads(num_threads);

  EDGEFL_ASSIGN_OR_RETURN(Datasets data, LoadData(config));
  const models::ModelSpec model_spec = ModelSpecFor(config, data.train);

  EDGEFL_ASSIGN_OR_RETURN(std::vector<std::vector<uint32_t>> partition,
                          PartitionDevices(config, data));
  const size_t num_parts = partition.size();
  const bool text = data.train.targets_per_example > 1;

  SimulationResult result;
  if (!text) result.label_skew = LabelSkew(data.train.labels, data.train.num_classes, partition);

  EDGEFL_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<client::Workspace>> workspaces,
                          MakeWorkspaces(model_spec, static_cast<size_t>(num_threads)));
  models::Model& reference_model = workspaces[0]->model();
  // A base without adapters is the starting point itself (CreateModel loaded it).
  if (config.base.empty() || config.lora_rank > 0) reference_model.InitializeParameters(config.seed);
  std::vector<float> initial(reference_model.parameters().begin(),
                             reference_model.parameters().end());
  result.num_parameters = initial.size();
  result.model_parameters =
      config.lora_rank > 0 ? models::CharLmParameterCount(models::CharLmConfig{}) : initial.size();

  std::vector<client::Device> devices;
  devices.reserve(config.clients);
  for (size_t i = 0; i < config.clients; ++i) {
    devices.emplace_back(ClientId{i + 1},
                         client::LocalData{&data.train, partition[i % num_parts]});
  }
  // Evaluation has scratch models of its own: the training workspaces move into the host.
  EDGEFL_ASSIGN_OR_RETURN(std::vector<std::unique_ptr<client::Workspace>> eval_workspaces,
                          MakeWorkspaces(model_spec, static_cast<size_t>(num_threads)));

  std::vector<DeviceProfile> profiles;
  if (!config.device_trace.empty()) {
    EDGEFL_ASSIGN_OR_RETURN(profiles, LoadDeviceTrace(config.device_trace, config.clients));
  } else {
    EDGEFL_ASSIGN_OR_RETURN(profiles, DrawProfiles(config.device_profiles, config.clients,
                                                   DeriveSeed(config.seed, 0xde71ceULL)));
  }
  const bool always_available = std::all_of(profiles.begin(), profiles.end(), [](const auto& p) {
    return p.available_from_hour <= 0.0 && p.available_to_hour >= 24.0;
  });
  VirtualDeviceHost host(std::move(devices), std::move(profiles),
                         std::move(workspaces),
                         DropoutOptions{.probability = config.dropout,
                                        .seed = DeriveSeed(config.seed, 0xd209ULL)});
  VirtualClock clock;
  transport::InProcessChannel channel(clock, [&host] { return host.RunPending(); });
  host.set_channel(&channel);

  EDGEFL_ASSIGN_OR_RETURN(
      std::unique_ptr<aggregation::Strategy> strategy,
      aggregation::CreateStrategy(coordinator::StrategyOptionsFrom(config), initial.size()));

  EDGEFL_ASSIGN_OR_RETURN(coordinator::EngineOptions engine_options,
                          coordinator::EngineOptionsFrom(config));
  engine_options.async_concurrency = config.async_concurrency;
  if (config.round_deadline > 0) {
    engine_options.round_deadline = std::chrono::duration_cast<Clock::Duration>(
        std::chrono::duration<double>(config.round_deadline));
  }
  if (!always_available) {
    // Selection sees only devices online at the round's virtual start (profiles.h).
    engine_options.is_available = [&host](ClientId client, Clock::Duration now) {
      return IsAvailable(host.profiles()[client.value() - 1], now);
    };
  }
  EDGEFL_RETURN_IF_ERROR(engine_options.Validate());

  coordinator::ClientRegistry registry;
  coordinator::RoundEngine engine(engine_options, std::move(initial), std::move(strategy), channel,
                                  registry);
  host.RegisterAll();
  engine.AcceptRegistrations();

  if (text) {
    // Round 0: the base (or fresh) model before federated training, the "before" of a
    // fine-tuning run.
    RoundRecord before;
    before.train_loss = std::numeric_limits<double>::quiet_NaN();
    const models::Evaluation eval =
        EvaluateParallel(engine.global_weights(), data.test, eval_workspaces);
    before.test_loss = eval.loss;
    before.test_accuracy = eval.accuracy;
    before.test_perplexity = models::Perplexity(eval.loss);
    before.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    result.initial = before;
    if (on_round) on_round(before);
  }
  for (size_t r = 1; r <= config.rounds; ++r) {
    if (!always_available) {
      // With nobody online at the round's start the round would fail; a device population
      // asleep at night simply waits, so virtual time skips to the first device's window.
      const Clock::Duration start = NextAvailableTime(host.profiles(), clock.Now());
      if (start == Clock::Duration::max()) {
        return FailedPreconditionError("round " + std::to_string(r) +
                                       ": no device is ever available (every availability "
                                       "window is empty)");
      }
      clock.AdvanceTo(start);
    }
    EDGEFL_ASSIGN_OR_RETURN(
        coordinator::RoundReport report,
        config.strategy == "fedbuff" ? engine.RunBufferedStep() : engine.RunRound());
    RoundRecord record = MakeRoundRecord(config, r, report, ToSeconds(clock.Now()),
                                         engine.global_weights(), data, eval_workspaces);
    record.wall_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
    result.rounds.push_back(record);
    if (on_round) on_round(record);
  }
  result.final_weights.assign(engine.global_weights().begin(), engine.global_weights().end());
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  return result;
}

}  // namespace edgefl::simulations

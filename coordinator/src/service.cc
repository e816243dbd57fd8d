#include "edgefl/coordinator/service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <optional>
#include <span>
#include <thread>
#include <utility>

#include "edgefl/aggregation/strategy.h"
#include "edgefl/common/check.h"
#include "edgefl/common/clock.h"
#include "edgefl/common/config_fields.h"
#include "edgefl/common/random.h"
#include "edgefl/common/toml_config.h"
#include "edgefl/coordinator/checkpoint.h"
#include "edgefl/coordinator/keep_alive.h"
#include "edgefl/coordinator/metrics.h"
#include "edgefl/coordinator/registry.h"
#include "edgefl/coordinator/round_engine.h"
#include "edgefl/coordinator/round_settings.h"
#include "edgefl/models/checkpoint.h"
#include "edgefl/models/model.h"
#include "edgefl/transport/zmq_channel.h"

namespace edgefl::coordinator {
namespace {

// One row per field, in declaration order: the single place that ties TOML keys to members.
constexpr ConfigField<ServiceConfig> kFields[] = {
    {"endpoint", &ServiceConfig::endpoint},
    {"insecure_plaintext", &ServiceConfig::insecure_plaintext},
    {"secret_key_file", &ServiceConfig::secret_key_file},
    {"allowed_keys_path", &ServiceConfig::allowed_keys_path},
    {"endpoint_file", &ServiceConfig::endpoint_file},
    {"metrics_address", &ServiceConfig::metrics_address},
    {"metrics_address_file", &ServiceConfig::metrics_address_file},
    {"model", &ServiceConfig::model},
    {"input_size", &ServiceConfig::input_size},
    {"num_classes", &ServiceConfig::num_classes},
    {"rounds", &ServiceConfig::rounds},
    {"min_clients", &ServiceConfig::min_clients},
    {"clients_per_round", &ServiceConfig::clients_per_round},
    {"over_selection", &ServiceConfig::over_selection},
    {"min_clients_reported", &ServiceConfig::min_clients_reported},
    {"round_deadline_seconds", &ServiceConfig::round_deadline_seconds},
    {"heartbeat_timeout_seconds", &ServiceConfig::heartbeat_timeout_seconds},
    {"device_silence_timeout_seconds", &ServiceConfig::device_silence_timeout_seconds},
    {"drop_warnings_per_second", &ServiceConfig::drop_warnings_per_second},
    {"local_epochs", &ServiceConfig::local_epochs},
    {"local_steps", &ServiceConfig::local_steps},
    {"batch_size", &ServiceConfig::batch_size},
    {"lr", &ServiceConfig::lr},
    {"momentum", &ServiceConfig::momentum},
    {"weight_decay", &ServiceConfig::weight_decay},
    {"proximal_mu", &ServiceConfig::proximal_mu},
    {"strategy", &ServiceConfig::strategy},
    {"server_lr", &ServiceConfig::server_lr},
    {"server_momentum", &ServiceConfig::server_momentum},
    {"beta1", &ServiceConfig::beta1},
    {"beta2", &ServiceConfig::beta2},
    {"tau", &ServiceConfig::tau},
    {"trim_fraction", &ServiceConfig::trim_fraction},
    {"dp", &ServiceConfig::dp},
    {"clip", &ServiceConfig::clip},
    {"noise_multiplier", &ServiceConfig::noise_multiplier},
    {"delta", &ServiceConfig::delta},
    {"secagg", &ServiceConfig::secagg},
    {"secagg_neighbours", &ServiceConfig::secagg_neighbours},
    {"seed", &ServiceConfig::seed},
    {"checkpoint", &ServiceConfig::checkpoint},
    {"save_weights", &ServiceConfig::save_weights},
    {"export_model", &ServiceConfig::export_model},
};

Status Check(bool ok, const std::string& what) {
  return ok ? OkStatus() : InvalidArgumentError(what);
}

Clock::Duration Seconds(double s) {
  return std::chrono::duration_cast<Clock::Duration>(std::chrono::duration<double>(s));
}

Result<EngineOptions> MakeEngineOptions(const ServiceConfig& config) {
  EDGEFL_ASSIGN_OR_RETURN(EngineOptions options, EngineOptionsFrom(config));
  options.min_clients_reported = config.min_clients_reported;
  options.round_deadline = config.round_deadline_seconds > 0
                               ? Seconds(config.round_deadline_seconds)
                               : Clock::Duration::max();
  EDGEFL_RETURN_IF_ERROR(options.Validate());
  return options;
}

// Writes `weights` through `model` so the file carries the model's tensor names and shapes.
Status ExportModel(const std::string& path, models::Model& model, std::span<const float> weights,
                   uint64_t round) {
  EDGEFL_CHECK(weights.size() == model.parameters().size());
  std::copy(weights.begin(), weights.end(), model.parameters().begin());
  EDGEFL_RETURN_IF_ERROR(models::SaveModel(path, model, {{"round", std::to_string(round)}}));
  spdlog::info("event=export_model round={} path={}", round, path);
  return OkStatus();
}

Status WriteTextFile(const std::string& path, const std::string& line, const char* key) {
  std::ofstream out(path, std::ios::trunc);
  out << line << "\n";
  if (!out) return InternalError("cannot write " + std::string(key) + " '" + path + "'");
  return OkStatus();
}

// Drops devices silent for longer than the timeout from the registry and the channels.
void ForgetSilent(transport::ZmqCoordinatorChannel& channel, KeepAliveChannel& keep_alive,
                  ClientRegistry& registry, Clock::Duration timeout) {
  for (ClientId id : channel.ExpiredClients(timeout)) {
    spdlog::info("event=device_expired client={}", id.value());
    registry.Unregister(id);
    channel.Forget(id);
    keep_alive.Forget(id);
  }
}

// How long a device may have heard nothing when a round starts. A device outside the cohort
// hears nothing until the round ends, so it must start the round with enough of its silence
// timeout left to outlast the deadline, with a margin of one pacing window; with no deadline
// (or one as long as the timeout) every device is sent a keep-alive, as the rule "the silence
// timeout must exceed the longest round" (docs/protocol.md §12) needs.
Clock::Duration SilenceBeforeRound(const ServiceConfig& config,
                                   const KeepAliveOptions& keep_alive) {
  if (config.round_deadline_seconds <= 0) return Clock::Duration::zero();
  const Clock::Duration left = Seconds(config.device_silence_timeout_seconds) -
                               Seconds(config.round_deadline_seconds) - keep_alive.spread;
  return std::clamp(left, Clock::Duration::zero(), keep_alive.interval);
}

}  // namespace

std::vector<std::string> ServiceConfigKeys() { return ConfigKeys<ServiceConfig>(kFields); }

Status ServiceConfig::Validate() const {
  EDGEFL_RETURN_IF_ERROR(Check(!endpoint.empty(), "endpoint must not be empty"));
  EDGEFL_RETURN_IF_ERROR(Check(insecure_plaintext || (!secret_key_file.empty() &&
                                                      !allowed_keys_path.empty()),
                               "secret_key_file and allowed_keys_path are required unless "
                               "insecure_plaintext = true"));
  EDGEFL_RETURN_IF_ERROR(Check(rounds >= 1, "rounds must be >= 1"));
  EDGEFL_RETURN_IF_ERROR(Check(min_clients >= 1, "min_clients must be >= 1"));
  EDGEFL_RETURN_IF_ERROR(Check(clients_per_round >= 1 && clients_per_round <= min_clients,
                               "clients_per_round must be in [1, min_clients]"));
  EDGEFL_RETURN_IF_ERROR(Check(round_deadline_seconds >= 0, "round_deadline_seconds must be >= 0"));
  EDGEFL_RETURN_IF_ERROR(
      Check(heartbeat_timeout_seconds > 0, "heartbeat_timeout_seconds must be > 0"));
  EDGEFL_RETURN_IF_ERROR(
      Check(device_silence_timeout_seconds >= 0.001 && device_silence_timeout_seconds <= 1e6,
            "device_silence_timeout_seconds must be in [0.001, 1000000]"));
  EDGEFL_RETURN_IF_ERROR(Check(drop_warnings_per_second >= 1 && drop_warnings_per_second <= 1'000'000,
                               "drop_warnings_per_second must be in [1, 1000000]"));
  EDGEFL_RETURN_IF_ERROR(Check(dp == "none" || dp == "central" || dp == "distributed",
                               "dp must be one of none, central, distributed; got '" + dp + "'"));
  EDGEFL_RETURN_IF_ERROR(CheckStrategySettings(*this));
  if (!metrics_address.empty()) EDGEFL_RETURN_IF_ERROR(ParseHostPort(metrics_address).status());
  return MakeEngineOptions(*this).status();
}

Result<ServiceConfig> LoadServiceConfig(const std::filesystem::path& path, ServiceConfig base) {
  return LoadTomlConfig(path, kFields, std::move(base));
}

std::string FormatServiceConfig(const ServiceConfig& config) {
  return FormatTomlConfig(kFields, config);
}

Status SaveRawWeights(const std::filesystem::path& path, const std::vector<float>& weights) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(weights.data()),
            static_cast<std::streamsize>(weights.size() * sizeof(float)));
  if (!out) return InternalError("cannot write weights to '" + path.string() + "'");
  return OkStatus();
}

Status RunService(const ServiceConfig& config, const std::atomic<bool>& stop,
                  const ServiceHooks& hooks) {
  EDGEFL_RETURN_IF_ERROR(config.Validate());
  EDGEFL_ASSIGN_OR_RETURN(EngineOptions engine_options, MakeEngineOptions(config));

  EDGEFL_ASSIGN_OR_RETURN(std::unique_ptr<models::Model> model,
                          models::CreateModel(models::ModelSpec{.name = config.model,
                                                                .input_size = config.input_size,
                                                                .num_classes = config.num_classes}));
  model->InitializeParameters(config.seed);
  std::vector<float> initial(model->parameters().begin(), model->parameters().end());
  EDGEFL_ASSIGN_OR_RETURN(
      std::unique_ptr<aggregation::Strategy> strategy,
      aggregation::CreateStrategy(StrategyOptionsFrom(config), initial.size()));

  WallClock clock;
  EDGEFL_ASSIGN_OR_RETURN(
      std::unique_ptr<transport::ZmqCoordinatorChannel> channel,
      transport::ZmqCoordinatorChannel::Create(
          transport::ZmqCoordinatorOptions{.endpoint = config.endpoint,
                                           .insecure_plaintext = config.insecure_plaintext,
                                           .secret_key_file = config.secret_key_file,
                                           .allowed_keys_path = config.allowed_keys_path,
                                           .max_drop_warnings_per_second = static_cast<uint32_t>(
                                               config.drop_warnings_per_second)},
          clock));
  spdlog::info("event=listening endpoint={}", channel->endpoint());
  if (hooks.on_listening) hooks.on_listening(channel->endpoint());
  if (!config.endpoint_file.empty()) {
    std::ofstream out(config.endpoint_file, std::ios::trunc);
    out << channel->endpoint() << "\n";
    if (!out) return InternalError("cannot write endpoint_file '" + config.endpoint_file + "'");
  }

  // Every message to a device goes through `tracked`, which knows when each was last sent
  // anything, so keep-alives go only to devices that have heard nothing lately (keep_alive.h).
  KeepAliveChannel tracked(*channel, KeepAliveOptions::ForSilenceTimeout(
                                         Seconds(config.device_silence_timeout_seconds)));
  const Clock::Duration silence_before_round = SilenceBeforeRound(config, tracked.options());
  spdlog::info(
      "event=keep_alive device_silence_timeout_s={} interval_s={:.3f} spread_s={:.3f} "
      "before_round_s={:.3f}",
      config.device_silence_timeout_seconds, ToSeconds(tracked.options().interval),
      ToSeconds(tracked.options().spread), ToSeconds(silence_before_round));
  ClientRegistry registry;
  RoundEngine engine(engine_options, std::move(initial), std::move(strategy), tracked, registry);
  if (!config.checkpoint.empty()) {
    Result<Checkpoint> checkpoint = LoadCheckpoint(config.checkpoint);
    if (checkpoint.ok()) {
      const uint32_t format = checkpoint->format;
      const Status resumed = ResumeFromCheckpoint(engine, std::move(*checkpoint));
      if (!resumed.ok()) {
        return Status(resumed.code(),
                      fmt::format("cannot resume from checkpoint '{}' (format {}): {}",
                                  config.checkpoint, format, resumed.message()));
      }
      spdlog::info(
          "event=resumed checkpoint={} format={} last_round={} dp_rounds={} epsilon={:.4f}",
          config.checkpoint, format, engine.last_round().value(),
          engine.accountant_state().num_steps, engine.privacy_spent().epsilon);
    } else if (checkpoint.status().code() != StatusCode::kNotFound) {
      return checkpoint.status();
    }
  }

  // Declared after the channel, so the server (whose refresh reads the channel) stops first.
  MetricsRegistry metrics;
  ServiceMetrics published;
  std::unique_ptr<MetricsServer> metrics_server;
  if (!config.metrics_address.empty()) {
    metrics.SetRefresh([&channel](ServiceMetrics& m) {
      const transport::ZmqCoordinatorStats stats = channel->stats();
      m.bytes_received = stats.num_bytes_received;
      m.bytes_sent = stats.num_bytes_sent;
      m.messages_received = stats.num_messages_received;
      m.frames_dropped = stats.num_frames_dropped;
      m.handshakes_admitted = stats.num_handshakes_admitted;
      m.handshakes_refused = stats.num_handshakes_refused;
    });
    EDGEFL_ASSIGN_OR_RETURN(metrics_server, MetricsServer::Start(config.metrics_address, metrics));
    spdlog::info("event=metrics address={} path=/metrics", metrics_server->address());
    if (!config.metrics_address_file.empty()) {
      EDGEFL_RETURN_IF_ERROR(WriteTextFile(config.metrics_address_file, metrics_server->address(),
                                           "metrics_address_file"));
    }
  }
  auto publish_metrics = [&](uint64_t current_round) {
    if (!metrics_server) return;
    published.current_round = current_round;
    published.devices_connected = channel->num_clients();
    published.devices_registered = registry.size();
    metrics.Publish(published);
  };
  // Epsilon is cumulative over the model's life: after a resume it starts at what the
  // checkpoint's rounds spent, not at 0, before this process has run a round.
  published.epsilon = engine.privacy_spent().epsilon;
  publish_metrics(engine.last_round().value());
  std::optional<uint64_t> exported_round;

  const Clock::Duration heartbeat_timeout = Seconds(config.heartbeat_timeout_seconds);
  auto send_goodbyes = [&] {
    for (ClientId id : registry.Available()) {
      (void)tracked.Send(id, transport::Message{.sender = ClientId{0},
                                                .round = RoundId{0},
                                                .body = transport::Goodbye{}});
    }
  };
  // Asked to stop (a signal, or the simulator whose worker died) after `last_round`.
  auto stop_early = [&](uint64_t last_round) {
    spdlog::info("event=stopping reason=signal last_round={}", last_round);
    send_goodbyes();
    return OkStatus();
  };
  while (engine.last_round().value() < config.rounds) {
    // Registration: wait (without busy spinning) until enough devices are connected.
    while (!stop.load()) {
      engine.AcceptRegistrations();
      ForgetSilent(*channel, tracked, registry, heartbeat_timeout);
      if (registry.size() >= config.min_clients) break;
      publish_metrics(engine.last_round().value());
      tracked.SendKeepAlives(registry.Available(), engine.last_round());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (stop.load()) return stop_early(engine.last_round().value());
    tracked.SendKeepAlivesOlderThan(registry.Available(), engine.last_round(),
                                    silence_before_round);
    publish_metrics(engine.last_round().value() + 1);
    const auto started = std::chrono::steady_clock::now();
    // With no deadline a round waits for every member: `stop` must be able to end it.
    EDGEFL_ASSIGN_OR_RETURN(RoundReport report, engine.RunRound(&stop));
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (report.status.code() == StatusCode::kCancelled) {
      // Nothing of the round is kept (no checkpoint, export or on_round; the weights are as the
      // round before left them), so a restart from the checkpoint runs this round again.
      spdlog::info("event=round_cancelled round={} selected={} reported={} seconds={:.3f} "
                   "status=\"{}\"",
                   report.round.value(), report.num_clients_selected,
                   report.num_clients_reported, seconds, report.status.ToString());
      return stop_early(report.round.value() - 1);
    }
    spdlog::info(
        "event=round round={} applied={} selected={} reported={} dropped={} rejected={} "
        "train_loss={:.6f} epsilon={:.4f} seconds={:.3f} connected={} status=\"{}\"",
        report.round.value(), report.status.ok(), report.num_clients_selected,
        report.num_clients_reported, report.num_clients_dropped, report.num_clients_rejected,
        report.train_loss, report.epsilon, seconds, channel->num_clients(),
        report.status.ok() ? "" : report.status.ToString());
    for (const ClientOutcome& outcome : report.outcomes) {
      if (outcome.kind != ClientOutcomeKind::kReported) {
        spdlog::info("event=client_outcome round={} client={} outcome={} reason=\"{}\"",
                     report.round.value(), outcome.client.value(),
                     ClientOutcomeName(outcome.kind), outcome.reason);
      }
    }
    if (!config.checkpoint.empty()) {
      EDGEFL_RETURN_IF_ERROR(SaveCheckpoint(config.checkpoint, MakeCheckpoint(engine)));
      spdlog::info("event=checkpoint round={} path={}", engine.last_round().value(),
                   config.checkpoint);
    }
    if (!config.export_model.empty()) {
      EDGEFL_RETURN_IF_ERROR(ExportModel(config.export_model, *model, engine.global_weights(),
                                         engine.last_round().value()));
      exported_round = engine.last_round().value();
    }
    ++published.rounds_completed;
    if (!report.status.ok()) ++published.rounds_failed;
    published.clients_selected += report.num_clients_selected;
    published.updates_accepted += report.num_clients_reported;
    published.updates_rejected += report.num_clients_rejected;
    published.clients_dropped += report.num_clients_dropped;
    published.last_round_seconds = seconds;
    published.train_loss = report.train_loss;
    published.epsilon = report.epsilon;
    metrics.ObserveRoundSeconds(seconds);
    publish_metrics(engine.last_round().value());
    if (hooks.on_round) hooks.on_round(report, engine.global_weights());
    ForgetSilent(*channel, tracked, registry, heartbeat_timeout);
    if (stop.load()) break;
  }
  if (!config.save_weights.empty()) {
    EDGEFL_RETURN_IF_ERROR(SaveRawWeights(
        config.save_weights, {engine.global_weights().begin(), engine.global_weights().end()}));
  }
  if (!config.export_model.empty() && exported_round != engine.last_round().value()) {
    EDGEFL_RETURN_IF_ERROR(ExportModel(config.export_model, *model, engine.global_weights(),
                                       engine.last_round().value()));
  }
  spdlog::info("event=done last_round={}", engine.last_round().value());
  send_goodbyes();
  return OkStatus();
}

}  // namespace edgefl::coordinator

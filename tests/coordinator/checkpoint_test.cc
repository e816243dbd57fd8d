// Checkpoints: the file format (the current one pinned byte for byte, the older ones still
// read), and resuming a round engine from one so that rounds and privacy accounting continue as
// if the coordinator had never stopped.
#include "edgefl/coordinator/checkpoint.h"

#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/loopback_service.h"
#include "edgefl/aggregation/strategy.h"
#include "edgefl/coordinator/round_engine.h"
#include "edgefl/privacy/accountant.h"
#include "edgefl/transport/in_process_channel.h"

namespace edgefl::coordinator {
namespace {

using testing::TempDir;
using transport::Message;

std::string ReadBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteBytes(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

std::string Hex(const std::string& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 15]);
  }
  return hex;
}

// Checkpoints in the formats before the current one, written here field by field from
// docs/protocol.md (section "Checkpoint") rather than by the code under test.
class OldCheckpoint {
 public:
  explicit OldCheckpoint(char format) : bytes_("EFLCKPT") { bytes_.push_back(format); }
  OldCheckpoint& U64(uint64_t value) {
    bytes_.append(reinterpret_cast<const char*>(&value), sizeof(value));
    return *this;
  }
  template <typename T>
  OldCheckpoint& Values(const std::vector<T>& values) {
    U64(values.size());
    bytes_.append(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
    return *this;
  }
  // The bytes with their FNV-1a (64-bit) checksum appended.
  std::string Finish() const {
    uint64_t hash = 1469598103934665603ULL;
    for (unsigned char c : bytes_) hash = (hash ^ c) * 1099511628211ULL;
    std::string bytes = bytes_;
    bytes.append(reinterpret_cast<const char*>(&hash), sizeof(hash));
    return bytes;
  }

 private:
  std::string bytes_;
};

TEST_CASE("a checkpoint reads back exactly what was saved") {
  const auto dir = TempDir("ckpt");
  const Checkpoint saved{.round = 7,
                         .weights = {1.5f, -2.0f, 3.25f},
                         .strategy_state = {0.5f},
                         .accountant = {.orders = {1.5, 2.0}, .rdp = {0.25, 1.5}, .num_steps = 7}};
  REQUIRE(SaveCheckpoint(dir / "c.bin", saved).ok());
  Result<Checkpoint> loaded = LoadCheckpoint(dir / "c.bin");
  REQUIRE(loaded.ok());
  CHECK(loaded->format == kCheckpointFormat);
  CHECK(loaded->round == 7);
  CHECK(loaded->weights == saved.weights);
  CHECK(loaded->strategy_state == saved.strategy_state);
  CHECK(loaded->accountant.orders == saved.accountant.orders);
  CHECK(loaded->accountant.rdp == saved.accountant.rdp);
  CHECK(loaded->accountant.num_steps == 7);
  CHECK_FALSE(std::filesystem::exists(dir / "c.bin.tmp"));
  std::filesystem::remove_all(dir);
}

TEST_CASE("format 3 is pinned byte for byte") {
  const auto dir = TempDir("ckpt_golden");
  REQUIRE(
      SaveCheckpoint(dir / "c.bin", {.round = 2,
                                     .weights = {1.0f},
                                     .accountant = {.orders = {2.0}, .rdp = {0.5}, .num_steps = 1}})
          .ok());
  // "EFLCKPT3", round 2, 1 weight 1.0f, 0 strategy values, 1 step, 1 RDP value 0.5, 1 order
  // 2.0, FNV-1a of the 76 bytes before it (computed independently in Python).
  CHECK(Hex(ReadBytes(dir / "c.bin")) ==
        "45464c434b505433"
        "0200000000000000"
        "0100000000000000"
        "0000803f"
        "0000000000000000"
        "0100000000000000"
        "0100000000000000"
        "000000000000e03f"
        "0100000000000000"
        "0000000000000040"
        "614691d538222bbd");
  std::filesystem::remove_all(dir);
}

TEST_CASE("a missing, truncated, corrupted, unknown or inconsistent checkpoint is not loaded") {
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

  // A format from a newer edgefl is named in the error.
  WriteBytes(dir / "future.bin", OldCheckpoint('9').U64(1).Values(std::vector<float>{1}).Finish());
  const Status future = LoadCheckpoint(dir / "future.bin").status();
  CHECK(future.code() == StatusCode::kDataLoss);
  CHECK(future.message().find("format '9'") != std::string::npos);

  // As many orders as RDP values, or nothing is written and nothing is read.
  CHECK(SaveCheckpoint(dir / "e.bin", {.round = 1, .accountant = {.rdp = {0.5}, .num_steps = 1}})
            .code() == StatusCode::kInvalidArgument);
  CHECK_FALSE(std::filesystem::exists(dir / "e.bin"));
  WriteBytes(dir / "f.bin", OldCheckpoint('3')
                                .U64(1)
                                .Values(std::vector<float>{1})
                                .Values(std::vector<float>{})
                                .U64(1)
                                .Values(std::vector<double>{0.5, 0.7})
                                .Values(std::vector<double>{2.0})
                                .Finish());
  CHECK(LoadCheckpoint(dir / "f.bin").status().code() == StatusCode::kDataLoss);
  std::filesystem::remove_all(dir);
}

TEST_CASE("checkpoints of formats 1 and 2 still load") {
  const auto dir = TempDir("ckpt_old");
  const std::vector<float> weights = {1.0f, -2.0f};
  const std::vector<float> strategy_state = {0.25f};

  // Format 1 predates privacy accounting: no accountant, whatever its rounds ran with.
  WriteBytes(dir / "v1.bin",
             OldCheckpoint('1').U64(4).Values(weights).Values(strategy_state).Finish());
  Result<Checkpoint> v1 = LoadCheckpoint(dir / "v1.bin");
  REQUIRE_MESSAGE(v1.ok(), v1.status().ToString());
  CHECK(v1->format == 1);
  CHECK(v1->round == 4);
  CHECK(v1->weights == weights);
  CHECK(v1->strategy_state == strategy_state);
  CHECK(v1->accountant.orders.empty());
  CHECK(v1->accountant.rdp.empty());
  CHECK(v1->accountant.num_steps == 0);

  // Format 2 holds the RDP on DefaultRdpOrders(), without the orders; empty without DP.
  const std::vector<double> orders = privacy::DefaultRdpOrders();
  REQUIRE(orders.size() == 151);
  std::vector<double> rdp(orders.size());
  for (size_t k = 0; k < rdp.size(); ++k) rdp[k] = 0.01 * static_cast<double>(k);
  WriteBytes(
      dir / "v2.bin",
      OldCheckpoint('2').U64(5).Values(weights).Values(strategy_state).U64(5).Values(rdp).Finish());
  Result<Checkpoint> v2 = LoadCheckpoint(dir / "v2.bin");
  REQUIRE_MESSAGE(v2.ok(), v2.status().ToString());
  CHECK(v2->format == 2);
  CHECK(v2->round == 5);
  CHECK(v2->weights == weights);
  CHECK(v2->accountant.orders == orders);
  CHECK(v2->accountant.rdp == rdp);
  CHECK(v2->accountant.num_steps == 5);

  WriteBytes(dir / "v2_no_dp.bin", OldCheckpoint('2')
                                       .U64(5)
                                       .Values(weights)
                                       .Values(strategy_state)
                                       .U64(0)
                                       .Values(std::vector<double>{})
                                       .Finish());
  Result<Checkpoint> v2_no_dp = LoadCheckpoint(dir / "v2_no_dp.bin");
  REQUIRE(v2_no_dp.ok());
  CHECK(v2_no_dp->accountant.orders.empty());

  WriteBytes(dir / "v2_bad.bin", OldCheckpoint('2')
                                     .U64(5)
                                     .Values(weights)
                                     .Values(strategy_state)
                                     .U64(5)
                                     .Values(std::vector<double>{0.5, 0.6})
                                     .Finish());
  CHECK(LoadCheckpoint(dir / "v2_bad.bin").status().code() == StatusCode::kDataLoss);
  std::filesystem::remove_all(dir);
}

// Devices that answer every RoundStart at once with an update of their own (client i sends
// i / 4 in every coordinate), enough for the engine's DP path: clip, seeded central noise,
// accounting.
constexpr size_t kNumParameters = 4;

struct FixedUpdateDevices {
  VirtualClock clock;
  transport::InProcessChannel channel{clock, [this] { return Answer(); }};

  explicit FixedUpdateDevices(size_t num_devices) {
    for (uint64_t id = 1; id <= num_devices; ++id) {
      channel.Deliver(Message{.sender = ClientId{id}, .body = transport::Hello{"d", 10}},
                      Clock::Duration(0));
    }
  }

  bool Answer() {
    auto outgoing = channel.TakeOutgoing();
    for (auto& sent : outgoing) {
      if (!std::holds_alternative<transport::RoundStart>(sent.message.body)) continue;
      const float value = static_cast<float>(sent.to.value()) / 4.0f;
      channel.Deliver(
          Message{.sender = sent.to,
                  .round = sent.message.round,
                  .body = transport::Update{.num_examples = 10,
                                            .train_loss = 1.0f,
                                            .delta = std::vector<float>(kNumParameters, value)}},
          sent.sent_at + std::chrono::seconds(1));
    }
    return !outgoing.empty();
  }
};

// Five devices, two per round (sampling rate 0.4), central DP with FedAdam so that the server
// optimizer's state matters to the resumed rounds too.
struct DpCoordinator {
  FixedUpdateDevices devices{5};
  ClientRegistry registry;
  RoundEngine engine;

  explicit DpCoordinator(DpMode dp, double noise_multiplier = 1.1)
      : engine(
            EngineOptions{
                .clients_per_round = 2,
                .seed = 9,
                .privacy = {.dp = dp, .clip_norm = 1.0, .noise_multiplier = noise_multiplier}},
            std::vector<float>(kNumParameters, 0.0f),
            aggregation::CreateStrategy({.name = "fedadam"}, kNumParameters).value(),
            devices.channel, registry) {}

  RoundReport Run(size_t rounds) {
    RoundReport report;
    for (size_t i = 0; i < rounds; ++i) {
      report = engine.RunRound().value();
      REQUIRE_MESSAGE(report.status.ok(), report.status.ToString());
    }
    return report;
  }
};

std::vector<float> Weights(const RoundEngine& engine) {
  return {engine.global_weights().begin(), engine.global_weights().end()};
}

TEST_CASE(
    "an engine resumed from a checkpoint reports the epsilon of all rounds, as if never "
    "stopped") {
  constexpr size_t kRoundsBefore = 3;
  constexpr size_t kRoundsAfter = 2;
  DpCoordinator uninterrupted(DpMode::kCentral);
  const RoundReport last = uninterrupted.Run(kRoundsBefore + kRoundsAfter);

  const auto dir = TempDir("ckpt_resume");
  DpCoordinator before(DpMode::kCentral);
  const double epsilon_before = before.Run(kRoundsBefore).epsilon;
  REQUIRE(SaveCheckpoint(dir / "c.bin", MakeCheckpoint(before.engine)).ok());

  DpCoordinator after(DpMode::kCentral);
  Result<Checkpoint> checkpoint = LoadCheckpoint(dir / "c.bin");
  REQUIRE(checkpoint.ok());
  REQUIRE(ResumeFromCheckpoint(after.engine, std::move(*checkpoint)).ok());
  CHECK(after.engine.last_round() == RoundId{kRoundsBefore});
  CHECK(after.engine.privacy_spent().epsilon == epsilon_before);
  const RoundReport resumed = after.Run(kRoundsAfter);

  CHECK(resumed.round == last.round);
  CHECK(resumed.epsilon == last.epsilon);
  CHECK(resumed.best_rdp_order == last.best_rdp_order);
  CHECK(after.engine.accountant_state().num_steps == kRoundsBefore + kRoundsAfter);
  CHECK(after.engine.accountant_state().rdp == uninterrupted.engine.accountant_state().rdp);
  // Seeded selection and noise per round, and FedAdam's moments from the checkpoint: the model
  // is the same too.
  CHECK(Weights(after.engine) == Weights(uninterrupted.engine));

  // The epsilon of the rounds since the restart alone, which a restart from zero would report.
  DpCoordinator fresh(DpMode::kCentral);
  CHECK(resumed.epsilon > fresh.Run(kRoundsAfter).epsilon);
  std::filesystem::remove_all(dir);
}

TEST_CASE("rounds resumed with another noise multiplier are accounted at each one's own") {
  DpCoordinator before(DpMode::kCentral, 1.1);
  before.Run(3);
  DpCoordinator after(DpMode::kCentral, 2.0);
  REQUIRE(ResumeFromCheckpoint(after.engine, MakeCheckpoint(before.engine)).ok());
  const double epsilon = after.Run(2).epsilon;

  privacy::RdpAccountant expected;
  REQUIRE(expected.AddSteps(0.4, 1.1, 1, privacy::Sampling::kFixedSize).ok());
  REQUIRE(expected.AddSteps(0.4, 1.1, 1, privacy::Sampling::kFixedSize).ok());
  REQUIRE(expected.AddSteps(0.4, 1.1, 1, privacy::Sampling::kFixedSize).ok());
  REQUIRE(expected.AddSteps(0.4, 2.0, 1, privacy::Sampling::kFixedSize).ok());
  REQUIRE(expected.AddSteps(0.4, 2.0, 1, privacy::Sampling::kFixedSize).ok());
  CHECK(epsilon == expected.GetPrivacySpent(1e-5).value().epsilon);
}

TEST_CASE("a checkpoint whose DP rounds do not fit the engine's DP setting is refused") {
  DpCoordinator dp_run(DpMode::kCentral);
  dp_run.Run(2);
  DpCoordinator plain_run(DpMode::kNone);
  plain_run.Run(2);

  // DP rounds resumed without DP: their accounting would stop.
  DpCoordinator no_dp(DpMode::kNone);
  const Status stop = ResumeFromCheckpoint(no_dp.engine, MakeCheckpoint(dp_run.engine));
  CHECK(stop.code() == StatusCode::kFailedPrecondition);
  CHECK(stop.message().find("2 DP rounds") != std::string::npos);

  // Rounds without accounting resumed with DP: epsilon would leave them out.
  DpCoordinator dp(DpMode::kCentral);
  const Status unknown = ResumeFromCheckpoint(dp.engine, MakeCheckpoint(plain_run.engine));
  CHECK(unknown.code() == StatusCode::kFailedPrecondition);
  CHECK(unknown.message().find("no privacy accounting") != std::string::npos);
  CHECK(dp.engine.privacy_spent().epsilon == 0.0);

  // Same for a format-1 checkpoint with DP on; without DP it resumes.
  const auto dir = TempDir("ckpt_refused");
  WriteBytes(dir / "v1.bin", OldCheckpoint('1')
                                 .U64(2)
                                 .Values(Weights(plain_run.engine))
                                 .Values(plain_run.engine.strategy().SaveState())
                                 .Finish());
  DpCoordinator dp_from_v1(DpMode::kCentral);
  CHECK(ResumeFromCheckpoint(dp_from_v1.engine, LoadCheckpoint(dir / "v1.bin").value()).code() ==
        StatusCode::kFailedPrecondition);
  DpCoordinator plain_from_v1(DpMode::kNone);
  REQUIRE(ResumeFromCheckpoint(plain_from_v1.engine, LoadCheckpoint(dir / "v1.bin").value()).ok());
  CHECK(plain_from_v1.engine.last_round() == RoundId{2});
  CHECK(Weights(plain_from_v1.engine) == Weights(plain_run.engine));

  // Matching settings resume; so does a DP engine from a checkpoint of no rounds yet.
  DpCoordinator dp_again(DpMode::kCentral);
  CHECK(ResumeFromCheckpoint(dp_again.engine, MakeCheckpoint(dp_run.engine)).ok());
  DpCoordinator plain_again(DpMode::kNone);
  CHECK(ResumeFromCheckpoint(plain_again.engine, MakeCheckpoint(plain_run.engine)).ok());
  DpCoordinator unstarted(DpMode::kNone);
  DpCoordinator dp_from_unstarted(DpMode::kCentral);
  CHECK(ResumeFromCheckpoint(dp_from_unstarted.engine, MakeCheckpoint(unstarted.engine)).ok());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace edgefl::coordinator

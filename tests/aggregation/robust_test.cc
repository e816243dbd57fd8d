#include "edgefl/aggregation/robust.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "edgefl/common/random.h"
#include "edgefl/models/threading.h"

namespace edgefl::aggregation {
namespace {

std::unique_ptr<Strategy> Make(StrategyOptions options, size_t num_parameters = 3) {
  Result<std::unique_ptr<Strategy>> strategy = CreateStrategy(options, num_parameters);
  REQUIRE_MESSAGE(strategy.ok(), strategy.status().ToString());
  return std::move(strategy).value();
}

// Feeds `deltas` (client k sends deltas[k] with num_examples[k]) and finishes the round on
// `global`.
void RunRound(Strategy& strategy, const std::vector<std::vector<float>>& deltas,
              const std::vector<uint64_t>& num_examples, std::vector<float>& global) {
  for (size_t k = 0; k < deltas.size(); ++k) {
    REQUIRE(strategy
                .Accumulate({.client = ClientId(k + 1), .delta = deltas[k],
                             .num_examples = num_examples[k]})
                .ok());
  }
  CHECK(strategy.num_clients_accumulated() == deltas.size());
  REQUIRE(strategy.Finish(global).ok());
  CHECK(strategy.num_clients_accumulated() == 0);
}

// Example counts from 1 to a million, for up to 12 clients: the robust strategies ignore them.
const std::vector<uint64_t> kSkewedCounts = {1, 1'000'000, 7, 300, 2, 50, 9, 4, 80, 3, 6, 20};

// Values chosen so that every median and trimmed mean below is exact in float.
const std::vector<std::vector<float>> kFive = {{1.0f, -8.0f, 0.5f},
                                               {100.0f, 3.0f, 0.5f},
                                               {3.0f, 0.0f, 0.5f},
                                               {2.0f, 2.0f, 0.5f},
                                               {4.0f, 1.0f, 0.5f}};

// The definition Finish must meet bit for bit: sort each coordinate's K values, drop `trimmed`
// at each end, sum the rest in double in ascending order, divide, round once to float.
std::vector<float> SortedTrimmedMean(const std::vector<std::vector<float>>& deltas,
                                     size_t trimmed) {
  const size_t num_parameters = deltas.front().size();
  std::vector<float> out(num_parameters);
  std::vector<float> column(deltas.size());
  for (size_t i = 0; i < num_parameters; ++i) {
    for (size_t k = 0; k < deltas.size(); ++k) column[k] = deltas[k][i];
    std::sort(column.begin(), column.end());
    double sum = 0.0;
    for (size_t k = trimmed; k < column.size() - trimmed; ++k) sum += column[k];
    out[i] = static_cast<float>(sum / static_cast<double>(column.size() - 2 * trimmed));
  }
  return out;
}

TEST_CASE("FedMedian takes each coordinate's middle value, or the mean of the middle two") {
  SUBCASE("odd count") {
    const std::vector<std::vector<float>> deltas = {
        {1.0f, 10.0f, -4.0f}, {3.0f, -2.0f, 0.0f}, {2.0f, 5.0f, 100.0f}};
    std::vector<float> global = {1.0f, 2.0f, -3.0f};
    RunRound(*Make({.name = "fedmedian"}), deltas, kSkewedCounts, global);
    CHECK(global == std::vector<float>{3.0f, 7.0f, -3.0f});  // + median {2, 5, 0}
  }
  SUBCASE("even count") {
    const std::vector<std::vector<float>> deltas = {
        {1.0f, 10.0f, -4.0f}, {3.0f, -2.0f, 0.0f}, {2.0f, 5.0f, 100.0f}, {8.0f, 0.5f, -1.0f}};
    std::vector<float> global = {0.0f, 0.0f, 0.0f};
    RunRound(*Make({.name = "fedmedian"}), deltas, kSkewedCounts, global);
    // Sorted: {1, 2 | 3, 8}, {-2, 0.5 | 5, 10}, {-4, -1 | 0, 100}.
    CHECK(global == std::vector<float>{2.5f, 2.75f, -0.5f});
  }
  SUBCASE("five, with the server learning rate") {
    std::vector<float> global = {1.0f, 1.0f, 1.0f};
    RunRound(*Make({.name = "fedmedian", .server_learning_rate = 0.5f}), kFive, kSkewedCounts,
             global);
    CHECK(global == std::vector<float>{2.5f, 1.5f, 1.25f});  // + 0.5 x {3, 1, 0.5}
  }
  SUBCASE("a single update is its own median") {
    std::vector<float> global = {0.0f, 0.0f, 0.0f};
    RunRound(*Make({.name = "fedmedian"}), {kFive[1]}, kSkewedCounts, global);
    CHECK(global == kFive[1]);
  }
}

TEST_CASE("A round after a larger or discarded one aggregates only its own updates") {
  for (const std::string name : {"fedmedian", "fedtrimmedavg"}) {
    CAPTURE(name);
    std::unique_ptr<Strategy> strategy = Make({.name = name});
    std::vector<float> global = {0.0f, 0.0f, 0.0f};
    RunRound(*strategy, kFive, kSkewedCounts, global);
    CHECK(global == std::vector<float>{3.0f, 1.0f, 0.5f});  // median = 0.2-trimmed mean here

    // The next round reuses the first round's buffers for fewer updates.
    global = {0.0f, 0.0f, 0.0f};
    const std::vector<std::vector<float>> three = {
        {10.0f, 10.0f, 10.0f}, {30.0f, 30.0f, 30.0f}, {20.0f, 20.0f, 20.0f}};
    RunRound(*strategy, three, kSkewedCounts, global);
    CHECK(global == std::vector<float>{20.0f, 20.0f, 20.0f});  // median = mean (0.2 x 3 trims 0)

    REQUIRE(strategy->Accumulate({.client = ClientId(9), .delta = kFive[1], .num_examples = 1})
                .ok());
    strategy->DiscardRound();
    CHECK(strategy->num_clients_accumulated() == 0);
    global = {0.0f, 0.0f, 0.0f};
    RunRound(*strategy, {kFive[3]}, kSkewedCounts, global);
    CHECK(global == kFive[3]);
  }
}

TEST_CASE("NumTrimmedPerSide is floor(trim_fraction x K), at the decimal boundaries too") {
  CHECK(NumTrimmedPerSide(0.2, 5) == 1);
  CHECK(NumTrimmedPerSide(0.2, 4) == 0);
  CHECK(NumTrimmedPerSide(0.19, 5) == 0);
  CHECK(NumTrimmedPerSide(0.2, 10) == 2);
  CHECK(NumTrimmedPerSide(0.3, 10) == 3);
  CHECK(NumTrimmedPerSide(0.29, 100) == 29);  // 0.29 * 100 is 28.999999999999996 in double
  CHECK(NumTrimmedPerSide(0.0, 7) == 0);
  CHECK(NumTrimmedPerSide(0.49, 2) == 0);
  CHECK(NumTrimmedPerSide(0.4999999999999, 2) == 0);  // at least one update is always kept
  CHECK(NumTrimmedPerSide(0.4999999999999, 3) == 1);
  CHECK(NumTrimmedPerSide(0.2, 1) == 0);
  CHECK(NumTrimmedPerSide(0.2, 0) == 0);
}

TEST_CASE("FedTrimmedAvg drops floor(trim_fraction x K) values at each end of every coordinate") {
  const std::vector<std::vector<float>> eight = {{1.0f}, {-50.0f}, {2.0f}, {3.0f},
                                                 {60.0f}, {4.0f},   {-7.0f}, {70.0f}};
  struct Case {
    double trim_fraction;
    const std::vector<std::vector<float>>& deltas;
    std::vector<float> expected;
  };
  const std::vector<Case> cases = {
      // One dropped at each end; kept {2, 3, 4}, {0, 1, 2}, {0.5, 0.5, 0.5}.
      {0.2, kFive, {3.0f, 1.0f, 0.5f}},
      // 0.19 x 5 drops nothing: the unweighted mean.
      {0.19, kFive, {22.0f, static_cast<float>(-2.0 / 5.0), 0.5f}},
      // Two dropped at each end: the median.
      {0.4, kFive, {3.0f, 1.0f, 0.5f}},
      // 0.25 x 8: two dropped at each end, the mean of {1, 2, 3, 4}.
      {0.25, eight, {2.5f}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.trim_fraction);
    CAPTURE(c.deltas.size());
    std::unique_ptr<Strategy> strategy =
        Make({.name = "fedtrimmedavg", .trim_fraction = c.trim_fraction}, c.expected.size());
    std::vector<float> global(c.expected.size(), 0.0f);
    RunRound(*strategy, c.deltas, kSkewedCounts, global);
    CHECK(global == c.expected);
  }
}

TEST_CASE("One attacker with huge finite values moves FedAvg but not the median or trimmed mean") {
  constexpr size_t kNumParameters = 64;
  constexpr size_t kNumHonest = 9;
  Rng rng(11);
  std::vector<std::vector<float>> deltas(kNumHonest, std::vector<float>(kNumParameters));
  std::vector<float> honest_min(kNumParameters, std::numeric_limits<float>::max());
  std::vector<float> honest_max(kNumParameters, std::numeric_limits<float>::lowest());
  for (std::vector<float>& delta : deltas) {
    for (size_t i = 0; i < kNumParameters; ++i) {
      delta[i] = static_cast<float>(2.0 * rng.Uniform01() - 1.0);
      honest_min[i] = std::min(honest_min[i], delta[i]);
      honest_max[i] = std::max(honest_max[i], delta[i]);
    }
  }
  // The attacker pushes every coordinate away, alternating sign, and claims a huge count.
  std::vector<float> attack(kNumParameters);
  for (size_t i = 0; i < kNumParameters; ++i) attack[i] = i % 2 == 0 ? 1e30f : -1e30f;
  deltas.push_back(attack);
  std::vector<uint64_t> num_examples(kNumHonest, 600);
  num_examples.push_back(1'000'000'000);

  std::vector<float> fedavg(kNumParameters, 0.0f);
  RunRound(*Make({.name = "fedavg"}, kNumParameters), deltas, num_examples, fedavg);
  CHECK(std::abs(fedavg[0]) > 1e29f);

  // K = 10: the median tolerates 4 attackers, the 0.2-trimmed mean 2; one is tested here.
  for (const StrategyOptions& options :
       {StrategyOptions{.name = "fedmedian"},
        StrategyOptions{.name = "fedtrimmedavg", .trim_fraction = 0.2},
        StrategyOptions{.name = "fedtrimmedavg", .trim_fraction = 0.1}}) {
    CAPTURE(options.name);
    CAPTURE(options.trim_fraction);
    std::vector<float> global(kNumParameters, 0.0f);
    RunRound(*Make(options, kNumParameters), deltas, num_examples, global);
    for (size_t i = 0; i < kNumParameters; ++i) {
      INFO("index " << i);
      CHECK(global[i] >= honest_min[i]);
      CHECK(global[i] <= honest_max[i]);
    }
  }
}

TEST_CASE("Attackers up to the tolerated number stay within the honest range") {
  constexpr size_t kNumParameters = 32;
  constexpr size_t kNumClients = 10;
  struct Case {
    StrategyOptions options;
    size_t num_attackers;
  };
  for (const Case& c : {Case{{.name = "fedmedian"}, 4},
                        Case{{.name = "fedtrimmedavg", .trim_fraction = 0.2}, 2},
                        Case{{.name = "fedtrimmedavg", .trim_fraction = 0.3}, 3}}) {
    CAPTURE(c.options.name);
    CAPTURE(c.num_attackers);
    Rng rng(23);
    std::vector<std::vector<float>> deltas;
    std::vector<float> honest_min(kNumParameters, std::numeric_limits<float>::max());
    std::vector<float> honest_max(kNumParameters, std::numeric_limits<float>::lowest());
    for (size_t k = 0; k < kNumClients - c.num_attackers; ++k) {
      std::vector<float>& delta = deltas.emplace_back(kNumParameters);
      for (size_t i = 0; i < kNumParameters; ++i) {
        delta[i] = static_cast<float>(rng.Normal());
        honest_min[i] = std::min(honest_min[i], delta[i]);
        honest_max[i] = std::max(honest_max[i], delta[i]);
      }
    }
    // Colluding attackers all push each coordinate the same way.
    for (size_t a = 0; a < c.num_attackers; ++a) {
      std::vector<float>& delta = deltas.emplace_back(kNumParameters);
      for (size_t i = 0; i < kNumParameters; ++i) delta[i] = i % 3 == 0 ? -3e38f : 3e38f;
    }
    std::vector<float> global(kNumParameters, 0.0f);
    RunRound(*Make(c.options, kNumParameters), deltas, kSkewedCounts, global);
    for (size_t i = 0; i < kNumParameters; ++i) {
      INFO("index " << i);
      CHECK(global[i] >= honest_min[i]);
      CHECK(global[i] <= honest_max[i]);
    }
  }
}

TEST_CASE("The robust aggregate is bit-identical whatever order the updates arrive in") {
  constexpr size_t kNumParameters = 1027;  // several blocks and a partial one
  constexpr size_t kNumClients = 11;
  Rng rng(5);
  std::vector<std::vector<float>> deltas(kNumClients, std::vector<float>(kNumParameters));
  for (size_t k = 0; k < kNumClients; ++k) {
    for (float& x : deltas[k]) x = static_cast<float>(rng.Normal() * std::pow(10.0, k % 4));
  }
  std::vector<size_t> order(kNumClients);
  for (size_t k = 0; k < kNumClients; ++k) order[k] = k;
  for (const std::string name : {"fedmedian", "fedtrimmedavg"}) {
    CAPTURE(name);
    std::vector<float> first(kNumParameters, 0.0f);
    RunRound(*Make({.name = name}, kNumParameters), deltas, kSkewedCounts, first);
    for (int shuffle = 0; shuffle < 3; ++shuffle) {
      rng.Shuffle(std::span<size_t>(order));
      std::vector<std::vector<float>> shuffled;
      for (size_t k : order) shuffled.push_back(deltas[k]);
      std::vector<float> global(kNumParameters, 0.0f);
      RunRound(*Make({.name = name}, kNumParameters), shuffled, kSkewedCounts, global);
      CHECK(global == first);
    }
    // The median of 11 keeps the 6th value; 0.2 x 11 = 2.2 drops two at each end.
    CHECK(first == SortedTrimmedMean(deltas, name == "fedmedian" ? 5 : 2));
  }
}

// Values on a coarse grid (ties, +0 and -0 among them), normals spread over 13 decades, and
// +-2^30, whose cancellation makes the order of a sum show in its float result.
std::vector<std::vector<float>> TiedAndSpreadDeltas(size_t num_clients, size_t num_parameters,
                                                    uint64_t seed) {
  Rng rng(seed);
  std::vector<std::vector<float>> deltas(num_clients, std::vector<float>(num_parameters));
  for (std::vector<float>& delta : deltas) {
    for (float& x : delta) {
      const uint64_t kind = rng.UniformInt(10);
      if (kind < 5) {
        x = static_cast<float>(static_cast<int>(rng.UniformInt(9)) - 4) * 0.25f;
        if (x == 0.0f && rng.UniformInt(2) == 0) x = -0.0f;
      } else if (kind < 9) {
        x = static_cast<float>(rng.Normal() *
                               std::pow(10.0, static_cast<double>(rng.UniformInt(13)) - 6.0));
      } else {
        x = rng.UniformInt(2) == 0 ? 0x1p30f : -0x1p30f;
      }
    }
  }
  return deltas;
}

TEST_CASE("Median and trimmed mean equal sorting every coordinate, bit for bit, on any threads") {
  const int saved_threads = models::NumThreads();
  struct Shape {
    size_t num_clients;
    size_t num_parameters;
  };
  // Odd and even K, powers of two and one past them (the network pads to the next one); N
  // below, at and past one block (128 coordinates up to K = 32, 64 above) and not a multiple
  // of it. The last two shapes hold more than 2^16 values, so Finish splits them over threads.
  const std::vector<Shape> shapes = {{1, 5},   {2, 128},  {3, 129},   {4, 1},
                                     {9, 200}, {10, 127}, {16, 256},  {17, 300},
                                     {33, 64}, {48, 65},  {33, 2050}, {100, 1027}};
  const std::vector<StrategyOptions> strategies = {
      {.name = "fedmedian"},
      {.name = "fedtrimmedavg", .trim_fraction = 0.0},
      {.name = "fedtrimmedavg", .trim_fraction = 0.1},
      {.name = "fedtrimmedavg", .trim_fraction = 0.25},
      {.name = "fedtrimmedavg", .trim_fraction = 0.45}};
  for (const Shape& shape : shapes) {
    CAPTURE(shape.num_clients);
    CAPTURE(shape.num_parameters);
    const std::vector<std::vector<float>> deltas =
        TiedAndSpreadDeltas(shape.num_clients, shape.num_parameters, shape.num_clients);
    std::vector<uint64_t> num_examples(shape.num_clients);
    for (size_t k = 0; k < shape.num_clients; ++k) {
      num_examples[k] = kSkewedCounts[k % kSkewedCounts.size()];
    }
    for (const StrategyOptions& options : strategies) {
      CAPTURE(options.name);
      CAPTURE(options.trim_fraction);
      const size_t trimmed = options.name == "fedmedian"
                                 ? (shape.num_clients - 1) / 2
                                 : NumTrimmedPerSide(options.trim_fraction, shape.num_clients);
      const std::vector<float> expected = SortedTrimmedMean(deltas, trimmed);
      for (int threads : {1, 2, 3}) {
        CAPTURE(threads);
        models::SetNumThreads(threads);
        std::vector<float> global(shape.num_parameters, 0.0f);
        RunRound(*Make(options, shape.num_parameters), deltas, num_examples, global);
        CHECK(global == expected);
      }
    }
  }
  models::SetNumThreads(saved_threads);
}

TEST_CASE("The trimmed mean adds its kept values in ascending order") {
  // -2^30 + 0.1 + 0.3 + 2^30 in double, in this order, is 0.40000009536743164; in arrival
  // or descending order the two small values round at the coarser step of 2^30 and give
  // 0.39999985694885254. Divided by 4, the two differ in float.
  const std::vector<std::vector<float>> deltas = {{0.1f}, {0x1p30f}, {0.3f}, {-0x1p30f}};
  const std::vector<float> expected = SortedTrimmedMean(deltas, 0);
  CHECK(expected[0] == static_cast<float>(0.40000009536743164 / 4.0));
  CHECK(expected[0] != static_cast<float>(0.39999985694885254 / 4.0));
  std::vector<float> global = {0.0f};
  RunRound(*Make({.name = "fedtrimmedavg", .trim_fraction = 0.0}, 1), deltas, kSkewedCounts,
           global);
  CHECK(global == expected);
}

TEST_CASE("Robust strategies refuse sums and updates that are invalid, and keep the round") {
  for (const std::string name : {"fedmedian", "fedtrimmedavg"}) {
    CAPTURE(name);
    CHECK(NeedsIndividualUpdates(name));
    std::unique_ptr<Strategy> strategy = Make({.name = name});
    const std::vector<float> good = {1.0f, 2.0f, 3.0f};
    const std::vector<float> huge = {3e38f, -3e38f, 3e38f};
    const std::vector<float> short_delta = {1.0f};
    const std::vector<float> with_inf = {1.0f, std::numeric_limits<float>::infinity(), 0.0f};
    const Status sum = strategy->AccumulateSum(good, 1.0, 1);
    CHECK(sum.code() == StatusCode::kFailedPrecondition);
    CHECK(sum.message().find("needs each client's update") != std::string::npos);
    CHECK(strategy->Accumulate({.client = ClientId(1), .delta = short_delta, .num_examples = 1})
              .code() == StatusCode::kInvalidArgument);
    CHECK(strategy->Accumulate({.client = ClientId(1), .delta = with_inf, .num_examples = 1})
              .code() == StatusCode::kInvalidArgument);
    CHECK(strategy->Accumulate({.client = ClientId(1), .delta = good, .num_examples = 0})
              .code() == StatusCode::kInvalidArgument);
    CHECK(strategy->num_clients_accumulated() == 0);

    // A step that would overflow float is refused whole, and the round is discarded.
    REQUIRE(strategy->Accumulate({.client = ClientId(2), .delta = huge, .num_examples = 1}).ok());
    std::vector<float> wrong_size(4, 0.0f);
    CHECK(strategy->Finish(wrong_size).code() == StatusCode::kInvalidArgument);
    CHECK(strategy->num_clients_accumulated() == 1);  // the round stays open
    std::vector<float> global = {3e38f, 0.0f, 0.0f};
    const std::vector<float> before = global;
    const Status overflow = strategy->Finish(global);
    CHECK(overflow.code() == StatusCode::kOutOfRange);
    CHECK(overflow.message().find(name) == 0);
    CHECK(global == before);
    CHECK(strategy->num_clients_accumulated() == 0);
    CHECK(strategy->SaveState().size() == 1);  // FedAvg's step: no optimizer state
  }
  CHECK_FALSE(NeedsIndividualUpdates("fedavg"));
  CHECK_FALSE(NeedsIndividualUpdates("fedbuff"));
}

TEST_CASE("A trim_fraction outside [0, 0.5) is refused") {
  for (double bad : {0.5, -0.1, 1.0, std::nan("")}) {
    CAPTURE(bad);
    const Status status = StrategyOptions{.name = "fedtrimmedavg", .trim_fraction = bad}.Validate();
    CHECK(status.code() == StatusCode::kInvalidArgument);
    CHECK(status.message().find("trim_fraction") != std::string::npos);
    CHECK(CreateStrategy({.name = "fedtrimmedavg", .trim_fraction = bad}, 3).status().code() ==
          StatusCode::kInvalidArgument);
  }
  CHECK(StrategyOptions{.name = "fedtrimmedavg", .trim_fraction = 0.0}.Validate().ok());
  CHECK(StrategyOptions{.name = "fedtrimmedavg", .trim_fraction = 0.49}.Validate().ok());
}

}  // namespace
}  // namespace edgefl::aggregation

// The secure-aggregation protocol end to end (secagg/client.h, secagg/server.h): exact sums
// with dropouts at every step over full and SecAgg+ graphs, aborts below the threshold, what
// the server gets to see, and clients refusing malformed or tampered server messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <optional>
#include <set>
#include <vector>

#include "edgefl/common/ids.h"
#include "edgefl/common/random.h"
#include "edgefl/privacy/secagg/client.h"
#include "edgefl/privacy/secagg/server.h"

namespace edgefl::privacy::secagg {
namespace {

// Clients that go silent just before each of the four steps.
using DropPlan = std::array<std::set<uint32_t>, 4>;

// Everything the server received, kept by the test (the server itself keeps no input).
struct RoundLog {
  Status status;
  int failed_step = -1;  // the step whose Finish failed
  std::vector<uint32_t> sum;
  std::vector<uint32_t> survivors;
  std::vector<uint32_t> masked_senders;  // clients whose masked input the server accepted
  std::vector<std::vector<uint32_t>> masked_inputs;
  std::vector<UnmaskResponseMessage> responses;
  UnmaskRequestMessage request;
};

std::vector<std::vector<uint32_t>> RandomInputs(uint32_t n, uint32_t d, uint64_t seed,
                                                uint32_t max_value = 0) {
  Rng rng(seed);
  std::vector<std::vector<uint32_t>> inputs(n, std::vector<uint32_t>(d));
  for (auto& input : inputs) {
    for (uint32_t& v : input) {
      v = max_value == 0 ? static_cast<uint32_t>(rng.NextU64())
                         : static_cast<uint32_t>(rng.UniformInt(max_value));
    }
  }
  return inputs;
}

// Drives one round through the real sessions, as the coordinator would, with no network.
RoundLog RunRound(const SecAggConfig& config, const std::vector<std::vector<uint32_t>>& inputs,
                  const DropPlan& drops, RoundId round = RoundId(3)) {
  RoundLog log;
  auto server_or = ServerSession::Create(config, round);
  REQUIRE(server_or.ok());
  ServerSession server = std::move(*server_or);
  std::vector<std::optional<ClientSession>> clients;
  std::vector<bool> alive(config.num_clients, true);
  for (uint32_t i = 0; i < config.num_clients; ++i) {
    auto client = ClientSession::Create(config, round, i);
    REQUIRE(client.ok());
    clients.emplace_back(std::move(*client));
  }
  auto drop_before = [&](int step) {
    for (uint32_t c : drops[step]) alive[c] = false;
  };
  auto fail = [&](int step, Status status) {
    log.failed_step = step;
    log.status = std::move(status);
    return log;
  };

  drop_before(0);
  for (uint32_t i = 0; i < config.num_clients; ++i) {
    if (!alive[i]) continue;
    auto message = clients[i]->AdvertiseKeys();
    REQUIRE(message.ok());
    REQUIRE(server.ReceiveAdvertiseKeys(*message).ok());
  }
  if (Status s = server.FinishAdvertiseKeys(); !s.ok()) return fail(0, s);

  drop_before(1);
  for (uint32_t i = 0; i < config.num_clients; ++i) {
    if (!alive[i]) continue;
    auto directory = server.KeyDirectoryFor(i);
    if (!directory.ok()) {  // dropped by the server (its group is too small)
      alive[i] = false;
      continue;
    }
    auto message = clients[i]->ShareKeys(*directory);
    if (!message.ok()) {
      alive[i] = false;
      continue;
    }
    REQUIRE(server.ReceiveShareKeys(std::move(*message)).ok());
  }
  if (Status s = server.FinishShareKeys(); !s.ok()) return fail(1, s);

  drop_before(2);
  for (uint32_t i = 0; i < config.num_clients; ++i) {
    if (!alive[i]) continue;
    auto relay = server.RelayFor(i);
    if (!relay.ok()) {
      alive[i] = false;
      continue;
    }
    auto message = clients[i]->MaskInput(*relay, inputs[i]);
    if (!message.ok()) {
      alive[i] = false;
      continue;
    }
    log.masked_inputs.push_back(message->masked_input);
    REQUIRE(server.ReceiveMaskedInput(*message).ok());
    log.masked_senders.push_back(i);
  }
  auto request = server.FinishMaskedInputCollection();
  if (!request.ok()) return fail(2, request.status());
  log.request = *request;

  drop_before(3);
  for (uint32_t i : request->survivors) {
    if (!alive[i]) continue;
    auto response = clients[i]->Unmask(*request);
    REQUIRE(response.ok());
    log.responses.push_back(*response);
    REQUIRE(server.ReceiveUnmaskResponse(*response).ok());
  }
  auto sum = server.FinishUnmasking();
  if (!sum.ok()) return fail(3, sum.status());
  log.sum = std::move(*sum);
  log.survivors.assign(server.survivors().begin(), server.survivors().end());
  return log;
}

std::vector<uint32_t> PlainSum(const std::vector<std::vector<uint32_t>>& inputs,
                               const std::vector<uint32_t>& who, uint32_t d) {
  std::vector<uint32_t> sum(d, 0);
  for (uint32_t u : who) {
    for (uint32_t i = 0; i < d; ++i) sum[i] += inputs[u][i];
  }
  return sum;
}

// `count` distinct clients not yet in any set of `plan`.
std::set<uint32_t> PickFresh(const DropPlan& plan, uint32_t n, size_t count, Rng& rng) {
  std::set<uint32_t> picked;
  while (picked.size() < count) {
    const uint32_t c = static_cast<uint32_t>(rng.UniformInt(n));
    bool used = false;
    for (const auto& s : plan) used = used || s.count(c);
    if (!used) picked.insert(c);
  }
  return picked;
}

void CheckExactSum(const SecAggConfig& config, const DropPlan& plan, uint64_t seed) {
  const auto inputs = RandomInputs(config.num_clients, config.vector_length, seed);
  const RoundLog log = RunRound(config, inputs, plan);
  REQUIRE_MESSAGE(log.status.ok(), log.status.ToString());
  // Survivors are exactly those whose masked inputs the server took, none dropped before.
  CHECK(log.survivors == log.masked_senders);
  for (int step = 0; step < 3; ++step) {
    for (uint32_t c : plan[step]) {
      CHECK(!std::binary_search(log.survivors.begin(), log.survivors.end(), c));
    }
  }
  for (uint32_t c : plan[3]) {
    CHECK(std::binary_search(log.survivors.begin(), log.survivors.end(), c));
  }
  CHECK(log.sum == PlainSum(inputs, log.survivors, config.vector_length));
}

TEST_CASE("The secure sum equals the plain sum when nobody drops") {
  const SecAggConfig config{.num_clients = 8, .threshold = 5, .vector_length = 300};
  CheckExactSum(config, {}, 1);
}

TEST_CASE("The secure sum stays exact with random dropouts at each step, full graph") {
  const SecAggConfig config{.num_clients = 10, .threshold = 6, .vector_length = 257};
  Rng rng(2024);
  for (int step = 0; step < 4; ++step) {
    for (int trial = 0; trial < 2; ++trial) {
      CAPTURE(step);
      CAPTURE(trial);
      DropPlan plan;
      plan[step] = PickFresh(plan, config.num_clients, 1 + trial * 3, rng);  // 1 or 4 drop
      CheckExactSum(config, plan, 100 + step * 10 + trial);
    }
  }
  // One dropout before every step: 6 of 10 answer unmasking, exactly the threshold.
  DropPlan plan;
  for (int step = 0; step < 4; ++step) plan[step] = PickFresh(plan, config.num_clients, 1, rng);
  CheckExactSum(config, plan, 999);
}

TEST_CASE("The secure sum stays exact with random dropouts at each step, SecAgg+ graph") {
  // Groups of 9 with threshold 5: any 4 dropouts leave every group able to unmask.
  const SecAggConfig config{
      .num_clients = 20, .threshold = 5, .neighbours = 8, .vector_length = 129, .graph_seed = 77};
  Rng rng(7);
  for (int step = 0; step < 4; ++step) {
    CAPTURE(step);
    DropPlan plan;
    plan[step] = PickFresh(plan, config.num_clients, 3, rng);
    CheckExactSum(config, plan, 200 + step);
  }
  DropPlan plan;
  for (int step = 0; step < 4; ++step) plan[step] = PickFresh(plan, config.num_clients, 1, rng);
  CheckExactSum(config, plan, 300);
  // An odd degree on an even cohort (the Harary graph adds the opposite client).
  const SecAggConfig odd{
      .num_clients = 12, .threshold = 4, .neighbours = 5, .vector_length = 64, .graph_seed = 5};
  DropPlan odd_plan;
  odd_plan[2] = {3};
  CheckExactSum(odd, odd_plan, 301);
}

TEST_CASE("The secure sum is exact for vectors longer than a mask tile and wraps mod 2^32") {
  const SecAggConfig config{.num_clients = 5, .threshold = 3, .vector_length = 70001};
  DropPlan plan;
  plan[2] = {1};
  CheckExactSum(config, plan, 5);
  // Inputs near 2^32 overflow in the sum and must wrap exactly.
  std::vector<std::vector<uint32_t>> inputs(5, std::vector<uint32_t>(70001, 0xfffffff0u));
  const RoundLog log = RunRound(config, inputs, {});
  REQUIRE(log.status.ok());
  CHECK(log.sum == std::vector<uint32_t>(70001, 5 * 0xfffffff0u));
}

TEST_CASE("The round aborts cleanly when fewer than threshold clients remain at any step") {
  const SecAggConfig config{.num_clients = 7, .threshold = 4, .vector_length = 16};
  const auto inputs = RandomInputs(7, 16, 8);
  for (int step = 0; step < 4; ++step) {
    CAPTURE(step);
    DropPlan plan;
    plan[step] = {0, 2, 4, 6};  // 3 of 7 remain, threshold 4
    const RoundLog log = RunRound(config, inputs, plan);
    CHECK(log.failed_step == step);
    CHECK(log.status.code() == StatusCode::kAborted);
    CHECK(log.sum.empty());
  }
}

TEST_CASE("A SecAgg+ round aborts before unmasking when a group loses its majority") {
  const SecAggConfig config{
      .num_clients = 12, .threshold = 4, .neighbours = 4, .vector_length = 8, .graph_seed = 3};
  const NeighbourGraph graph(config);
  // Silence three of client 0's four neighbours after they shared keys: client 0's group
  // keeps 2 of 5, below 4, so the self mask of client 0 could not be rebuilt.
  const std::vector<uint32_t> n0 = graph.NeighboursOf(0);
  DropPlan plan;
  plan[2] = {n0[0], n0[1], n0[2]};
  const RoundLog log = RunRound(config, RandomInputs(12, 8, 9), plan);
  CHECK(log.failed_step == 2);
  CHECK(log.status.code() == StatusCode::kAborted);
  CHECK(log.responses.empty());  // nobody revealed a share
}

TEST_CASE("The server never sees an unmasked individual input") {
  const SecAggConfig config{.num_clients = 8, .threshold = 5, .vector_length = 4000};
  // Small inputs, as encoded updates are: any leak would stand out against uniform masks.
  const auto inputs = RandomInputs(8, 4000, 10, /*max_value=*/1000);
  DropPlan plan;
  plan[2] = {6};  // a dropout, so mask keys are revealed too
  plan[3] = {1};
  const RoundLog log = RunRound(config, inputs, plan);
  REQUIRE(log.status.ok());
  CHECK(log.sum == PlainSum(inputs, log.survivors, 4000));

  // No masked input equals, or is close to, any client's input or the final sum.
  size_t small_values = 0;
  std::array<size_t, 16> buckets{};
  size_t samples = 0;
  for (const auto& masked : log.masked_inputs) {
    for (const auto& input : inputs) CHECK(masked != input);
    CHECK(masked != log.sum);
    for (uint32_t v : masked) {
      small_values += v < (uint32_t{1} << 20);
      ++buckets[v >> 28];
      ++samples;
    }
  }
  // Masked values look uniform on Z_2^32: a chi-square over the top 4 bits with 15 degrees of
  // freedom stays far below 60 (p < 1e-6) for uniform data; inputs alone would all be in
  // bucket 0.
  double chi2 = 0;
  const double expected = samples / 16.0;
  for (size_t count : buckets) chi2 += (count - expected) * (count - expected) / expected;
  CHECK(chi2 < 60.0);
  // Uniform values fall below 2^20 with probability 2^-12: about 7 of 28000.
  CHECK(small_values < 40);

  // Unmasking reveals self-mask shares of survivors and mask-key shares of the dropped only.
  std::set<uint32_t> self_mask_owners;
  std::set<uint32_t> mask_key_owners;
  for (const auto& response : log.responses) {
    for (const auto& share : response.self_mask_shares) self_mask_owners.insert(share.owner);
    for (const auto& share : response.mask_key_shares) mask_key_owners.insert(share.owner);
  }
  for (uint32_t owner : self_mask_owners) CHECK(!mask_key_owners.count(owner));
  CHECK(mask_key_owners == std::set<uint32_t>{6});
  CHECK(self_mask_owners == std::set<uint32_t>(log.survivors.begin(), log.survivors.end()));
}

// Sets up a 5-client full-graph round up to the relay, for tampering tests.
struct RelayFixture {
  SecAggConfig config{.num_clients = 5, .threshold = 3, .vector_length = 4};
  std::optional<ServerSession> server;
  std::vector<ClientSession> clients;

  RelayFixture() {
    server.emplace(std::move(*ServerSession::Create(config, RoundId(1))));
    for (uint32_t i = 0; i < 5; ++i)
      clients.push_back(*ClientSession::Create(config, RoundId(1), i));
    for (auto& c : clients) REQUIRE(server->ReceiveAdvertiseKeys(*c.AdvertiseKeys()).ok());
    REQUIRE(server->FinishAdvertiseKeys().ok());
    for (uint32_t i = 0; i < 5; ++i) {
      auto message = clients[i].ShareKeys(*server->KeyDirectoryFor(i));
      REQUIRE(message.ok());
      REQUIRE(server->ReceiveShareKeys(*message).ok());
    }
    REQUIRE(server->FinishShareKeys().ok());
  }
};

TEST_CASE("A client aborts on a tampered, misrouted or repeated share") {
  const std::vector<uint32_t> input = {1, 2, 3, 4};
  {
    RelayFixture f;
    auto relay = *f.server->RelayFor(0);
    relay.shares[1].ciphertext[20] ^= 0x40;
    CHECK(f.clients[0].MaskInput(relay, input).status().code() == StatusCode::kDataLoss);
    CHECK(f.clients[0].state() == ClientState::kAborted);
    CHECK(f.clients[0].MaskInput(relay, input).status().code() == StatusCode::kFailedPrecondition);
  }
  {
    RelayFixture f;
    auto relay = *f.server->RelayFor(0);
    relay.shares[0] = f.server->RelayFor(1)->shares[1];  // a share meant for client 1
    CHECK(f.clients[0].MaskInput(relay, input).status().code() == StatusCode::kInvalidArgument);
  }
  {
    RelayFixture f;
    auto relay = *f.server->RelayFor(0);
    // Claims the sender is client 3 while it was sealed by client 1: the associated data
    // differs, so it does not open.
    relay.shares[0].sender = 3;
    relay.shares[2].sender = 1;
    CHECK(f.clients[0].MaskInput(relay, input).status().code() == StatusCode::kDataLoss);
  }
  {
    RelayFixture f;
    auto relay = *f.server->RelayFor(0);
    relay.shares.push_back(relay.shares[0]);
    CHECK(f.clients[0].MaskInput(relay, input).status().code() == StatusCode::kInvalidArgument);
  }
  {
    RelayFixture f;
    auto relay = *f.server->RelayFor(0);
    const std::vector<uint32_t> wrong_size = {1, 2, 3};
    CHECK(f.clients[0].MaskInput(relay, wrong_size).status().code() ==
          StatusCode::kInvalidArgument);
    CHECK(f.clients[0].state() == ClientState::kMaskedInput);  // may retry
    CHECK(f.clients[0].MaskInput(relay, input).ok());
  }
}

TEST_CASE("A client refuses an unmask request that contradicts what it saw") {
  RelayFixture f;
  std::vector<uint32_t> input = {1, 2, 3, 4};
  for (uint32_t i = 0; i < 5; ++i) {
    auto masked = f.clients[i].MaskInput(*f.server->RelayFor(i), input);
    REQUIRE(masked.ok());
    REQUIRE(f.server->ReceiveMaskedInput(*masked).ok());
  }
  auto request = f.server->FinishMaskedInputCollection();
  REQUIRE(request.ok());
  CHECK(request->survivors == std::vector<uint32_t>{0, 1, 2, 3, 4});

  UnmaskRequestMessage both = *request;
  both.dropped = {2};  // 2 in both lists: would reveal both of its secrets
  CHECK(f.clients[0].Unmask(both).status().code() == StatusCode::kInvalidArgument);
  CHECK(f.clients[0].state() == ClientState::kAborted);

  UnmaskRequestMessage missing = *request;
  missing.survivors = {1, 2, 3, 4};  // omits client 0, which shared keys with client 1
  CHECK(f.clients[1].Unmask(missing).status().code() == StatusCode::kInvalidArgument);

  UnmaskRequestMessage unsorted = *request;
  std::swap(unsorted.survivors[0], unsorted.survivors[1]);
  CHECK(f.clients[2].Unmask(unsorted).status().code() == StatusCode::kInvalidArgument);

  auto response = f.clients[3].Unmask(*request);
  REQUIRE(response.ok());
  CHECK(response->self_mask_shares.size() == 5);
  CHECK(response->mask_key_shares.empty());
  CHECK(f.clients[3].state() == ClientState::kDone);
}

TEST_CASE("The server rejects malformed, repeated and out-of-order messages") {
  const SecAggConfig config{.num_clients = 4, .threshold = 3, .vector_length = 4};
  auto server = *ServerSession::Create(config, RoundId(2));
  std::vector<ClientSession> clients;
  for (uint32_t i = 0; i < 4; ++i) clients.push_back(*ClientSession::Create(config, RoundId(2), i));
  std::vector<AdvertiseKeysMessage> keys;
  for (auto& c : clients) keys.push_back(*c.AdvertiseKeys());

  AdvertiseKeysMessage short_key = keys[0];
  short_key.mask_public_key.pop_back();
  CHECK(server.ReceiveAdvertiseKeys(short_key).code() == StatusCode::kInvalidArgument);
  AdvertiseKeysMessage stranger = keys[0];
  stranger.sender = 9;
  CHECK(server.ReceiveAdvertiseKeys(stranger).code() == StatusCode::kInvalidArgument);
  for (const auto& k : keys) REQUIRE(server.ReceiveAdvertiseKeys(k).ok());
  CHECK(server.ReceiveAdvertiseKeys(keys[1]).code() == StatusCode::kAlreadyExists);
  CHECK(server.ReceiveMaskedInput({.sender = 0, .masked_input = {1, 2, 3, 4}}).code() ==
        StatusCode::kFailedPrecondition);
  CHECK(server.KeyDirectoryFor(0).status().code() == StatusCode::kFailedPrecondition);
  REQUIRE(server.FinishAdvertiseKeys().ok());
  CHECK(server.ExpectedSenders() == std::vector<uint32_t>{0, 1, 2, 3});

  std::vector<ShareKeysMessage> shares;
  for (uint32_t i = 0; i < 4; ++i)
    shares.push_back(*clients[i].ShareKeys(*server.KeyDirectoryFor(i)));
  ShareKeysMessage missing_one = shares[0];
  missing_one.shares.pop_back();
  CHECK(server.ReceiveShareKeys(missing_one).code() == StatusCode::kInvalidArgument);
  ShareKeysMessage truncated = shares[0];
  truncated.shares[0].ciphertext.resize(10);
  CHECK(server.ReceiveShareKeys(truncated).code() == StatusCode::kInvalidArgument);
  ShareKeysMessage to_self = shares[0];
  to_self.shares[0].recipient = 0;
  CHECK(server.ReceiveShareKeys(to_self).code() == StatusCode::kInvalidArgument);
  for (uint32_t i = 0; i < 3; ++i) REQUIRE(server.ReceiveShareKeys(shares[i]).ok());
  REQUIRE(server.FinishShareKeys().ok());  // client 3 dropped
  CHECK(server.RelayFor(3).status().code() == StatusCode::kFailedPrecondition);
  CHECK(server.ReceiveMaskedInput({.sender = 3, .masked_input = {1, 2, 3, 4}}).code() ==
        StatusCode::kFailedPrecondition);
  CHECK(server.ReceiveMaskedInput({.sender = 0, .masked_input = {1, 2, 3}}).code() ==
        StatusCode::kInvalidArgument);

  std::vector<uint32_t> input = {5, 6, 7, 8};
  for (uint32_t i = 0; i < 3; ++i) {
    REQUIRE(server.ReceiveMaskedInput(*clients[i].MaskInput(*server.RelayFor(i), input)).ok());
  }
  auto request = server.FinishMaskedInputCollection();
  REQUIRE(request.ok());
  CHECK(request->dropped == std::vector<uint32_t>{});
  std::vector<UnmaskResponseMessage> responses;
  for (uint32_t i = 0; i < 3; ++i) responses.push_back(*clients[i].Unmask(*request));
  UnmaskResponseMessage greedy = responses[0];
  greedy.mask_key_shares.push_back(greedy.self_mask_shares[1]);  // mask-key share of a survivor
  CHECK(server.ReceiveUnmaskResponse(greedy).code() == StatusCode::kInvalidArgument);
  UnmaskResponseMessage bad_bytes = responses[0];
  bad_bytes.self_mask_shares[0].share.assign(40, 0xff);
  CHECK(server.ReceiveUnmaskResponse(bad_bytes).code() == StatusCode::kInvalidArgument);
  for (const auto& r : responses) REQUIRE(server.ReceiveUnmaskResponse(r).ok());
  CHECK(server.ReceiveUnmaskResponse(responses[0]).code() == StatusCode::kAlreadyExists);
  auto sum = server.FinishUnmasking();
  REQUIRE(sum.ok());
  CHECK(*sum == std::vector<uint32_t>{15, 18, 21, 24});
  CHECK(server.state() == ServerState::kDone);
  CHECK(server.FinishUnmasking().status().code() == StatusCode::kFailedPrecondition);
}

TEST_CASE("A client aborts when its key directory is malformed or too small") {
  const SecAggConfig config{.num_clients = 5, .threshold = 3, .vector_length = 4};
  std::vector<ClientSession> clients;
  std::vector<AdvertiseKeysMessage> keys;
  for (uint32_t i = 0; i < 5; ++i) {
    clients.push_back(*ClientSession::Create(config, RoundId(4), i));
    keys.push_back(*clients.back().AdvertiseKeys());
  }
  auto client = [&](uint32_t i) {
    auto c = *ClientSession::Create(config, RoundId(4), i);
    REQUIRE(c.AdvertiseKeys().ok());
    return c;
  };
  {
    auto c = client(0);
    KeyDirectoryMessage too_small{.recipient = 0, .neighbours = {keys[1]}};
    CHECK(c.ShareKeys(too_small).status().code() == StatusCode::kAborted);
    CHECK(c.state() == ClientState::kAborted);
  }
  {
    auto c = client(0);
    KeyDirectoryMessage replayed{.recipient = 0, .neighbours = {keys[1], keys[2], keys[3]}};
    replayed.neighbours[2].mask_public_key = keys[1].mask_public_key;
    CHECK(c.ShareKeys(replayed).status().code() == StatusCode::kInvalidArgument);
  }
  {
    auto c = client(0);
    KeyDirectoryMessage twice{.recipient = 0, .neighbours = {keys[1], keys[1], keys[2]}};
    CHECK(c.ShareKeys(twice).status().code() == StatusCode::kInvalidArgument);
  }
  {
    auto c = client(0);
    KeyDirectoryMessage wrong{.recipient = 1, .neighbours = {keys[1], keys[2], keys[3]}};
    CHECK(c.ShareKeys(wrong).status().code() == StatusCode::kInvalidArgument);
  }
  {
    auto c = client(0);
    KeyDirectoryMessage fine{.recipient = 0, .neighbours = {keys[3], keys[1], keys[2]}};
    auto shares = c.ShareKeys(fine);
    REQUIRE(shares.ok());
    CHECK(shares->shares.size() == 3);
    CHECK(c.ShareKeys(fine).status().code() == StatusCode::kFailedPrecondition);
  }
  CHECK(ClientSession::Create(config, RoundId(4), 5).status().code() ==
        StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace edgefl::privacy::secagg

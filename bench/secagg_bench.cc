// Secure aggregation cost (privacy/secagg): client masking and server unmasking for cohorts of
// 100 and 1,000 clients, vectors of 100k and 1M values, 0/10/30% dropout, full graph
// (Bonawitz et al. 2017) vs SecAgg+ (Bell et al. 2020, k = 2 ceil(log2 n) neighbours).
//
// The crypto bound runs in the same program: BM_SecAgg_AesCtrKeystream is OpenSSL's raw
// AES-128-CTR keystream on one core, and every other benchmark reports `x_aes_ctr_core`, its own
// effective keystream rate (wall time) over that raw rate (measured in CPU time, best of 5), so
// 2.0 would be both cores at the AES bound.
//
// BM_SecAgg_Round runs a real round through ClientSession and ServerSession. Its manual time is
// the round's compute: every surviving client's MaskInput and Unmask, one after another, plus
// the server's work from the first masked input to the sum. Dropouts happen after ShareKeys,
// the costly case: the server must rebuild the mask keys of the dropped clients and remove
// their pairwise masks from the sum. The dropped clients are drawn at random, skipping any
// whose loss would leave some group below the threshold (the round would abort); only SecAgg+
// groups are small enough for that to happen. The sum is checked against the plain sum.
//
// n = 1,000 on the full graph needs 10^6 key agreements just to set up and minutes of AES per
// round on 2 cores, so BM_SecAgg_FullGraphModel measures one client's masking for real from
// the same primitives MaskInput calls (X25519AgreeMany, HKDF, AES-GCM, ApplyMasks over 1,000
// streams), and extrapolates the server from measured per-pair and per-stream costs. Its
// counters say `model`.
//
// Counters: client_mask_ms is one client's MaskInput (wall), clients_total_s all survivors'
// one after another, server_unmask_s the server from the first masked input to the sum;
// client_cpu_ms and server_cpu_s are the same in process CPU time (steadier when the machine is
// shared; with several OpenMP threads it includes their spinning). cpu_vs_aes_ctr is the
// keystream the round needed over the CPU time, as a fraction of the raw one-core rate.
//
// Each case runs once (manual timing, one iteration) so the whole program takes minutes.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <numeric>
#include <vector>

#include "edgefl/common/ids.h"
#include "edgefl/common/random.h"
#include "edgefl/privacy/secagg/client.h"
#include "edgefl/privacy/secagg/crypto.h"
#include "edgefl/privacy/secagg/server.h"

#include "bench_timing.h"

namespace edgefl::privacy::secagg {

namespace {

using edgefl::bench::SteadyClock;
using edgefl::bench::SecondsSince;
using edgefl::bench::ProcessCpuSeconds;

// A deterministic small input per client, as encoded updates are.
void FillInput(uint32_t client, std::span<uint32_t> input) {
  for (size_t i = 0; i < input.size(); ++i) {
    input[i] = (client * 2654435761u + static_cast<uint32_t>(i) * 40503u) & 0xffffu;
  }
}

double ThreadCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// OpenSSL's raw AES-128-CTR keystream rate on one core, bytes per CPU second (best of 5 x 64
// MiB; CPU time, so other load on the machine does not lower it).
double RawKeystreamBytesPerSecond() {
  static const double rate = [] {
    std::vector<uint8_t> buffer(size_t{64} << 20);
    const std::vector<uint8_t> seed(kPrgKeyBytes, 0x5a);
    double best = 0;
    for (int i = 0; i < 5; ++i) {
      const double start = ThreadCpuSeconds();
      if (!PrgKeystream(seed, buffer).ok()) return 0.0;
      best = std::max(best, static_cast<double>(buffer.size()) / (ThreadCpuSeconds() - start));
    }
    return best;
  }();
  return rate;
}

uint32_t SparseNeighbours(uint32_t n) {
  return 2 * static_cast<uint32_t>(std::ceil(std::log2(static_cast<double>(n))));
}

SecAggConfig MakeConfig(uint32_t n, uint32_t d, uint32_t neighbours) {
  SecAggConfig config{
      .num_clients = n, .neighbours = neighbours, .vector_length = d, .graph_seed = 42};
  config.threshold = config.group_size() / 2 + 1;
  return config;
}

// Up to `count` random clients whose joint loss leaves every group at or above threshold.
std::vector<uint8_t> PickDropouts(const SecAggConfig& config, uint32_t count, uint64_t seed) {
  const NeighbourGraph graph(config);
  const uint32_t n = config.num_clients;
  const uint32_t may_lose = config.group_size() - config.threshold;
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  Rng rng(seed);
  rng.Shuffle(std::span<uint32_t>(order));
  std::vector<uint32_t> lost(n, 0);  // dropped members of each client's group
  std::vector<uint8_t> dropped(n, 0);
  uint32_t picked = 0;
  for (uint32_t c : order) {
    if (picked == count) break;
    const std::vector<uint32_t> neighbours = graph.NeighboursOf(c);
    bool ok = lost[c] < may_lose;
    for (uint32_t v : neighbours) ok = ok && lost[v] < may_lose;
    if (!ok) continue;
    dropped[c] = 1;
    ++lost[c];
    for (uint32_t v : neighbours) ++lost[v];
    ++picked;
  }
  return dropped;
}

void BM_SecAgg_Round(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto d = static_cast<uint32_t>(state.range(1));
  const auto drop_percent = static_cast<uint32_t>(state.range(2));
  const auto neighbours = static_cast<uint32_t>(state.range(3));
  const SecAggConfig config = MakeConfig(n, d, neighbours);
  const RoundId round(1);
  for (auto _ : state) {
    // Setup, not timed: AdvertiseKeys and ShareKeys for everyone.
    auto server = *ServerSession::Create(config, round);
    std::vector<ClientSession> clients;
    clients.reserve(n);
    for (uint32_t i = 0; i < n; ++i) {
      clients.push_back(*ClientSession::Create(config, round, i));
      if (!server.ReceiveAdvertiseKeys(*clients[i].AdvertiseKeys()).ok()) {
        state.SkipWithError("AdvertiseKeys failed");
        return;
      }
    }
    if (!server.FinishAdvertiseKeys().ok()) return state.SkipWithError("FinishAdvertiseKeys");
    for (uint32_t i = 0; i < n; ++i) {
      auto shares = clients[i].ShareKeys(*server.KeyDirectoryFor(i));
      if (!shares.ok() || !server.ReceiveShareKeys(std::move(*shares)).ok()) {
        return state.SkipWithError("ShareKeys failed");
      }
    }
    if (!server.FinishShareKeys().ok()) return state.SkipWithError("FinishShareKeys");
    const std::vector<uint8_t> dropped = PickDropouts(config, n * drop_percent / 100, 7);

    // Timed: masking (clients) and collection (server).
    double client_seconds = 0;
    double server_seconds = 0;
    double client_cpu = 0;
    double server_cpu = 0;
    std::vector<uint32_t> input(d);
    std::vector<uint32_t> expected(d, 0);
    uint32_t survivors = 0;
    for (uint32_t i = 0; i < n; ++i) {
      if (dropped[i]) continue;
      ++survivors;
      auto relay = *server.RelayFor(i);
      FillInput(i, input);
      for (uint32_t j = 0; j < d; ++j) expected[j] += input[j];
      auto start = SteadyClock::now();
      double cpu = ProcessCpuSeconds();
      auto masked = clients[i].MaskInput(relay, input);
      client_seconds += SecondsSince(start);
      client_cpu += ProcessCpuSeconds() - cpu;
      if (!masked.ok()) return state.SkipWithError(masked.status().ToString().c_str());
      start = SteadyClock::now();
      cpu = ProcessCpuSeconds();
      const Status status = server.ReceiveMaskedInput(*masked);
      server_seconds += SecondsSince(start);
      server_cpu += ProcessCpuSeconds() - cpu;
      if (!status.ok()) return state.SkipWithError(status.ToString().c_str());
    }
    auto start = SteadyClock::now();
    double cpu = ProcessCpuSeconds();
    auto request = server.FinishMaskedInputCollection();
    server_seconds += SecondsSince(start);
    server_cpu += ProcessCpuSeconds() - cpu;
    if (!request.ok()) return state.SkipWithError(request.status().ToString().c_str());
    for (uint32_t i : request->survivors) {
      start = SteadyClock::now();
      cpu = ProcessCpuSeconds();
      auto response = clients[i].Unmask(*request);
      client_seconds += SecondsSince(start);
      client_cpu += ProcessCpuSeconds() - cpu;
      start = SteadyClock::now();
      cpu = ProcessCpuSeconds();
      const Status status = server.ReceiveUnmaskResponse(*response);
      server_seconds += SecondsSince(start);
      server_cpu += ProcessCpuSeconds() - cpu;
      if (!status.ok()) return state.SkipWithError(status.ToString().c_str());
    }
    start = SteadyClock::now();
    cpu = ProcessCpuSeconds();
    auto sum = server.FinishUnmasking();
    server_seconds += SecondsSince(start);
    server_cpu += ProcessCpuSeconds() - cpu;
    if (!sum.ok()) return state.SkipWithError(sum.status().ToString().c_str());
    if (*sum != expected) return state.SkipWithError("secure sum differs from the plain sum");
    state.SetIterationTime(client_seconds + server_seconds);

    // Keystream streams: each survivor masks with b and every neighbour (all shared keys);
    // the server removes every b and each survivor's mask with each dropped neighbour.
    const NeighbourGraph graph(config);
    double server_streams = survivors;
    for (uint32_t u = 0; u < n; ++u) {
      if (!dropped[u]) continue;
      for (uint32_t v : graph.NeighboursOf(u)) server_streams += !dropped[v];
    }
    const double client_streams = static_cast<double>(survivors) * (graph.degree() + 1);
    const double bytes = (client_streams + server_streams) * d * 4.0;
    state.counters["survivors"] = survivors;
    state.counters["client_mask_ms"] = 1e3 * client_seconds / survivors;
    state.counters["clients_total_s"] = client_seconds;
    state.counters["server_unmask_s"] = server_seconds;
    state.counters["client_cpu_ms"] = 1e3 * client_cpu / survivors;
    state.counters["server_cpu_s"] = server_cpu;
    state.counters["x_aes_ctr_core"] =
        bytes / (client_seconds + server_seconds) / RawKeystreamBytesPerSecond();
    state.counters["cpu_vs_aes_ctr"] =
        bytes / (client_cpu + server_cpu) / RawKeystreamBytesPerSecond();
  }
}

void BM_SecAgg_FullGraphModel(benchmark::State& state) {
  const auto n = static_cast<uint32_t>(state.range(0));
  const auto d = static_cast<uint32_t>(state.range(1));
  const auto drop_percent = static_cast<uint32_t>(state.range(2));
  const uint32_t dropped = n * drop_percent / 100;
  const uint32_t survivors = n - dropped;
  for (auto _ : state) {
    // Peers' public keys and one sealed share each (not timed).
    auto own_c = *GenerateX25519KeyPair();
    auto own_s = *GenerateX25519KeyPair();
    std::vector<X25519PublicKey> peer_c(n - 1), peer_s(n - 1);
    for (uint32_t v = 0; v + 1 < n; ++v) {
      peer_c[v] = GenerateX25519KeyPair()->public_key;
      peer_s[v] = GenerateX25519KeyPair()->public_key;
    }
    const std::vector<uint8_t> info(24, 1);
    const std::vector<uint8_t> aad(28, 2);
    const std::vector<uint8_t> plaintext(88, 3);
    std::vector<std::vector<uint8_t>> sealed(n - 1, std::vector<uint8_t>(kEncryptedShareBytes));
    std::vector<SecretBytes<kAesGcmKeyBytes>> share_keys(n - 1);
    for (uint32_t v = 0; v + 1 < n; ++v) {
      auto shared = *X25519Agree(own_c.private_key, peer_c[v]);
      (void)HkdfSha256(shared.Reveal(), {}, info, share_keys[v].MutableReveal());
      (void)AesGcmSeal(share_keys[v], plaintext, aad, sealed[v]);
    }

    // Client, measured: what MaskInput does for n - 1 neighbours.
    std::vector<uint32_t> input(d);
    FillInput(0, input);
    std::vector<uint8_t> opened(88);
    std::vector<SecretBytes<kPrgKeyBytes>> seeds(n - 1);
    SecretBytes<kPrgSeedBytes> self_seed;
    (void)RandomBytes(self_seed.MutableReveal());
    auto start = SteadyClock::now();
    std::vector<SecretBytes<32>> shared_c(n - 1), shared_s(n - 1);
    if (!X25519AgreeMany(own_c.private_key, peer_c, shared_c).ok() ||
        !X25519AgreeMany(own_s.private_key, peer_s, shared_s).ok()) {
      return state.SkipWithError("X25519AgreeMany failed");
    }
    for (uint32_t v = 0; v + 1 < n; ++v) {
      SecretBytes<kAesGcmKeyBytes> key;
      (void)HkdfSha256(shared_c[v].Reveal(), {}, info, key.MutableReveal());
      if (!AesGcmOpen(share_keys[v], sealed[v], aad, opened).ok()) {
        return state.SkipWithError("AES-GCM open failed");
      }
      (void)HkdfSha256(shared_s[v].Reveal(), {}, info, seeds[v].MutableReveal());
    }
    std::vector<MaskTerm> terms = {{self_seed.Reveal(), MaskSign::kAdd}};
    for (uint32_t v = 0; v + 1 < n; ++v) {
      terms.push_back({seeds[v].Reveal(), v % 2 ? MaskSign::kAdd : MaskSign::kSubtract});
    }
    std::vector<uint32_t> masked(input);
    if (!ApplyMasks(terms, masked).ok()) return state.SkipWithError("ApplyMasks failed");
    const double client_seconds = SecondsSince(start);
    state.SetIterationTime(client_seconds);

    // Server, extrapolated: per pairwise-seed cost (X25519 + HKDF over up to 256 survivors,
    // as the session does for each dropped client), per-stream PRG cost, and folding in inputs.
    const uint32_t probe = std::min<uint32_t>(256, n - 1);
    start = SteadyClock::now();
    if (!X25519AgreeMany(own_s.private_key, std::span(peer_s).first(probe),
                         std::span(shared_s).first(probe))
             .ok()) {
      return state.SkipWithError("X25519AgreeMany failed");
    }
    for (uint32_t v = 0; v < probe; ++v) {
      (void)HkdfSha256(shared_s[v].Reveal(), {}, info, seeds[v].MutableReveal());
    }
    const double seconds_per_pair = SecondsSince(start) / probe;
    const std::span<const MaskTerm> probe_terms(terms.data(), std::min<size_t>(64, terms.size()));
    start = SteadyClock::now();
    if (!ApplyMasks(probe_terms, masked).ok()) return state.SkipWithError("ApplyMasks failed");
    const double seconds_per_stream = SecondsSince(start) / probe_terms.size();
    start = SteadyClock::now();
    for (int r = 0; r < 8; ++r) {
      for (uint32_t i = 0; i < d; ++i) masked[i] += input[i];
    }
    benchmark::DoNotOptimize(masked.data());
    const double seconds_per_fold = SecondsSince(start) / 8;
    const double pairs = static_cast<double>(dropped) * survivors;
    const double server_seconds = pairs * seconds_per_pair +
                                  (survivors + pairs) * seconds_per_stream +
                                  survivors * seconds_per_fold;
    const double client_bytes = static_cast<double>(n) * d * 4.0;
    state.counters["client_mask_ms"] = 1e3 * client_seconds;
    state.counters["clients_total_s_model"] = client_seconds * survivors;
    state.counters["server_unmask_s_model"] = server_seconds;
    state.counters["round_s_model"] = client_seconds * survivors + server_seconds;
    state.counters["x_aes_ctr_core"] = client_bytes / client_seconds / RawKeystreamBytesPerSecond();
  }
}

void BM_SecAgg_AesCtrKeystream(benchmark::State& state) {
  const auto d = static_cast<size_t>(state.range(0));
  std::vector<uint8_t> buffer(d * 4);
  const std::vector<uint8_t> seed(kPrgKeyBytes, 0x11);
  for (auto _ : state) {
    if (!PrgKeystream(seed, buffer).ok()) return state.SkipWithError("PrgKeystream failed");
    benchmark::DoNotOptimize(buffer.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * buffer.size()));
}

// The masking kernel alone: `terms` streams added into d values, with 1 thread or OpenMP's
// default.
void BM_SecAgg_ApplyMasks(benchmark::State& state) {
  const auto d = static_cast<size_t>(state.range(0));
  const auto num_terms = static_cast<size_t>(state.range(1));
  const int threads = static_cast<int>(state.range(2));
  std::vector<std::vector<uint8_t>> seeds(num_terms, std::vector<uint8_t>(kPrgKeyBytes));
  std::vector<MaskTerm> terms;
  for (size_t i = 0; i < num_terms; ++i) {
    seeds[i][0] = static_cast<uint8_t>(i);
    terms.push_back({seeds[i], i % 2 ? MaskSign::kAdd : MaskSign::kSubtract});
  }
  std::vector<uint32_t> values(d, 1);
  for (auto _ : state) {
    if (!ApplyMasks(terms, values, threads).ok()) return state.SkipWithError("ApplyMasks");
    benchmark::DoNotOptimize(values.data());
  }
  const double bytes = double(state.iterations()) * num_terms * d * 4;
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["x_aes_ctr_core"] =
      benchmark::Counter(bytes / RawKeystreamBytesPerSecond(), benchmark::Counter::kIsRate);
}

// Per-neighbour costs that add to the PRG: one key agreement, one key derivation, opening one
// encrypted share.
void BM_SecAgg_X25519Agree(benchmark::State& state) {
  auto own = *GenerateX25519KeyPair();
  auto peer = *GenerateX25519KeyPair();
  for (auto _ : state) {
    auto shared = X25519Agree(own.private_key, peer.public_key);
    benchmark::DoNotOptimize(shared.ok());
  }
}

void BM_SecAgg_HkdfSha256(benchmark::State& state) {
  const std::vector<uint8_t> ikm(32, 1), info(24, 2);
  std::vector<uint8_t> out(32);
  for (auto _ : state) {
    benchmark::DoNotOptimize(HkdfSha256(ikm, {}, info, out).ok());
  }
}

void BM_SecAgg_AesGcmOpenShare(benchmark::State& state) {
  SecretBytes<kAesGcmKeyBytes> key;
  (void)RandomBytes(key.MutableReveal());
  const std::vector<uint8_t> plaintext(88, 3), aad(28, 2);
  std::vector<uint8_t> sealed(kEncryptedShareBytes), opened(88);
  (void)AesGcmSeal(key, plaintext, aad, sealed);
  for (auto _ : state) {
    benchmark::DoNotOptimize(AesGcmOpen(key, sealed, aad, opened).ok());
  }
}

BENCHMARK(BM_SecAgg_X25519Agree)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SecAgg_HkdfSha256)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SecAgg_AesGcmOpenShare)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_SecAgg_AesCtrKeystream)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SecAgg_ApplyMasks)
    ->ArgNames({"d", "streams", "threads"})
    ->Args({100'000, 100, 1})
    ->Args({100'000, 100, 0})
    ->Args({1'000'000, 20, 1})
    ->Args({1'000'000, 20, 0})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

void RoundArgs(benchmark::internal::Benchmark* b) {
  b->ArgNames({"n", "d", "drop_pct", "k"});
  for (int64_t n : {100, 1000}) {
    for (int64_t d : {100'000, 1'000'000}) {
      for (int64_t drop : {0, 10, 30}) {
        for (int64_t k : {int64_t{0}, int64_t{SparseNeighbours(static_cast<uint32_t>(n))}}) {
          if (n == 1000 && k == 0) continue;  // BM_SecAgg_FullGraphModel
          b->Args({n, d, drop, k});
        }
      }
    }
  }
}
BENCHMARK(BM_SecAgg_Round)
    ->Apply(RoundArgs)
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SecAgg_FullGraphModel)
    ->ArgNames({"n", "d", "drop_pct"})
    ->ArgsProduct({{1000}, {100'000, 1'000'000}, {0, 10, 30}})
    ->UseManualTime()
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace edgefl::privacy::secagg

#include "edgefl/aggregation/robust.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "accumulator.h"
#include "edgefl/common/check.h"
#include "edgefl/common/target_clones.h"
#include "edgefl/models/threading.h"
#include "server_optimizers.h"

namespace edgefl::aggregation {
namespace {

// The block kernels below are loops of min/max over a block's lanes, compiled once per x86-64
// level (EDGEFL_TARGET_CLONES): AVX-512 was 2x faster than SSE2 at K = 100 on the dev VM.

// Coordinates reduced together: a block is K rows of kLanes floats (row k holds update k's
// values of the block's coordinates), so every comparator is a min and a max over whole vectors
// and the gather reads kLanes contiguous floats of each update. Wide blocks spread each
// comparator's loop overhead over more vectors while the K x kLanes scratch stays in L1; on the
// dev VM 128 lanes were 1.7x faster than 64 at K = 10, 64 were 1.3x faster than 128 at K = 100
// (51 KiB of scratch no longer fits L1), and 16 or 32 lost 1.3x to 6x everywhere.
constexpr size_t kWideLanes = 128;
constexpr size_t kNarrowLanes = 64;
constexpr size_t kMaxWideScratchBytes = 16 * 1024;

size_t LanesFor(size_t num_clients) {
  return num_clients * kWideLanes * sizeof(float) <= kMaxWideScratchBytes ? kWideLanes
                                                                          : kNarrowLanes;
}

// Below this many values (K x N) Finish stays on the calling thread: a fork/join costs a few
// microseconds, and 2^16 values take about 15 at K = 10.
constexpr size_t kMinParallelValues = size_t{1} << 16;

// Compare-exchange of two rows of a block: low gets the lane-wise min, high the max.
struct Comparator {
  uint32_t low = 0;
  uint32_t high = 0;
};

// A comparator network after which wires [keep_begin, keep_end) of `num_wires` hold exactly
// what a full sort puts there (by value; ties between -0 and +0 may land either way, which no
// sum below can see: each starts at +0). It is Batcher's odd-even merge sort (K. E. Batcher,
// "Sorting networks and their applications", AFIPS 1968) on the next power of two, minus:
// comparators reaching a wire >= num_wires (those wires would hold +Inf, so they never swap),
// and comparators none of whose outputs can reach a kept wire (walked back from the end).
// Size O(K log^2 K): 29 comparators for the median of 10, 898 of 100, 1086 for the 0.1-trimmed
// mean of 100. Precondition: keep_begin < keep_end <= num_wires < 2^31.
std::vector<Comparator> TrimmingNetwork(size_t num_wires, size_t keep_begin, size_t keep_end) {
  EDGEFL_CHECK(keep_begin < keep_end && keep_end <= num_wires && num_wires < (size_t{1} << 31));
  size_t padded = 1;
  while (padded < num_wires) padded *= 2;
  std::vector<Comparator> network;
  for (size_t p = 1; p < padded; p *= 2) {
    for (size_t k = p; k >= 1; k /= 2) {
      for (size_t j = k % p; j + k < padded; j += 2 * k) {
        for (size_t i = 0; i < k && i + j + k < num_wires; ++i) {
          if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) {
            network.push_back({static_cast<uint32_t>(i + j), static_cast<uint32_t>(i + j + k)});
          }
        }
      }
    }
  }
  std::vector<char> live(num_wires, 0);
  std::fill(live.begin() + static_cast<ptrdiff_t>(keep_begin),
            live.begin() + static_cast<ptrdiff_t>(keep_end), 1);
  std::vector<Comparator> needed;
  for (auto c = network.rbegin(); c != network.rend(); ++c) {
    if (live[c->low] || live[c->high]) {
      live[c->low] = live[c->high] = 1;
      needed.push_back(*c);
    }
  }
  std::reverse(needed.begin(), needed.end());
  return needed;
}

// The kernel: out[0, width) = for each coordinate begin + j, the mean of updates[0..K)[begin + j]
// without its `trimmed` smallest and `trimmed` largest values, summed in double in ascending
// order and rounded once to float. That is the definition the reference (sort each coordinate,
// then sum) gives bit for bit, which robust_test.cc checks: the network leaves each kept row
// sorted, and the sum runs over the kept rows in order. `scratch` holds K x kLanes floats;
// lanes past `width` are zero so that every loop has a fixed length. Inlined into one clone
// per instruction set below, which each lower the loops to their own registers.
template <size_t kLanes>
[[gnu::always_inline]] inline void TrimmedMeanOfBlock(std::span<const float* const> updates,
                                                      size_t begin, size_t width,
                                                      std::span<const Comparator> network,
                                                      size_t trimmed, float* scratch, float* out) {
  const size_t num_clients = updates.size();
  for (size_t k = 0; k < num_clients; ++k) {
    float* row = scratch + k * kLanes;
    std::copy(updates[k] + begin, updates[k] + begin + width, row);
    std::fill(row + width, row + kLanes, 0.0f);
  }
  for (const Comparator& c : network) {
    float* __restrict low = scratch + c.low * kLanes;
    float* __restrict high = scratch + c.high * kLanes;
    for (size_t j = 0; j < kLanes; ++j) {
      const float a = low[j];
      const float b = high[j];
      low[j] = std::min(a, b);
      high[j] = std::max(a, b);
    }
  }
  double sum[kLanes] = {};
  for (size_t k = trimmed; k < num_clients - trimmed; ++k) {
    const float* row = scratch + k * kLanes;
    for (size_t j = 0; j < kLanes; ++j) sum[j] += row[j];
  }
  const double num_kept = static_cast<double>(num_clients - 2 * trimmed);
  for (size_t j = 0; j < width; ++j) out[j] = static_cast<float>(sum[j] / num_kept);
}

EDGEFL_TARGET_CLONES
void TrimmedMeanOfWideBlock(std::span<const float* const> updates, size_t begin, size_t width,
                            std::span<const Comparator> network, size_t trimmed, float* scratch,
                            float* out) {
  TrimmedMeanOfBlock<kWideLanes>(updates, begin, width, network, trimmed, scratch, out);
}

EDGEFL_TARGET_CLONES
void TrimmedMeanOfNarrowBlock(std::span<const float* const> updates, size_t begin, size_t width,
                              std::span<const Comparator> network, size_t trimmed, float* scratch,
                              float* out) {
  TrimmedMeanOfBlock<kNarrowLanes>(updates, begin, width, network, trimmed, scratch, out);
}

// out = the coordinate-wise trimmed mean of `updates` (TrimmedMeanOfBlock's definition). The
// result lies within the range of the kept values, so it is finite. Splits the blocks over
// models::NumThreads() OpenMP threads, but stays on the calling thread inside an active
// parallel region (a pool thread of the simulator) or for small inputs; each coordinate's
// arithmetic is the same on any thread, so the bits do not depend on the thread count.
// Precondition: K >= 1, 2 * trimmed < K, every update and `out` have the same size.
void CoordinateTrimmedMean(std::span<const float* const> updates, size_t trimmed,
                           std::span<float> out) {
  const size_t num_clients = updates.size();
  const size_t num_parameters = out.size();
  EDGEFL_CHECK(2 * trimmed < num_clients);
  const std::vector<Comparator> network =
      TrimmingNetwork(num_clients, trimmed, num_clients - trimmed);
  const size_t lanes = LanesFor(num_clients);
  const size_t num_blocks = (num_parameters + lanes - 1) / lanes;
  const int num_threads = models::NumThreads();
  const bool parallel = num_threads > 1 && num_blocks > 1 && !omp_in_parallel() &&
                        num_clients * num_parameters >= kMinParallelValues;
#pragma omp parallel num_threads(num_threads) if (parallel)
  {
    std::vector<float> scratch(num_clients * lanes);
#pragma omp for schedule(static)
    for (size_t block = 0; block < num_blocks; ++block) {
      const size_t begin = block * lanes;
      const size_t width = std::min(lanes, num_parameters - begin);
      float* block_out = out.data() + begin;
      if (lanes == kWideLanes) {
        TrimmedMeanOfWideBlock(updates, begin, width, network, trimmed, scratch.data(), block_out);
      } else {
        TrimmedMeanOfNarrowBlock(updates, begin, width, network, trimmed, scratch.data(),
                                 block_out);
      }
    }
  }
}

enum class RobustRule { kMedian, kTrimmedMean };

// Keeps every update of the round; Finish reduces them coordinate-wise and hands the one
// resulting delta to FedAvg's server step (server_optimizers.h).
class RobustStrategy final : public Strategy {
 public:
  RobustStrategy(const StrategyOptions& options, RobustRule rule, size_t num_parameters)
      : name_(options.name),
        rule_(rule),
        trim_fraction_(options.trim_fraction),
        num_parameters_(num_parameters),
        server_step_(MakeFedAvgStep(options.name, options.server_learning_rate, num_parameters)) {}

  const std::string& name() const override { return name_; }

  Status Accumulate(const ClientUpdate& update) override {
    const std::string context = name_ + ": client " + std::to_string(update.client.value());
    if (update.num_examples == 0) {
      return InvalidArgumentError(context + ": update has num_examples == 0");
    }
    // Weight 1: num_examples is validated but deliberately not used (robust.h, Weighting).
    EDGEFL_RETURN_IF_ERROR(
        ValidateContribution(update.delta, num_parameters_, 1.0, "update").WithContext(context));
    if (num_updates_ < updates_.size()) {
      std::copy(update.delta.begin(), update.delta.end(), updates_[num_updates_].begin());
    } else {
      updates_.emplace_back(update.delta.begin(), update.delta.end());
    }
    ++num_updates_;
    return OkStatus();
  }

  Status AccumulateSum(std::span<const float>, double, size_t num_clients) override {
    return FailedPreconditionError(
        name_ + " needs each client's update and cannot use a sum of " +
        std::to_string(num_clients) +
        " (secure aggregation and central DP deliver only sums); nothing was folded in");
  }

  size_t num_clients_accumulated() const override { return num_updates_; }

  Status Finish(std::span<float> global) override {
    if (num_updates_ == 0) {
      return FailedPreconditionError(name_ + ": Finish with no update accumulated this round");
    }
    if (global.size() != num_parameters_) {
      return InvalidArgumentError(name_ + ": global weights have " +
                                  std::to_string(global.size()) +
                                  " values, the strategy was made for " +
                                  std::to_string(num_parameters_));
    }
    const size_t num_clients = num_updates_;
    // The median is the trimmed mean that keeps only the middle one (K odd) or two (K even).
    const size_t trimmed = rule_ == RobustRule::kMedian
                               ? (num_clients - 1) / 2
                               : NumTrimmedPerSide(trim_fraction_, num_clients);
    std::vector<const float*> updates(num_clients);
    for (size_t k = 0; k < num_clients; ++k) updates[k] = updates_[k].data();
    aggregate_.resize(num_parameters_);
    CoordinateTrimmedMean(updates, trimmed, aggregate_);
    DiscardRound();
    // The aggregate is finite and of the right size, and the step is empty, so this succeeds;
    // Finish then refuses (kOutOfRange) a step that would overflow float, changing nothing.
    EDGEFL_CHECK(server_step_->AccumulateSum(aggregate_, 1.0, num_clients).ok());
    return server_step_->Finish(global);
  }

  void DiscardRound() override { num_updates_ = 0; }

  std::vector<float> SaveState() const override { return server_step_->SaveState(); }
  Status LoadState(std::span<const float> state) override {
    return server_step_->LoadState(state);
  }

 private:
  std::string name_;
  RobustRule rule_;
  double trim_fraction_;
  size_t num_parameters_;
  std::unique_ptr<Strategy> server_step_;
  // This round's updates are updates_[0, num_updates_), in arrival order. The buffers are
  // reused by later rounds: first-touch page faults on fresh memory cost more than the copy.
  std::vector<std::vector<float>> updates_;
  size_t num_updates_ = 0;
  // Finish's result before the server step, kept for the same reason.
  std::vector<float> aggregate_;
};

}  // namespace

size_t NumTrimmedPerSide(double trim_fraction, size_t num_clients) {
  if (num_clients == 0) return 0;
  // The product of a decimal fraction and a count of at most ~1e6 is within ~1e-10 of the
  // integer it means; 1e-9 absorbs that binary error without reaching the next real count.
  constexpr double kDecimalSlack = 1e-9;
  const auto count = static_cast<size_t>(
      std::floor(trim_fraction * static_cast<double>(num_clients) + kDecimalSlack));
  return std::min(count, (num_clients - 1) / 2);
}

std::unique_ptr<Strategy> MakeRobustStrategy(const StrategyOptions& options,
                                             size_t num_parameters) {
  EDGEFL_CHECK(num_parameters > 0);
  if (options.name == "fedmedian") {
    return std::make_unique<RobustStrategy>(options, RobustRule::kMedian, num_parameters);
  }
  EDGEFL_CHECK(options.name == "fedtrimmedavg")
      << "MakeRobustStrategy called for '" << options.name << "'";
  return std::make_unique<RobustStrategy>(options, RobustRule::kTrimmedMean, num_parameters);
}

}  // namespace edgefl::aggregation

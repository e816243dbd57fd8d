#include "edgefl/aggregation/fedbuff.h"

#include <cmath>
#include <string>
#include <vector>

#include "edgefl/common/check.h"
#include "server_optimizers.h"

namespace edgefl::aggregation {
namespace {

// FedAvg's server step over the buffer (deltas already staleness-scaled by the engine).
class FedBuffStrategy : public Strategy {
 public:
  FedBuffStrategy(const StrategyOptions& options, size_t num_parameters) {
    StrategyOptions inner = options;
    inner.name = "fedavg";
    inner_ = MakeServerOptimizerStrategy(inner, num_parameters);
  }
  const std::string& name() const override { return name_; }
  Status Accumulate(const ClientUpdate& update) override {
    return inner_->Accumulate(update);
  }
  Status AccumulateSum(std::span<const float> weighted_sum, double total_weight,
                       size_t num_clients) override {
    return inner_->AccumulateSum(weighted_sum, total_weight, num_clients);
  }
  size_t num_clients_accumulated() const override { return inner_->num_clients_accumulated(); }
  Status Finish(std::span<float> global) override { return inner_->Finish(global); }
  void DiscardRound() override { inner_->DiscardRound(); }
  std::vector<float> SaveState() const override { return inner_->SaveState(); }
  Status LoadState(std::span<const float> state) override { return inner_->LoadState(state); }

 private:
  std::string name_ = "fedbuff";
  std::unique_ptr<Strategy> inner_;
};

}  // namespace

float FedBuffStalenessWeight(uint64_t staleness) {
  return static_cast<float>(1.0 / std::sqrt(1.0 + static_cast<double>(staleness)));
}

std::unique_ptr<Strategy> MakeFedBuffStrategy(const StrategyOptions& options,
                                              size_t num_parameters) {
  EDGEFL_CHECK(num_parameters > 0);
  return std::make_unique<FedBuffStrategy>(options, num_parameters);
}

}  // namespace edgefl::aggregation

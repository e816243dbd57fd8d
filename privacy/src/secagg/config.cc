// SecAggConfig validation and the SecAgg+ neighbour graph (config.h).

#include "edgefl/privacy/secagg/config.h"

#include <algorithm>
#include <numeric>
#include <span>
#include <string>

#include "edgefl/common/random.h"

namespace edgefl::privacy::secagg {

Status SecAggConfig::Validate() const {
  auto error = [](const std::string& message) {
    return InvalidArgumentError("SecAggConfig: " + message);
  };
  if (num_clients < 2 || num_clients > kMaxSecAggClients) {
    return error("num_clients " + std::to_string(num_clients) + " must be in [2, " +
                 std::to_string(kMaxSecAggClients) + "]");
  }
  if (neighbours != 0) {
    if (neighbours < 2 || neighbours > num_clients - 1) {
      return error("neighbours " + std::to_string(neighbours) + " must be 0 or in [2, " +
                   std::to_string(num_clients - 1) + "] for num_clients " +
                   std::to_string(num_clients));
    }
    if (!is_full_graph() && neighbours % 2 == 1 && num_clients % 2 == 1) {
      return error("neighbours " + std::to_string(neighbours) + " is odd and num_clients " +
                   std::to_string(num_clients) +
                   " is odd; a Harary graph of odd degree needs an even number of clients");
    }
  }
  const uint32_t group = group_size();
  if (threshold > group || 2 * uint64_t{threshold} <= group) {
    return error("threshold " + std::to_string(threshold) + " must be in [" +
                 std::to_string(group / 2 + 1) + ", " + std::to_string(group) +
                 "] (a majority of each client's group of " + std::to_string(group) + ")");
  }
  if (vector_length < 1 || vector_length > kMaxSecAggVectorLength) {
    return error("vector_length " + std::to_string(vector_length) + " must be in [1, " +
                 std::to_string(kMaxSecAggVectorLength) + "]");
  }
  if (max_threads < 0) {
    return error("max_threads " + std::to_string(max_threads) + " must be >= 0");
  }
  return OkStatus();
}

uint32_t SecAggConfig::group_size() const { return is_full_graph() ? num_clients : neighbours + 1; }

NeighbourGraph::NeighbourGraph(const SecAggConfig& config)
    : num_clients_(config.num_clients), full_(config.is_full_graph()) {
  EDGEFL_CHECK(config.Validate().ok()) << config.Validate().ToString();
  degree_ = config.group_size() - 1;
  if (full_) return;
  // Harary graph H(k, n) (Harary 1962) over a public random permutation: client order_[p]
  // sits at ring position p and is joined to the k/2 positions on either side, plus the
  // opposite position when k is odd. This is the graph of Bell et al. 2020 (section 3.2) and
  // Flower's SecAgg+: k-regular, k/2-connected, and unpredictable before graph_seed is drawn.
  order_.resize(num_clients_);
  std::iota(order_.begin(), order_.end(), 0u);
  Rng rng(DeriveSeed(config.graph_seed, 0x5ecA99u));
  rng.Shuffle(std::span<uint32_t>(order_));
  position_.resize(num_clients_);
  for (uint32_t p = 0; p < num_clients_; ++p) position_[order_[p]] = p;
}

bool NeighbourGraph::AreNeighbours(uint32_t a, uint32_t b) const {
  EDGEFL_CHECK_LT(a, num_clients_);
  EDGEFL_CHECK_LT(b, num_clients_);
  if (a == b) return false;
  if (full_) return true;
  const uint32_t gap =
      position_[a] > position_[b] ? position_[a] - position_[b] : position_[b] - position_[a];
  const uint32_t distance = std::min(gap, num_clients_ - gap);
  return distance <= degree_ / 2 || (degree_ % 2 == 1 && 2 * distance == num_clients_);
}

std::vector<uint32_t> NeighbourGraph::NeighboursOf(uint32_t index) const {
  EDGEFL_CHECK_LT(index, num_clients_);
  std::vector<uint32_t> neighbours;
  neighbours.reserve(degree_);
  if (full_) {
    for (uint32_t v = 0; v < num_clients_; ++v) {
      if (v != index) neighbours.push_back(v);
    }
    return neighbours;
  }
  const uint32_t p = position_[index];
  for (uint32_t step = 1; step <= degree_ / 2; ++step) {
    neighbours.push_back(order_[(p + step) % num_clients_]);
    neighbours.push_back(order_[(p + num_clients_ - step) % num_clients_]);
  }
  if (degree_ % 2 == 1) neighbours.push_back(order_[(p + num_clients_ / 2) % num_clients_]);
  std::sort(neighbours.begin(), neighbours.end());
  return neighbours;
}

}  // namespace edgefl::privacy::secagg

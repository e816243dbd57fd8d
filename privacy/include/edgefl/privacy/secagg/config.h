// SecAggConfig: the public parameters of one secure-aggregation round, and NeighbourGraph, the
// graph of who masks with whom that they define.
//
// The coordinator fills a SecAggConfig per round and sends it with the round config; clients
// and server must use the same one. With neighbours = 0 every pair of the cohort masks
// (Bonawitz et al. 2017); otherwise each client masks and shares only with its neighbours in a
// Harary graph H(neighbours, num_clients) laid over a random permutation of the cohort drawn
// from graph_seed (SecAgg+, Bell et al. 2020, section 3; as Flower's SecAgg+ does). Values,
// immutable after construction; safe to share between threads.
//
//   SecAggConfig config{.num_clients = 100, .threshold = 8, .neighbours = 14,
//                       .vector_length = 100'000, .graph_seed = 7};
//   EDGEFL_RETURN_IF_ERROR(config.Validate());
//   NeighbourGraph graph(config);
#pragma once

#include <cstdint>
#include <vector>

#include "edgefl/common/status.h"

namespace edgefl::privacy::secagg {

inline constexpr uint32_t kMaxSecAggClients = uint32_t{1} << 20;
inline constexpr uint32_t kMaxSecAggVectorLength = uint32_t{1} << 28;  // 1 GiB of uint32

struct SecAggConfig {
  // Cohort size n: clients are indices 0 .. n-1 of the round's cohort. [2, 2^20].
  uint32_t num_clients = 0;
  // Shares needed to rebuild a client's secrets, counted in the client's group (its neighbours
  // and itself). Must satisfy group_size() / 2 < threshold <= group_size(): a majority, so no
  // server can collect both the self-mask and the mask-key shares of one client, even by
  // telling different clients different dropout sets. At most group_size() - threshold of a
  // group may drop before the round aborts.
  uint32_t threshold = 0;
  // Neighbours per client for SecAgg+; 0 (default) = the full graph. Otherwise in
  // [2, num_clients - 1] (num_clients - 1 is the full graph), and even unless num_clients is
  // even (Harary graphs of odd degree need an even number of nodes). About 2 log2 n is usual.
  uint32_t neighbours = 0;
  // Values per input vector d, each in Z_2^32. [1, 2^28].
  uint32_t vector_length = 0;
  // Public seed of the neighbour-graph permutation, fresh per round. Ignored for the full graph.
  uint64_t graph_seed = 0;
  // OpenMP threads for mask generation and key agreement; 0 = OpenMP's default. >= 0. Set 1
  // when many sessions already run concurrently on their own threads (a simulator): nested
  // OpenMP regions are detected and run serially, other thread pools are not.
  int max_threads = 0;

  // kInvalidArgument naming the field and the numbers when a range above is violated.
  [[nodiscard]] Status Validate() const;
  // Size of each client's group: neighbours + 1, or num_clients for the full graph.
  uint32_t group_size() const;
  bool is_full_graph() const { return neighbours == 0 || neighbours + 1 >= num_clients; }
};

// Who masks and shares with whom. Precondition for every member: a config that passed
// Validate(), and indices < num_clients (checked).
class NeighbourGraph {
 public:
  explicit NeighbourGraph(const SecAggConfig& config);

  uint32_t num_clients() const { return num_clients_; }
  // Neighbours of every client (the graph is regular).
  uint32_t degree() const { return degree_; }
  // True when a and b mask with each other; false for a == b.
  bool AreNeighbours(uint32_t a, uint32_t b) const;
  // The neighbours of `index`, ascending.
  std::vector<uint32_t> NeighboursOf(uint32_t index) const;

 private:
  uint32_t num_clients_ = 0;
  uint32_t degree_ = 0;
  bool full_ = true;
  // Harary graph: ring position of each client; empty for the full graph.
  std::vector<uint32_t> position_;
  // Harary graph: client at each ring position.
  std::vector<uint32_t> order_;
};

}  // namespace edgefl::privacy::secagg

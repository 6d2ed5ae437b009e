#include "registry.hpp"

#include <numeric>

#include "baobab/error.hpp"
#include "build.hpp"

namespace baobab {

size_t CollDesc::total() const {
  switch (coll) {
    case Coll::reduce_scatter:
    case Coll::allgather:
      return std::accumulate(counts.begin(), counts.end(), size_t{0});
    case Coll::alltoall: {
      // the largest row or column: what one rank sends or receives
      size_t p = 0;
      while (p * p < counts.size()) ++p;
      size_t best = 0;
      for (size_t r = 0; r < p; ++r) {
        size_t row = 0, col = 0;
        for (size_t c = 0; c < p; ++c) {
          row += counts[r * p + c];
          col += counts[c * p + r];
        }
        best = std::max({best, row, col});
      }
      return best;
    }
    case Coll::barrier: return 0;
    default: return count;
  }
}

uint64_t CollDesc::counts_hash() const {
  uint64_t h = 1469598103934665603ull;
  for (size_t c : counts) {
    h ^= c + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 1099511628211ull;
  }
  return h;
}

namespace algo {
std::string needs_pow2(const Topology& t, const CollDesc&) {
  return is_pow2(t.size()) ? "" : "needs a power-of-two number of ranks (have " + std::to_string(t.size()) + ")";
}
std::string needs_nodes(const Topology& t, const CollDesc&) {
  return t.num_nodes() > 1 ? ""
                           : "needs ranks on more than one node (all share one; BAOBAB_TOPOLOGY=nodes=N emulates nodes)";
}
}  // namespace algo

const std::vector<Algorithm>& algorithms() {
  static const std::vector<Algorithm> all = [] {
    using namespace algo;
    return std::vector<Algorithm>{
        allreduce_recursive_doubling(), allreduce_rabenseifner(), allreduce_ring(),    allreduce_leader(),
        allreduce_split_rail(),         allreduce_weighted(),     reduce_scatter_ring(),    reduce_scatter_halving(), allgather_ring(),
        allgather_recursive_doubling(), allgather_hier(),         bcast_binomial(),    bcast_scatter_allgather(),
        bcast_hier(),                   reduce_binomial(),        reduce_rs_gather(),  reduce_hier(),
        alltoall_pairwise(),            alltoall_linear(),        alltoall_hier(),     barrier_dissemination(),
        barrier_hier(),
    };
  }();
  return all;
}

const Algorithm* find_algorithm(Coll c, const std::string& name) {
  for (const auto& a : algorithms())
    if (a.coll == c && a.name == name) return &a;
  return nullptr;
}

std::vector<std::string> algorithm_names(Coll c) {
  std::vector<std::string> out;
  for (const auto& a : algorithms())
    if (a.coll == c) out.push_back(a.name);
  return out;
}

Schedule build_schedule(const Algorithm& a, const Topology& t, const CollDesc& d, int rank, const CostModel& m) {
  Schedule s;
  s.algo = a.name;
  s.elem_size = d.elem_size;
  a.build(s, t, d, rank, m);
  return s;
}

}  // namespace baobab

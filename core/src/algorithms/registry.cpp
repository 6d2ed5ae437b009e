// The registry: every algorithm of every collective, in the order the selector
// costs them (the first of candidates predicted equal wins), and the lookups.
#include "registry.hpp"

#include "baobab/error.hpp"
#include "pow2.hpp"

namespace baobab {

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
    std::vector<Algorithm> v;
    for (auto make : {allreduce_recursive_doubling, allreduce_rabenseifner, allreduce_ring, allreduce_leader,
                      allreduce_split_rail, allreduce_weighted, reduce_scatter_ring, reduce_scatter_halving,
                      allgather_ring, allgather_recursive_doubling, allgather_hier, bcast_binomial,
                      bcast_scatter_allgather, bcast_hier, reduce_binomial, reduce_rs_gather, reduce_hier,
                      alltoall_pairwise, alltoall_linear, alltoall_hier, barrier_dissemination, barrier_hier})
      v.push_back(make());
    return v;
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

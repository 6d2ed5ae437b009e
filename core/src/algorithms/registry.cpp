// The registry: every algorithm of every collective, in the order the selector
// costs them (the first of candidates predicted equal wins), and the lookups.
// Compositions that embed a flat allreduce appear as their family's entry
// followed by one variant per inner allreduce (inner_allreduce.hpp).
#include "registry.hpp"

#include "baobab/error.hpp"
#include "inner_allreduce.hpp"
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

Algorithm family_entry(Algorithm a, const std::string& what) {
  std::string names;
  for (const auto& in : inner_allreduces()) {
    a.variants.push_back(a.name + "(" + in.name + ")");
    names += (names.empty() ? "" : ", ") + in.name;
  }
  a.summary += "; " + what + " chosen by the model among " + names;
  return a;
}
}  // namespace algo

const std::vector<Algorithm>& algorithms() {
  static const std::vector<Algorithm> all = [] {
    using namespace algo;
    std::vector<Algorithm> v{allreduce_recursive_doubling(), allreduce_rabenseifner(), allreduce_ring()};
    for (auto family : {allreduce_leader, allreduce_split_rail}) {
      v.push_back(family(nullptr));
      for (const auto& in : inner_allreduces()) v.push_back(family(&in));
    }
    for (auto make : {allreduce_weighted, reduce_scatter_ring, reduce_scatter_halving, allgather_ring,
                      allgather_recursive_doubling, allgather_hier, bcast_binomial, bcast_scatter_allgather,
                      bcast_hier, reduce_binomial, reduce_rs_gather, reduce_hier, alltoall_pairwise,
                      alltoall_linear, alltoall_hier, barrier_dissemination, barrier_hier})
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
  if (a.is_family()) {
    std::string v;
    for (const auto& n : a.variants) v += (v.empty() ? "" : ", ") + n;
    throw InvalidArgument(std::string(coll_name(a.coll)) + " algorithm '" + a.name +
                          "' is a family; its schedule is one of its variants' (" + v +
                          "), which the selector picks (choose)");
  }
  Schedule s;
  s.algo = a.name;
  s.elem_size = d.elem_size;
  a.build(s, t, d, rank, m);
  return s;
}

}  // namespace baobab

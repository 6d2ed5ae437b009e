// barrier / hier: ranks check in with their node leader, leaders run a
// dissemination barrier, leaders release their node.
// Cost: 2 a0 + ceil(log2 N) a1: only leaders cross the slow link.
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm barrier_hier() {
  Algorithm a;
  a.name = "hier";
  a.coll = Coll::barrier;
  a.hierarchical = true;
  a.summary = "gather at node leader, dissemination among leaders, release";
  a.unsupported = needs_nodes;
  a.build = [](Schedule& s, const Topology& t, const CollDesc&, int rank, const CostModel&) {
    const auto& node = t.node_members(t.node_of(rank));
    Group P(node, rank);
    std::vector<Extents> none(node.size());
    linear_gather(s, P, kOut, none, 0);
    if (P.me == 0) dissemination(s, Group(t.leaders(), rank));
    binomial_bcast(s, P, kOut, Extents{}, 0);
  };
  return a;
}
}  // namespace baobab::algo

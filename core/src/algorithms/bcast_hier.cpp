// bcast / hier: per level, broadcast among group leaders first (the root leads
// its own group), recursively from the coarsest level, then binomial inside each
// group. Cost (two levels): ceil(log2 N)(a1 + n b1) + ceil(log2 s)(a0 + n b0);
// each node receives the data across the slow link once. Pipelined in segments.
#include <algorithm>

#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {
namespace {

void hier_bcast(Schedule& s, const Topology& t, const Group& g, int L, uint8_t buf, const Extents& e, int root,
                int rank) {
  if (g.size() <= 1 || !g.member()) return;
  if (L >= t.levels()) return binomial_bcast(s, g, buf, e, root);
  auto parts = parts_at(t, g, L);
  if (parts.size() == 1) return binomial_bcast(s, g, buf, e, root);
  const RootedLeaders rl = rooted_leaders(*parts, g[root], rank);
  if (rl.leaders.member()) hier_bcast(s, t, rl.leaders, L + 1, buf, e, rl.root, rank);
  binomial_bcast(s, parts.mine(rank), buf, e, rl.part_root);
}

}  // namespace

Algorithm bcast_hier() {
  Algorithm a;
  a.name = "hier";
  a.coll = Coll::bcast;
  a.hierarchical = true;
  a.segmentable = true;
  a.summary = "per level: bcast among group leaders, then binomial in group; pipelined in segments";
  a.unsupported = needs_nodes;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    if (rank == d.root) { RoundBuilder r(s); r.copy(Ref{kOut, 0}, Ref{kIn, 0}, d.count); }
    hier_bcast(s, t, Group::world(t.size(), rank), 0, kOut, Extents{Span{0, d.count}}, d.root, rank);
  };
  return a;
}
}  // namespace baobab::algo

// reduce / hier: per level, binomial reduce inside each group to its leader (the
// root leads its own group), then reduce among leaders, recursively.
// Cost (two levels): ceil(log2 s)(a0 + n b0 + n g) + ceil(log2 N)(a1 + n b1 + n g).
#include <algorithm>

#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {
namespace {

void hier_reduce(Schedule& s, const Topology& t, const Group& g, int L, uint8_t buf, const Extents& e, int root,
                 int rank) {
  if (g.size() <= 1 || !g.member()) return;
  if (L >= t.levels()) return binomial_reduce(s, g, buf, e, root);
  auto parts = parts_at(t, g, L);
  if (parts.size() == 1) return binomial_reduce(s, g, buf, e, root);
  const RootedLeaders rl = rooted_leaders(*parts, g[root], rank);
  binomial_reduce(s, parts.mine(rank), buf, e, rl.part_root);
  if (rl.leaders.member()) hier_reduce(s, t, rl.leaders, L + 1, buf, e, rl.root, rank);
}

}  // namespace

Algorithm reduce_hier() {
  Algorithm a;
  a.name = "hier";
  a.coll = Coll::reduce;
  a.hierarchical = true;
  a.segmentable = true;
  a.summary = "per level: reduce to group leader, then among leaders; pipelined in segments";
  a.unsupported = needs_nodes;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const uint8_t w = rank == d.root ? uint8_t{kOut} : s.add_scratch(d.count);
    { RoundBuilder r(s); r.copy(Ref{w, 0}, Ref{kIn, 0}, d.count); }
    hier_reduce(s, t, Group::world(t.size(), rank), 0, w, Extents{Span{0, d.count}}, d.root, rank);
  };
  return a;
}
}  // namespace baobab::algo

// allgather / hier: per level, gather each group's blocks to its first rank,
// allgather among leaders (recursively, ring at the top; a leader's unit is the
// union of its group's blocks, sent without packing), then broadcast the whole
// result inside each group (binomial).
// Cost (two levels, s per node, N nodes, n = whole output):
//   a0 + (s-1)/p n b0 + (N-1) a1 + (N-1)/N n b1 + ceil(log2 s)(a0 + n b0).
// Only leaders cross the slow link; works for nodes of different sizes.
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {
namespace {

void hier_allgather(Schedule& s, const Topology& t, const Group& g, int L, uint8_t buf,
                    const std::vector<Extents>& units, int rank) {
  if (g.size() <= 1 || !g.member()) return;
  if (L >= t.levels()) return ring_allgather(s, g, buf, units);
  auto parts = parts_at(t, g, L);
  if (parts.size() == 1) return ring_allgather(s, g, buf, units);
  bool singletons = true;
  for (const auto& q : parts) singletons = singletons && q.size() == 1;
  if (singletons) return hier_allgather(s, t, g, L + 1, buf, units, rank);

  auto unit_of = [&](int comm_rank) -> const Extents& {
    for (int i = 0; i < g.size(); ++i)
      if (g[i] == comm_rank) return units[i];
    return units[0];
  };
  const Group P = parts.mine(rank);
  std::vector<Extents> punits;
  for (int r : P.ranks) punits.push_back(unit_of(r));
  linear_gather(s, P, buf, punits, 0);

  std::vector<int> leaders;
  std::vector<Extents> lunits;
  for (const auto& q : parts) {
    leaders.push_back(q[0]);
    Extents e;
    for (int r : q.ranks)
      for (auto sp : unit_of(r)) append_merged(e, sp);
    lunits.push_back(e);
  }
  if (P.me == 0) hier_allgather(s, t, Group(leaders, rank), L + 1, buf, lunits, rank);

  Extents all;
  for (const auto& u : units)
    for (auto sp : u) append_merged(all, sp);
  binomial_bcast(s, P, buf, all, 0);
}

}  // namespace

Algorithm allgather_hier() {
  Algorithm a;
  a.name = "hier";
  a.coll = Coll::allgather;
  a.hierarchical = true;
  a.summary = "per level: gather to group leader, allgather among leaders, bcast in group";
  a.unsupported = needs_nodes;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const Blocks b = Blocks::of(d.counts);
    { RoundBuilder r(s); r.copy(Ref{kOut, b.off[rank]}, Ref{kIn, 0}, b.cnt[rank]); }
    std::vector<Extents> units(b.off.size());
    for (size_t i = 0; i < units.size(); ++i) units[i] = {Span{b.off[i], b.cnt[i]}};
    hier_allgather(s, t, Group::world(t.size(), rank), 0, kOut, units, rank);
  };
  return a;
}
}  // namespace baobab::algo

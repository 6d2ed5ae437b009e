// allreduce / leader(INNER): per level, binomial reduce to the group's first
// rank (reduce_binomial.cpp), allreduce among those leaders (recursively over
// coarser levels; at the top the flat allreduce INNER), binomial bcast back
// inside the group (bcast_binomial.cpp).
// Cost (two levels, s ranks per node, N nodes):
//   2 ceil(log2 s)(a0 + n b0) + ceil(log2 s) n g + INNER(N ranks, n bytes) on level 1.
// Only one rank per node touches the slow link and messages stay whole: the
// choice for small and medium vectors on multi-node jobs.
// One variant per inner flat allreduce (inner_allreduce.hpp): leader(ring),
// leader(rabenseifner), ...; the selector costs each, and `leader` alone
// (forced) lets it pick among them.
#include "flat.hpp"
#include "inner_allreduce.hpp"
#include "registry.hpp"

namespace baobab::algo {
namespace {

// Input read from src on first touch (src == buf: in place).
void leader_allreduce(Schedule& s, const Topology& t, const Group& g, int L, uint8_t src, uint8_t buf, size_t off,
                      size_t count, const CostModel& m, int rank, const InnerAllreduce& inner) {
  if (!g.member()) return;
  if (g.size() <= 1) return copy_if_needed(s, src, buf, off, count);
  if (L >= t.levels()) return inner.run(s, g, src, buf, off, count, m, t.levels());
  auto parts = parts_at(t, g, L);
  if (parts.size() == 1) return inner.run(s, g, src, buf, off, count, m, L);
  if (parts.size() == static_cast<size_t>(g.size()))  // every part a single rank
    return leader_allreduce(s, t, g, L + 1, src, buf, off, count, m, rank, inner);
  const Group P = parts.mine(rank);
  const Extents e{Span{off, count}};
  const bool written = binomial_reduce(s, P, src, buf, e, 0);
  if (P.me == 0)
    leader_allreduce(s, t, Group(parts->firsts.ranks, rank), L + 1, written ? buf : src, buf, off, count, m, rank,
                     inner);
  binomial_bcast(s, P, buf, e, 0);
}

}  // namespace

Algorithm allreduce_leader(const InnerAllreduce* inner) {
  Algorithm a;
  a.name = "leader";
  a.coll = Coll::allreduce;
  a.hierarchical = true;
  a.segmentable = true;
  a.summary = "per level: reduce to group leader, allreduce among leaders, bcast in group";
  a.unsupported = needs_nodes;
  if (!inner) return family_entry(std::move(a), "the leaders' allreduce");
  a.family = a.name;
  a.inner = inner->name;
  a.name += "(" + inner->name + ")";
  a.summary = a.family + " with " + inner->name + " as the leaders' allreduce";
  a.consider = inner->consider;
  a.build = [inner](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel& m) {
    leader_allreduce(s, t, Group::world(t.size(), rank), 0, kIn, kOut, 0, d.count, m, rank, *inner);
  };
  a.bound = ring_chain_bound(*inner, a.build);
  return a;
}

}  // namespace baobab::algo

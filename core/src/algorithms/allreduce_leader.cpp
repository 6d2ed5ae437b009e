// allreduce / leader: per level, binomial reduce to the group's first rank,
// allreduce among those leaders (recursively over coarser levels, flat at the
// top), binomial bcast back inside the group.
// Cost (two levels, s ranks per node, N nodes):
//   2 ceil(log2 s)(a0 + n b0) + ceil(log2 s) n g + flat allreduce(N, n) on level 1.
// Only one rank per node touches the slow link and messages stay whole: the
// choice for small and medium vectors on multi-node jobs.
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {
namespace {

// Input read from src on first touch (src == buf: in place).
void leader_allreduce(Schedule& s, const Topology& t, const Group& g, int L, uint8_t src, uint8_t buf, size_t off,
                      size_t count, const CostModel& m, int rank) {
  if (!g.member()) return;
  if (g.size() <= 1) return copy_if_needed(s, src, buf, off, count);
  if (L >= t.levels()) return best_flat_allreduce(s, g, src, buf, off, count, m, t.levels());
  auto parts = parts_at(t, g, L, rank);
  if (parts.size() == 1) return best_flat_allreduce(s, g, src, buf, off, count, m, L);
  bool singletons = true;
  std::vector<int> leaders;
  for (const auto& q : parts) {
    singletons = singletons && q.size() == 1;
    leaders.push_back(q[0]);
  }
  if (singletons) return leader_allreduce(s, t, g, L + 1, src, buf, off, count, m, rank);
  const Group& P = parts[part_of(parts, rank)];
  const Extents e{Span{off, count}};
  const bool written = binomial_reduce(s, P, src, buf, e, 0);
  if (P.me == 0)
    leader_allreduce(s, t, Group(leaders, rank), L + 1, written ? buf : src, buf, off, count, m, rank);
  binomial_bcast(s, P, buf, e, 0);
}

}  // namespace

Algorithm allreduce_leader() {
  Algorithm a;
  a.name = "leader";
  a.coll = Coll::allreduce;
  a.hierarchical = true;
  a.segmentable = true;
  a.summary = "per level: reduce to group leader, allreduce among leaders, bcast in group";
  a.unsupported = needs_nodes;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel& m) {
    leader_allreduce(s, t, Group::world(t.size(), rank), 0, kIn, kOut, 0, d.count, m, rank);
  };
  return a;
}
}  // namespace baobab::algo

// allreduce / split_rail(INNER): per level, ring reduce-scatter inside each
// group (reduce_scatter_ring.cpp), then one allreduce per block across groups
// ("rails": one rank per group, all rails running concurrently on different
// ranks), then ring allgather inside each group (allgather_ring.cpp). Applied
// recursively over the topology's levels (node, then switch, ...); at the top
// a rail runs the flat allreduce INNER.
//
// Uneven groups: the vector is cut into K = (largest group size) blocks; a group
// of s ranks gives member j the contiguous blocks [jK/s, (j+1)K/s). The rail of
// block b is the set of owners of b, one per group.
//
// Cost with s ranks per node, N nodes, n bytes (two levels):
//   intra RS + AG: 2(s-1) a0 + 2(s-1)/s n b0 + (s-1)/s n g
//   inter        : INNER(N ranks, n/s bytes) per rail, all s rails sharing the
//                  node's link: with ring ~ 2(N-1)/N n b1 + 2(N-1) a1.
// The slow link of a node carries about 2(N-1)/N n bytes, split over s
// concurrent rails, and pays 2(N-1) latency terms where a flat ring over all
// ranks pays 2(sN-1): the choice for large vectors on multi-node jobs.
// One variant per inner flat allreduce (inner_allreduce.hpp): split_rail(ring),
// split_rail(rabenseifner), ...; the selector costs each, and `split_rail`
// alone (forced) lets it pick among them.
#include <algorithm>

#include "flat.hpp"
#include "inner_allreduce.hpp"
#include "registry.hpp"

namespace baobab::algo {
namespace {

std::pair<size_t, size_t> owned(size_t K, size_t s, size_t j) { return {j * K / s, (j + 1) * K / s}; }

// Input read from src on first touch (src == buf: in place).
void split_allreduce(Schedule& sch, const Topology& t, const Group& g, int L, uint8_t src, uint8_t buf, size_t off,
                     size_t count, const CostModel& m, int rank, const InnerAllreduce& inner) {
  if (!g.member()) return;
  if (g.size() <= 1) return copy_if_needed(sch, src, buf, off, count);
  if (L >= t.levels()) return inner.run(sch, g, src, buf, off, count, m, t.levels());
  auto parts = parts_at(t, g, L);
  if (parts.size() == 1) return inner.run(sch, g, src, buf, off, count, m, L);
  size_t K = 0;
  for (const auto& q : parts) K = std::max<size_t>(K, q.size());
  if (K == 1) return split_allreduce(sch, t, g, L + 1, src, buf, off, count, m, rank, inner);

  Blocks kb = Blocks::even(count, static_cast<int>(K));
  for (auto& o : kb.off) o += off;
  auto range_elems = [&](size_t a, size_t b) {
    return a == b ? Span{kb.off[std::min(a, K - 1)], 0} : Span{kb.off[a], kb.off[b - 1] + kb.cnt[b - 1] - kb.off[a]};
  };
  const Group P = parts.mine(rank);
  const size_t sP = P.size();
  Blocks pb;
  for (size_t j = 0; j < sP; ++j) {
    auto [a, b] = owned(K, sP, j);
    Span sp = range_elems(a, b);
    pb.off.push_back(sp.off);
    pb.cnt.push_back(sp.len);
    pb.total += sp.len;
  }
  // After the reduce-scatter this rank's blocks are in buf (a group of one
  // reduces nothing: its blocks are still in src).
  ring_reduce_scatter(sch, P, src, buf, pb);
  const uint8_t cur = sP > 1 ? buf : src;

  // The owner of block b in each part: the j whose owned() range holds b,
  // the largest j with floor(j K / s) <= b, i.e. ceil((b + 1) s / K) - 1.
  auto rail = [&](size_t b) {
    std::vector<int> ranks;
    ranks.reserve(parts.size());
    for (const auto& q : parts) {
      const size_t sq = q.size();
      const size_t j = ((b + 1) * sq + K - 1) / K - 1;
      ranks.push_back(q[static_cast<int>(j)]);
    }
    return ranks;
  };
  auto [a, b] = owned(K, sP, static_cast<size_t>(P.me));
  for (size_t bi = a; bi < b;) {
    std::vector<int> r = rail(bi);
    size_t be = bi + 1;
    while (be < b && rail(be) == r) ++be;
    Span sp = range_elems(bi, be);
    split_allreduce(sch, t, Group(r, rank), L + 1, cur, buf, sp.off, sp.len, m, rank, inner);
    bi = be;
  }
  ring_allgather(sch, P, buf, pb);
}

}  // namespace

Algorithm allreduce_split_rail(const InnerAllreduce* inner) {
  Algorithm a;
  a.name = "split_rail";
  a.coll = Coll::allreduce;
  a.hierarchical = true;
  a.segmentable = true;
  a.summary = "per level: reduce-scatter in group, concurrent per-rail allreduce across groups, allgather in group";
  a.unsupported = needs_nodes;
  if (!inner) return family_entry(std::move(a), "the rails' allreduce");
  a.family = a.name;
  a.inner = inner->name;
  a.name += "(" + inner->name + ")";
  a.summary = a.family + " with " + inner->name + " as the rails' allreduce";
  a.consider = inner->consider;
  a.build = [inner](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel& m) {
    split_allreduce(s, t, Group::world(t.size(), rank), 0, kIn, kOut, 0, d.count, m, rank, *inner);
  };
  a.bound = ring_chain_bound(*inner, a.build);
  return a;
}
}  // namespace baobab::algo

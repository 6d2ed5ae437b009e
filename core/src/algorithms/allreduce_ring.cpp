// allreduce / ring: ring reduce-scatter (reduce_scatter_ring.cpp) followed by
// ring allgather (allgather_ring.cpp) of p blocks.
// Cost: 2(p-1) alpha + 2(p-1)/p n beta + (p-1)/p n gamma. Bandwidth-optimal,
// latency linear in p: the choice for large vectors on flat or uniform links.
#include <algorithm>

#include "baobab/simulate.hpp"
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {

void ring_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count) {
  if (g.size() <= 1) return copy_if_needed(s, src, buf, off, count);
  const Blocks b = Blocks::even(count, g.size()).shifted(off);
  ring_reduce_scatter(s, g, src, buf, b);
  ring_allgather(s, g, buf, b);
}

Algorithm allreduce_ring() {
  Algorithm a;
  a.name = "ring";
  a.coll = Coll::allreduce;
  a.summary = "ring reduce-scatter + ring allgather: 2(p-1) a + 2(p-1)/p n b + (p-1)/p n g";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    ring_allreduce(s, Group::world(t.size(), rank), kIn, kOut, 0, d.count);
  };
  // Two bounds, the larger holds:
  //  * a chain: in each of the 2(p-1) rounds every rank receives from its
  //    left neighbour what that neighbour sent once its own round began, so
  //    the earliest end of round k over all ranks is at least the earliest
  //    end of round k-1 plus the least latency of any link and the per-round
  //    overhead. This holds for every segment's lane on its own, so for a
  //    pipelined call too;
  //  * unpipelined: every one of the p-1 reduce-scatter rounds sends to the
  //    right, receives from the left and reduces a block, every allgather
  //    round sends and receives one, and no block is smaller than count / p:
  //    the bound of one round of each kind, with the smallest block, p-1
  //    times (finish_lower_bound of those rounds).
  a.bound = [](const Topology& t, const CollDesc& d, int rank, const CostModel& m, bool pipelined) {
    const int p = t.size();
    if (p <= 1) return 0.0;
    double alpha = m.at(0).alpha;
    for (int L = 1; L <= t.levels(); ++L) alpha = std::min(alpha, m.at(L).alpha);
    const double chain = 2.0 * (p - 1) * (alpha + m.round_overhead);
    if (pipelined) return chain;
    const size_t c = d.count / static_cast<size_t>(p);
    const int right = (rank + 1) % p, left = (rank + p - 1) % p;
    Schedule s;
    s.elem_size = d.elem_size;
    {
      RoundBuilder r(s);
      r.send(right, Ref{kIn, 0}, c);
      r.recv(left, Ref{kOut, 0}, c);
      r.reduce(Ref{kOut, 0}, Ref{kOut, 0}, Ref{kIn, 0}, c);
    }
    {
      RoundBuilder r(s);
      r.send(right, Ref{kOut, 0}, c);
      r.recv(left, Ref{kOut, 0}, c);
    }
    return std::max(chain, static_cast<double>(p - 1) * finish_lower_bound(t, m, s, rank));
  };
  return a;
}

}  // namespace baobab::algo

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
  //  * a chain: in round k every rank receives from its left neighbour what
  //    that neighbour sent when its own round k began, i.e. when its round
  //    k-1 ended; so the end of the last round at `rank` is at least the sum,
  //    over the 2(p-1) edges q -> q+1 that end at it, of the least time of a
  //    message on that edge (message_floor: its latency and time on the
  //    wire), the per-round overhead and, in the p-1 reduce-scatter rounds,
  //    the reduction of the block received. No block is smaller than
  //    count / p. Cut into segments, each segment's lane is such a chain with
  //    its own blocks (at least seg / p), and the call lasts at least as long
  //    as its first lane;
  //  * whole: every one of the p-1 reduce-scatter rounds sends to the
  //    right, receives from the left and reduces a block, every allgather
  //    round sends and receives one: the bound of one round of each kind,
  //    with the smallest block, p-1 times (finish_lower_bound of those
  //    rounds).
  a.bound = [](const Topology& t, const CollDesc& d, int rank, const CostModel& m, size_t seg) {
    const int p = t.size();
    if (p <= 1) return 0.0;
    const size_t lane = seg ? std::min(seg, d.count) : d.count;
    const size_t cb = lane / static_cast<size_t>(p) * d.elem_size;  // bytes of the least block
    const double reduce = static_cast<double>(cb) * (m.dev.on ? m.dev.gamma : m.gamma) +
                          (m.dev.on && cb ? m.dev.latency : 0.0);
    const int K = 2 * (p - 1);
    double chain = 0;
    for (int j = 0; j < K; ++j) {  // round j: the edge into rank - (K-1-j)
      const int to = static_cast<int>(((static_cast<long long>(rank) - (K - 1 - j)) % p + p) % p);
      const int from = (to + p - 1) % p;
      chain += message_floor(t, m, from, to, cb) + m.round_overhead + (j < p - 1 ? reduce : 0.0);
    }
    if (seg) return chain;
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
  a.bound_estimates = true;
  return a;
}

}  // namespace baobab::algo

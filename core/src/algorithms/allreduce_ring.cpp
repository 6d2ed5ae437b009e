// allreduce / ring: ring reduce-scatter (reduce_scatter_ring.cpp) followed by
// ring allgather (allgather_ring.cpp) of p blocks.
// Cost: 2(p-1) alpha + 2(p-1)/p n beta + (p-1)/p n gamma. Bandwidth-optimal,
// latency linear in p: the choice for large vectors on flat or uniform links.
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
  return a;
}

}  // namespace baobab::algo

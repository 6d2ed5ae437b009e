// allreduce / ring: ring reduce-scatter followed by ring allgather.
// Cost: 2(p-1) alpha + 2(p-1)/p n beta + (p-1)/p n gamma. Bandwidth-optimal,
// latency linear in p: the choice for large vectors on flat or uniform links.
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
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

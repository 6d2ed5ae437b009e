// allgather / ring: each block travels p-1 hops around the ring.
// Cost: (p-1) alpha + (p-1)/p n beta (n = the whole output).
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm allgather_ring() {
  Algorithm a;
  a.name = "ring";
  a.coll = Coll::allgather;
  a.summary = "ring of p-1 steps: (p-1) a + (p-1)/p n b";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const Blocks b = Blocks::of(d.counts);
    { RoundBuilder r(s); r.copy(Ref{kOut, b.off[rank]}, Ref{kIn, 0}, b.cnt[rank]); }
    ring_allgather(s, Group::world(t.size(), rank), kOut, b);
  };
  return a;
}
}  // namespace baobab::algo

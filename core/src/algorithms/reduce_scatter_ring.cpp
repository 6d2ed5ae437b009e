// reduce_scatter / ring: the first half of the ring allreduce on a scratch copy.
// Cost: (p-1) alpha + (p-1)/p n beta + (p-1)/p n gamma (n = the whole input).
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm reduce_scatter_ring() {
  Algorithm a;
  a.name = "ring";
  a.coll = Coll::reduce_scatter;
  a.summary = "ring of p-1 steps, each folding one block: (p-1) a + (p-1)/p n b + (p-1)/p n g";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const Blocks b = Blocks::of(d.counts);
    const uint8_t w = s.add_scratch(b.total);
    if (t.size() == 1) { RoundBuilder r(s); r.copy(Ref{w, 0}, Ref{kIn, 0}, b.total); }
    ring_reduce_scatter(s, Group::world(t.size(), rank), kIn, w, b);
    { RoundBuilder r(s); r.copy(Ref{kOut, 0}, Ref{w, b.off[rank]}, b.cnt[rank]); }
  };
  return a;
}
}  // namespace baobab::algo

// reduce_scatter / ring: p-1 steps; at step k member i sends block i-k-1 to
// its right neighbour and folds block i-k-2 received from its left one, so
// afterwards member i's block holds the reduction of everyone's block i.
// Unreduced data is read from the input at first touch (block i-1 is sent raw
// at step 0; every other block is folded exactly once at each rank).
// Cost: (p-1) alpha + (p-1)/p n beta + (p-1)/p n gamma (n = the whole input).
// Also the first half of the ring allreduce and of split_rail.
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {

void ring_reduce_scatter(Schedule& s, const Group& g, uint8_t src, uint8_t buf, const Blocks& b) {
  const int p = g.size(), i = g.me;
  if (p <= 1 || i < 0) return;
  const uint8_t tmp = s.add_scratch(b.max());
  const int right = g[(i + 1) % p], left = g[(i + p - 1) % p];
  for (int k = 0; k < p - 1; ++k) {
    const int si = ((i - k - 1) % p + p) % p, ri = ((i - k - 2) % p + p) % p;
    RoundBuilder r(s);
    r.send(right, Ref{k == 0 ? src : buf, b.off[si]}, b.cnt[si]);
    r.recv(left, Ref{tmp, 0}, b.cnt[ri]);
    r.reduce(Ref{buf, b.off[ri]}, Ref{tmp, 0}, Ref{src, b.off[ri]}, b.cnt[ri]);
  }
}

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

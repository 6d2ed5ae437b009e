// allgather / ring: p-1 steps; at step k member i sends unit i-k to its right
// neighbour and receives unit i-k-1 from its left one, so each unit travels
// p-1 hops around the ring.
// Cost: (p-1) alpha + (p-1)/p n beta (n = the whole output).
// Also the second half of the ring allreduce and of split_rail, and the top of
// allgather / hier (where a unit is a group's blocks, several runs).
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {

namespace {

// Step k of the ring: step(right, left, si, ri) sends unit si right and
// receives unit ri from the left.
template <class Step>
void ring_steps(const Group& g, Step&& step) {
  const int p = g.size(), i = g.me;
  if (p <= 1 || i < 0) return;
  const int right = g[(i + 1) % p], left = g[(i + p - 1) % p];
  for (int k = 0; k < p - 1; ++k) step(right, left, ((i - k) % p + p) % p, ((i - k - 1) % p + p) % p);
}

}  // namespace

void ring_allgather(Schedule& s, const Group& g, uint8_t buf, const std::vector<Extents>& units) {
  ring_steps(g, [&](int right, int left, int si, int ri) {
    ExtentRound r(s);
    r.send(right, buf, units[si]);
    r.recv(left, buf, units[ri]);
  });
}

// One run per unit (the blocks): no list per unit to build.
void ring_allgather(Schedule& s, const Group& g, uint8_t buf, const Blocks& b) {
  ring_steps(g, [&](int right, int left, int si, int ri) {
    RoundBuilder r(s);
    r.send(right, Ref{buf, b.off[si]}, b.cnt[si]);
    r.recv(left, Ref{buf, b.off[ri]}, b.cnt[ri]);
  });
}

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

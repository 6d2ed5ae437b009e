// bcast / binomial: binomial tree from the root. Member v (relative to the
// root) receives from v - lowbit(v), then sends to v + 2^j for every 2^j below
// lowbit(v), largest first.
// Cost: ceil(log2 p)(alpha + n beta). Large messages are pipelined in segments
// (each segment an independent tree, several in flight), which brings the
// critical path towards (ceil(log2 p) + S - 1)(alpha + n/S beta).
// Also the last step of the hierarchical bcast, allgather and barrier.
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {

void binomial_bcast(Schedule& s, const Group& g, uint8_t buf, const Extents& e, int root) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return;
  const int v = (g.me - root + p) % p;
  auto real = [&](int x) { return g[(x + root) % p]; };
  int mask = 1;
  while (mask < p) {
    if (v & mask) {
      ExtentRound r(s);
      r.recv(real(v - mask), buf, e);
      break;
    }
    mask <<= 1;
  }
  mask >>= 1;
  while (mask > 0) {
    if (v + mask < p) {
      ExtentRound r(s);
      r.send(real(v + mask), buf, e);
    }
    mask >>= 1;
  }
}

Algorithm bcast_binomial() {
  Algorithm a;
  a.name = "binomial";
  a.coll = Coll::bcast;
  a.segmentable = true;
  a.summary = "binomial tree: ceil(log2 p)(a + n b), pipelined in segments";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    if (rank == d.root) { RoundBuilder r(s); r.copy(Ref{kOut, 0}, Ref{kIn, 0}, d.count); }
    binomial_bcast(s, Group::world(t.size(), rank), kOut, Extents{Span{0, d.count}}, d.root);
  };
  return a;
}

}  // namespace baobab::algo

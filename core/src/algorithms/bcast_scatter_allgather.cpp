// bcast / scatter_allgather (van de Geijn): binomial scatter of p blocks from
// the root (the subtree of relative index v receives blocks [v, v + lowbit(v))),
// then a ring allgather in relative order, so block j is owned by rank root+j.
// Cost: (ceil(log2 p) + p - 1) alpha + 2 (p-1)/p n beta: the choice for large
// messages on many ranks.
#include <algorithm>

#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {
namespace {

// Binomial scatter of block j (relative index j = (member - root) mod p) from root.
// Cost: ceil(log2 p) alpha + (p-1)/p n beta.
void binomial_scatter(Schedule& s, const Group& g, uint8_t buf, const Blocks& rel, int root) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return;
  const int v = (g.me - root + p) % p;
  auto real = [&](int x) { return g[(x + root) % p]; };
  auto span = [&](int lo, int hi) {
    hi = std::min(hi, p);
    return Extents{Span{rel.off[lo], rel.off[hi - 1] + rel.cnt[hi - 1] - rel.off[lo]}};
  };
  int mask = 1;
  while (mask < p) {
    if (v & mask) {
      ExtentRound r(s);
      r.recv(real(v - mask), buf, span(v, v + mask));
      break;
    }
    mask <<= 1;
  }
  mask >>= 1;
  while (mask > 0) {
    if (v + mask < p) {
      ExtentRound r(s);
      r.send(real(v + mask), buf, span(v + mask, v + 2 * mask));
    }
    mask >>= 1;
  }
}

}  // namespace

Algorithm bcast_scatter_allgather() {
  Algorithm a;
  a.name = "scatter_allgather";
  a.coll = Coll::bcast;
  a.summary = "binomial scatter + ring allgather: (log2 p + p - 1) a + 2(p-1)/p n b";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const int p = t.size();
    if (rank == d.root) { RoundBuilder r(s); r.copy(Ref{kOut, 0}, Ref{kIn, 0}, d.count); }
    const Blocks rel = Blocks::even(d.count, p);
    Group g = Group::world(p, rank);
    binomial_scatter(s, g, kOut, rel, d.root);
    std::vector<int> order(p);
    for (int j = 0; j < p; ++j) order[j] = (d.root + j) % p;
    ring_allgather(s, Group(order, rank), kOut, rel);
  };
  return a;
}

}  // namespace baobab::algo

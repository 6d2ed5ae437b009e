// reduce / binomial: binomial tree towards the root. Member v (relative to the
// root) receives and folds the partial results of v + 2^j for every 2^j below
// lowbit(v), smallest first, then sends its own to v - lowbit(v).
// Cost: ceil(log2 p)(alpha + n beta + n gamma); pipelined in segments.
// Also the first step of the hierarchical reduce and of allreduce / leader.
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {

void binomial_reduce(Schedule& s, const Group& g, uint8_t buf, const Extents& e, int root) {
  binomial_reduce(s, g, buf, buf, e, root);
}

bool binomial_reduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, const Extents& e, int root) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return src == buf;
  bool fresh = src != buf;
  const int v = (g.me - root + p) % p;
  auto real = [&](int x) { return g[(x + root) % p]; };
  const size_t n = total(e);
  uint8_t tmp = 0;
  bool have_tmp = false;
  for (int mask = 1; mask < p; mask <<= 1) {
    if ((v & mask) == 0) {
      const int child = v | mask;
      if (child >= p) continue;
      if (!have_tmp) {
        tmp = s.add_scratch(n);
        have_tmp = true;
      }
      Extents te{Span{0, n}};
      ExtentRound r(s);
      r.recv(real(child), tmp, te);
      size_t t = 0;
      for (auto sp : e) {
        r.b().reduce(Ref{buf, sp.off}, Ref{fresh ? src : buf, sp.off}, Ref{tmp, t}, sp.len);
        t += sp.len;
      }
      fresh = false;
    } else {
      ExtentRound r(s);
      r.send(real(v - mask), fresh ? src : buf, e);
      break;
    }
  }
  return !fresh;
}

Algorithm reduce_binomial() {
  Algorithm a;
  a.name = "binomial";
  a.coll = Coll::reduce;
  a.segmentable = true;
  a.summary = "binomial tree: ceil(log2 p)(a + n b + n g), pipelined in segments";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    // Leaves send their input directly; inner nodes fold into w (out at the root).
    const bool inner = t.size() > 1 && (((rank - d.root + t.size()) % t.size()) % 2 == 0);
    const uint8_t w = rank == d.root ? uint8_t{kOut} : (inner ? s.add_scratch(d.count) : uint8_t{kIn});
    const bool written = binomial_reduce(s, Group::world(t.size(), rank), kIn, w, Extents{Span{0, d.count}}, d.root);
    if (rank == d.root && !written) { RoundBuilder r(s); r.copy(Ref{kOut, 0}, Ref{kIn, 0}, d.count); }
  };
  return a;
}

}  // namespace baobab::algo

// allgather / recursive_doubling: log2(p) exchanges of doubling block ranges.
// Cost: log2(p) alpha + (p-1)/p n beta. Power-of-two only.
#include "registry.hpp"

namespace baobab::algo {
Algorithm allgather_recursive_doubling() {
  Algorithm a;
  a.name = "recursive_doubling";
  a.coll = Coll::allgather;
  a.summary = "pairwise exchange of doubling ranges: log2(p) a + (p-1)/p n b; power-of-two rank counts";
  a.unsupported = needs_pow2;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const Blocks b = Blocks::of(d.counts);
    const int p = t.size();
    { RoundBuilder r(s); r.copy(Ref{kOut, b.off[rank]}, Ref{kIn, 0}, b.cnt[rank]); }
    auto span = [&](int lo, int hi) { return Span{b.off[lo], b.off[hi - 1] + b.cnt[hi - 1] - b.off[lo]}; };
    for (int mask = 1; mask < p; mask <<= 1) {
      const int partner = rank ^ mask;
      const int mylo = rank & ~(mask - 1), plo = partner & ~(mask - 1);
      const Span mine = span(mylo, mylo + mask), theirs = span(plo, plo + mask);
      RoundBuilder r(s);
      r.send(partner, Ref{kOut, mine.off}, mine.len);
      r.recv(partner, Ref{kOut, theirs.off}, theirs.len);
    }
  };
  return a;
}
}  // namespace baobab::algo

// reduce_scatter / halving: recursive halving; at each step a rank keeps the
// half of its current block range that holds its own block and sends the other.
// Cost: log2(p) alpha + (p-1)/p n beta + (p-1)/p n gamma. Power-of-two only.
#include "registry.hpp"

namespace baobab::algo {
Algorithm reduce_scatter_halving() {
  Algorithm a;
  a.name = "halving";
  a.coll = Coll::reduce_scatter;
  a.summary = "recursive halving: log2(p) a + (p-1)/p n b + (p-1)/p n g; power-of-two rank counts";
  a.unsupported = needs_pow2;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const Blocks b = Blocks::of(d.counts);
    const int p = t.size();
    const uint8_t w = s.add_scratch(b.total);
    const uint8_t tmp = s.add_scratch(b.total);
    { RoundBuilder r(s); r.copy(Ref{w, 0}, Ref{kIn, 0}, b.total); }
    auto span = [&](int lo, int hi) { return Span{b.off[lo], b.off[hi - 1] + b.cnt[hi - 1] - b.off[lo]}; };
    int lo = 0, hi = p;
    for (int mask = p / 2; mask >= 1; mask >>= 1) {
      const int partner = rank ^ mask, mid = lo + (hi - lo) / 2;
      const bool upper = (rank & mask) != 0;
      const Span keep = upper ? span(mid, hi) : span(lo, mid);
      const Span give = upper ? span(lo, mid) : span(mid, hi);
      RoundBuilder r(s);
      r.send(partner, Ref{w, give.off}, give.len);
      r.recv(partner, Ref{tmp, 0}, keep.len);
      if (partner < rank) r.reduce(Ref{w, keep.off}, Ref{tmp, 0}, Ref{w, keep.off}, keep.len);
      else r.reduce(Ref{w, keep.off}, Ref{w, keep.off}, Ref{tmp, 0}, keep.len);
      if (upper) lo = mid;
      else hi = mid;
    }
    { RoundBuilder r(s); r.copy(Ref{kOut, 0}, Ref{w, b.off[rank]}, b.cnt[rank]); }
  };
  return a;
}
}  // namespace baobab::algo

// allreduce / rabenseifner: reduce-scatter by recursive halving (at each step
// a member keeps the half of its block range that holds its own blocks and
// sends the other half to its partner), then allgather by recursive doubling,
// among the p2 survivors of the non-power-of-two fold (fold.hpp).
// Cost: 2 log2(p) alpha + 2(p-1)/p n beta + (p-1)/p n gamma [+ fold].
// Bandwidth-optimal with logarithmic latency: the choice for medium vectors.
#include <algorithm>

#include "flat.hpp"
#include "fold.hpp"
#include "pow2.hpp"
#include "registry.hpp"

namespace baobab::algo {

void rabenseifner_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count) {
  if (g.me < 0) return;
  if (g.size() <= 1) return copy_if_needed(s, src, buf, off, count);
  const int p2 = floor_pow2(g.size());
  // Blocks::even(count, p2) shifted by off, in closed form: block i starts
  // at off + i base + min(i, extra) (no O(p) table per rank's schedule).
  const size_t base = count / static_cast<size_t>(p2), extra = count % static_cast<size_t>(p2);
  auto start = [&](int i) {
    const auto u = static_cast<size_t>(i);
    return off + u * base + std::min(u, extra);
  };
  const uint8_t tmp = s.add_scratch(count);  // the fold receives everything
  bool fresh = true;
  Fold f = fold_in(s, g, src, buf, off, count, tmp, fresh);
  auto span = [&](int lo, int hi) { return Span{start(lo), start(hi) - start(lo)}; };
  if (f.newidx >= 0) {
    const int v = f.newidx;
    int lo = 0, hi = p2;
    for (int mask = p2 / 2; mask >= 1; mask >>= 1) {
      const int partner = v ^ mask;
      const int peer = g[f.real(partner)];
      const int mid = lo + (hi - lo) / 2;
      const bool upper = (v & mask) != 0;
      const Span keep = upper ? span(mid, hi) : span(lo, mid);
      const Span give = upper ? span(lo, mid) : span(mid, hi);
      const uint8_t cur = fresh ? src : buf;
      RoundBuilder r(s);
      r.send(peer, Ref{cur, give.off}, give.len);
      r.recv(peer, Ref{tmp, 0}, keep.len);
      if (partner < v) r.reduce(Ref{buf, keep.off}, Ref{tmp, 0}, Ref{cur, keep.off}, keep.len);
      else r.reduce(Ref{buf, keep.off}, Ref{cur, keep.off}, Ref{tmp, 0}, keep.len);
      fresh = false;
      if (upper) lo = mid;
      else hi = mid;
    }
    for (int mask = 1; mask < p2; mask <<= 1) {
      const int partner = v ^ mask;
      const int peer = g[f.real(partner)];
      const int mylo = v & ~(mask - 1), plo = partner & ~(mask - 1);
      const Span mine = span(mylo, mylo + mask), theirs = span(plo, plo + mask);
      RoundBuilder r(s);
      r.send(peer, Ref{buf, mine.off}, mine.len);
      r.recv(peer, Ref{buf, theirs.off}, theirs.len);
    }
  }
  fold_out(s, g, buf, off, count);
}

Algorithm allreduce_rabenseifner() {
  Algorithm a;
  a.name = "rabenseifner";
  a.coll = Coll::allreduce;
  a.summary = "halving reduce-scatter + doubling allgather: 2 log2(p) a + 2(p-1)/p n b + (p-1)/p n g";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    rabenseifner_allreduce(s, Group::world(t.size(), rank), kIn, kOut, 0, d.count);
  };
  return a;
}

}  // namespace baobab::algo

// allreduce / recursive_doubling: log2(p) pairwise exchanges of the whole
// vector; at step k member v exchanges with v XOR 2^k and both reduce (lower
// index on the left, so both compute the same bits). Non-powers of two fold
// the first 2*rem members in pairs first (fold.hpp).
// Cost: ceil(log2 p) (alpha + n beta + n gamma) [+ 2(alpha + n beta) + n gamma].
// Latency-optimal: the choice for small vectors.
#include "flat.hpp"
#include "fold.hpp"
#include "registry.hpp"

namespace baobab::algo {

void rd_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count) {
  if (g.me < 0) return;
  if (g.size() <= 1) return copy_if_needed(s, src, buf, off, count);
  const uint8_t tmp = s.add_scratch(count);
  bool fresh = true;
  Fold f = fold_in(s, g, src, buf, off, count, tmp, fresh);
  if (f.newidx >= 0) {
    for (int mask = 1; mask < f.p2; mask <<= 1) {
      const int partner = f.newidx ^ mask;
      const int peer = g[f.real(partner)];
      const uint8_t cur = fresh ? src : buf;
      RoundBuilder r(s);
      r.send(peer, Ref{cur, off}, count);
      r.recv(peer, Ref{tmp, 0}, count);
      if (partner < f.newidx) r.reduce(Ref{buf, off}, Ref{tmp, 0}, Ref{cur, off}, count);
      else r.reduce(Ref{buf, off}, Ref{cur, off}, Ref{tmp, 0}, count);
      fresh = false;
    }
  }
  if (fresh) copy_if_needed(s, src, buf, off, count);
  fold_out(s, g, buf, off, count);
}

Algorithm allreduce_recursive_doubling() {
  Algorithm a;
  a.name = "recursive_doubling";
  a.coll = Coll::allreduce;
  a.summary = "pairwise exchange of the whole vector: log2(p) (a + n b + n g)";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    rd_allreduce(s, Group::world(t.size(), rank), kIn, kOut, 0, d.count);
  };
  return a;
}

}  // namespace baobab::algo

// reduce / rs_gather (Rabenseifner's reduce): ring reduce-scatter, then every
// rank sends its reduced block to the root.
// Cost: p alpha + 2 (p-1)/p n beta + (p-1)/p n gamma: for large vectors.
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm reduce_rs_gather() {
  Algorithm a;
  a.name = "rs_gather";
  a.coll = Coll::reduce;
  a.summary = "ring reduce-scatter + gather to root: p a + 2(p-1)/p n b + (p-1)/p n g";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const uint8_t w = rank == d.root ? uint8_t{kOut} : s.add_scratch(d.count);
    const int p = t.size();
    if (p == 1) { RoundBuilder r(s); r.copy(Ref{w, 0}, Ref{kIn, 0}, d.count); }
    const Blocks b = Blocks::even(d.count, p);
    Group g = Group::world(p, rank);
    ring_reduce_scatter(s, g, kIn, w, b);
    std::vector<Extents> units(p);
    for (int i = 0; i < p; ++i) units[i] = {Span{b.off[i], b.cnt[i]}};
    linear_gather(s, g, w, units, d.root);
  };
  return a;
}
}  // namespace baobab::algo

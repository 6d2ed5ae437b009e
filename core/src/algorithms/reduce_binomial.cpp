// reduce / binomial: binomial tree towards the root.
// Cost: ceil(log2 p)(alpha + n beta + n gamma); pipelined in segments.
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
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

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
    const uint8_t w = rank == d.root ? uint8_t{kOut} : s.add_scratch(d.count);
    { RoundBuilder r(s); r.copy(Ref{w, 0}, Ref{kIn, 0}, d.count); }
    binomial_reduce(s, Group::world(t.size(), rank), w, Extents{Span{0, d.count}}, d.root);
  };
  return a;
}
}  // namespace baobab::algo

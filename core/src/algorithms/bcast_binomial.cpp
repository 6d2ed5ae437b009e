// bcast / binomial: binomial tree from the root.
// Cost: ceil(log2 p)(alpha + n beta). Large messages are pipelined in segments
// (each segment an independent tree, several in flight), which brings the
// critical path towards (ceil(log2 p) + S - 1)(alpha + n/S beta).
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
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

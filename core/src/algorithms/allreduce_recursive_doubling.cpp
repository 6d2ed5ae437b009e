// allreduce / recursive_doubling: log2(p) pairwise exchanges of the whole
// vector; non-powers of two fold the first 2*rem ranks in pairs first.
// Cost: ceil(log2 p) (alpha + n beta + n gamma) [+ 2(alpha + n beta) + n gamma].
// Latency-optimal: the choice for small vectors.
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
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

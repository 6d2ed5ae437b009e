// barrier / dissemination: in round k rank i signals i + 2^k and waits for
// i - 2^k. Cost: ceil(log2 p) alpha, any p.
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm barrier_dissemination() {
  Algorithm a;
  a.name = "dissemination";
  a.coll = Coll::barrier;
  a.summary = "ceil(log2 p) rounds of zero-byte messages";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc&, int rank, const CostModel&) {
    dissemination(s, Group::world(t.size(), rank));
  };
  return a;
}
}  // namespace baobab::algo

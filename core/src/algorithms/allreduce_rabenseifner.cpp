// allreduce / rabenseifner: reduce-scatter by recursive halving, allgather by
// recursive doubling (with the non-power-of-two fold).
// Cost: 2 log2(p) alpha + 2(p-1)/p n beta + (p-1)/p n gamma.
// Bandwidth-optimal with logarithmic latency: the choice for medium vectors.
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
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

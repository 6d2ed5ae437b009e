// bcast / scatter_allgather (van de Geijn): binomial scatter of p blocks from
// the root, then a ring allgather.
// Cost: (ceil(log2 p) + p - 1) alpha + 2 (p-1)/p n beta: the choice for large
// messages on many ranks.
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm bcast_scatter_allgather() {
  Algorithm a;
  a.name = "scatter_allgather";
  a.coll = Coll::bcast;
  a.summary = "binomial scatter + ring allgather: (log2 p + p - 1) a + 2(p-1)/p n b";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const int p = t.size();
    if (rank == d.root) { RoundBuilder r(s); r.copy(Ref{kOut, 0}, Ref{kIn, 0}, d.count); }
    // Block j belongs to the rank at relative position j from the root.
    const Blocks rel = Blocks::even(d.count, p);
    Group g = Group::world(p, rank);
    binomial_scatter(s, g, kOut, rel, d.root);
    // Ring allgather in relative order, so block j is owned by rank root+j.
    std::vector<int> order(p);
    for (int j = 0; j < p; ++j) order[j] = (d.root + j) % p;
    ring_allgather(s, Group(order, rank), kOut, rel);
  };
  return a;
}
}  // namespace baobab::algo

// allreduce / weighted: direct reduce-scatter and allgather whose blocks are
// sized to each rank's link. Rank i owns b_i elements; it sends and receives
// n + (p-2) b_i bytes each way (a ring moves 2(p-1)/p n on every link, so the
// slowest link paces everyone). With node links of rates r_i, b_i is chosen so
// that every rank finishes at the same time T = (n + (p-2) b_i) / r_i, a rank
// whose link is too slow for that owning nothing: it becomes a leaf of one
// owner, to which it sends its input and from which it takes the result, so
// its link carries n each way on one flow, the least any allreduce can ask of
// it (several flows converging on a slow link lose packets and time).
// Cost: 2 rounds of p-1 messages + max_i (n + (p-2) b_i) beta_i + (p-1) b_max gamma.
// Equal links: the blocks are even and the traffic that of the ring. Only
// considered automatically where node links differ (tuned or declared rates);
// BAOBAB_ALGO / algo= can force it anywhere.
#include "build.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm allreduce_weighted() {
  Algorithm a;
  a.name = "weighted";
  a.coll = Coll::allreduce;
  a.segmentable = false;  // pipelined inside (weighted_allreduce)
  a.summary = "direct reduce-scatter + allgather, blocks sized to each rank's link rate";
  a.unsupported = always;
  a.consider = [](const Topology& t, const CostModel& m) -> std::string {
    std::vector<int> all(t.size());
    for (int r = 0; r < t.size(); ++r) all[r] = r;
    return m.uneven_links(all) ? "" : "not considered: every node link has the same rate";
  };
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel& m) {
    Group g = Group::world(t.size(), rank);
    // Ranks of one node share its link: each gets its share of the rate.
    std::vector<double> beta(t.size());
    for (int r = 0; r < t.size(); ++r) beta[r] = m.node_link_beta(r) * t.local_size(r);
    weighted_allreduce(s, g, kIn, kOut, 0, d.count, beta);
  };
  return a;
}
}  // namespace baobab::algo

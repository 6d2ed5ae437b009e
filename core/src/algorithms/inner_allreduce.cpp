// The flat allreduces a composition can embed (inner_allreduce.hpp). Their
// bodies and costs are in their own files (flat.hpp says which).
#include "inner_allreduce.hpp"

#include <algorithm>

#include "baobab/simulate.hpp"
#include "flat.hpp"
#include "weighted_blocks.hpp"

namespace baobab::algo {

const std::vector<InnerAllreduce>& inner_allreduces() {
  static const std::vector<InnerAllreduce> all = {
      {"recursive_doubling",
       [](Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count, const CostModel&, int) {
         rd_allreduce(s, g, src, buf, off, count);
       },
       nullptr},
      {"rabenseifner",
       [](Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count, const CostModel&, int) {
         rabenseifner_allreduce(s, g, src, buf, off, count);
       },
       nullptr},
      {"ring",
       [](Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count, const CostModel&, int) {
         ring_allreduce(s, g, src, buf, off, count);
       },
       nullptr},
      // Blocks sized to the members' node links (and, above level 1, no faster
      // than the uplinks the group spans); equal links give even blocks.
      {"weighted",
       [](Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count, const CostModel& m,
          int level) { weighted_allreduce(s, g, src, buf, off, count, member_betas(g, m, level)); },
       consider_uneven_links},
  };
  return all;
}

std::function<double(const Topology&, const CollDesc&, int, const CostModel&, size_t)> ring_chain_bound(
    const InnerAllreduce& inner, std::function<void(Schedule&, const Topology&, const CollDesc&, int, const CostModel&)> build) {
  if (inner.name != "ring") return nullptr;
  return [build](const Topology& t, const CollDesc& d, int rank, const CostModel& m, size_t seg) {
    // neighbours on the ring are in different top-level groups: their link
    // is the top level's (a message between ranks of one host too is priced
    // with its level's latency)
    const int q = t.levels() >= 1 ? t.num_groups(t.levels() - 1) : 1;
    const double chain = q > 1 ? 2.0 * (q - 1) * (m.at(t.levels()).alpha + m.round_overhead) : 0.0;
    if (seg) return chain;
    Schedule s;
    s.elem_size = d.elem_size;
    build(s, t, d, rank, m);
    return std::max(chain, finish_lower_bound(t, m, s, rank));
  };
}

}  // namespace baobab::algo

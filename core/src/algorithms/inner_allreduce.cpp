// The flat allreduces a composition can embed (inner_allreduce.hpp). Their
// bodies and costs are in their own files (flat.hpp says which).
#include "inner_allreduce.hpp"

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

}  // namespace baobab::algo

// Linear gather, a building block (no gather collective uses it alone): every
// member sends its unit to the root in one round, the root posts every receive
// at once. Cost: alpha + (p-1)/p n beta at the root's link.
// Used by allgather / hier (into the group leader), reduce / rs_gather (the
// reduced blocks to the root) and barrier / hier (check-in, empty units).
#include "flat.hpp"

namespace baobab::algo {

void linear_gather(Schedule& s, const Group& g, uint8_t buf, const std::vector<Extents>& units, int root) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return;
  ExtentRound r(s);
  if (g.me == root) {
    for (int i = 0; i < p; ++i)
      if (i != root) r.recv(g[i], buf, units[i]);
  } else {
    r.send(g[root], buf, units[g.me]);
  }
}

}  // namespace baobab::algo

// The closed-form choice of the flat allreduce that split_rail and leader run
// among their groups (flat.hpp). Costs use p members, n bytes, and the
// alpha/beta/gamma of the link level the group spans.
#include <algorithm>
#include <cmath>

#include "flat.hpp"
#include "pow2.hpp"
#include "weighted_blocks.hpp"

namespace baobab::algo {

void best_flat_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count,
                         const CostModel& m, int level) {
  const int p = g.size();
  if (g.me < 0) return;
  if (p <= 1) return copy_if_needed(s, src, buf, off, count);
  LinkParams lp = m.at(level);
  const bool uneven = level >= 1 && m.uneven_links(g.ranks);
  std::vector<double> beta;
  if (level >= 1 && !m.node_beta.empty()) {
    beta = member_betas(g, m, level);
    lp.beta = *std::max_element(beta.begin(), beta.end());  // the slowest member paces the others
  }
  const double n = static_cast<double>(count * s.elem_size);
  const int p2 = floor_pow2(p);
  const double logp = std::log2(static_cast<double>(p2));
  const double fold = p2 == p ? 0.0 : 2 * (lp.alpha + n * lp.beta) + n * m.gamma;
  const double rd = logp * (lp.alpha + n * lp.beta + n * m.gamma) + fold;
  const double rab = 2 * logp * lp.alpha + 2.0 * (p2 - 1) / p2 * n * lp.beta + 1.0 * (p2 - 1) / p2 * n * m.gamma + fold;
  const double ring = 2.0 * (p - 1) * lp.alpha + 2.0 * (p - 1) / p * n * lp.beta + 1.0 * (p - 1) / p * n * m.gamma;
  if (uneven && p > 2) {
    Blocks wb = weighted_blocks(count, beta);
    double slowest = 0;
    for (int i = 0; i < p; ++i)
      slowest = std::max(slowest, (n + (p - 2) * static_cast<double>(wb.cnt[i] * s.elem_size)) * beta[i]);
    const double direct = 2 * (p - 1) * lp.alpha + slowest + (p - 1) * static_cast<double>(wb.max() * s.elem_size) * m.gamma;
    if (direct < std::min({rd, rab, ring})) return weighted_allreduce(s, g, src, buf, off, count, beta);
  }
  if (rd <= rab && rd <= ring) rd_allreduce(s, g, src, buf, off, count);
  else if (rab <= ring) rabenseifner_allreduce(s, g, src, buf, off, count);
  else ring_allreduce(s, g, src, buf, off, count);
}

}  // namespace baobab::algo

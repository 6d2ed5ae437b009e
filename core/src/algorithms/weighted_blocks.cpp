// Blocks sized to link rates (weighted_blocks.hpp).
#include "weighted_blocks.hpp"

#include <algorithm>

namespace baobab::algo {

Blocks weighted_blocks(size_t count, const std::vector<double>& beta) {
  const int p = static_cast<int>(beta.size());
  const double lo = *std::min_element(beta.begin(), beta.end()), hi = *std::max_element(beta.begin(), beta.end());
  if (p <= 2 || count == 0 || !(lo > 0) || hi <= 1.1 * lo) return Blocks::even(count, p);
  const double n = static_cast<double>(count);
  auto share = [&](double T, int i) { return std::max(0.0, (T / beta[i] - n) / (p - 2)); };
  auto cover = [&](double T) {
    double c = 0;
    for (int i = 0; i < p; ++i) c += share(T, i);
    return c;
  };
  double a = n * lo, z = (p - 1) * n * hi;  // cover(a) = 0, cover(z) >= p n
  for (int it = 0; it < 100; ++it) {
    const double mid = 0.5 * (a + z);
    (cover(mid) < n ? a : z) = mid;
  }
  // Round down, then hand the leftover elements to the largest remainders.
  std::vector<size_t> cnt(p);
  std::vector<std::pair<double, int>> rest(p);
  const double scale = n / cover(z);
  size_t used = 0;
  for (int i = 0; i < p; ++i) {
    const double want = share(z, i) * scale;
    cnt[i] = std::min(count, static_cast<size_t>(want));
    used += cnt[i];
    rest[i] = {want - static_cast<double>(cnt[i]), -i};
  }
  std::sort(rest.rbegin(), rest.rend());
  for (int k = 0; used < count; k = (k + 1) % p, ++used) ++cnt[-rest[k].second];  // floors sum to <= count
  return Blocks::of(cnt);
}

std::vector<double> member_betas(const Group& g, const CostModel& m, int level) {
  std::vector<double> beta(g.size());
  // above level 1 the group's uplinks are hops too; at level 1 the node links are all
  const double floor_beta = level >= 2 ? m.at(level).beta : 0.0;
  for (int i = 0; i < g.size(); ++i) beta[i] = std::max(floor_beta, m.node_link_beta(g[i]));
  return beta;
}

std::string consider_uneven_links(const Topology& t, const CostModel& m) {
  std::vector<int> all(t.size());
  for (int r = 0; r < t.size(); ++r) all[r] = r;
  return m.uneven_links(all) ? "" : "not considered: every node link has the same rate";
}

}  // namespace baobab::algo

// allreduce / weighted: direct reduce-scatter and allgather whose blocks are
// sized to each rank's link (weighted_blocks.hpp). Rank i owns b_i elements; it
// sends and receives n + (p-2) b_i bytes each way (a ring moves 2(p-1)/p n on
// every link, so the slowest link paces everyone). With node links of rates
// r_i, b_i is chosen so that every rank finishes at the same time
// T = (n + (p-2) b_i) / r_i, a rank whose link is too slow for that owning
// nothing: it becomes a leaf of one owner, to which it sends its input and from
// which it takes the result, so its link carries n each way on one flow, the
// least any allreduce can ask of it (several flows converging on a slow link
// lose packets and time).
// Steps, pipelined in k chunks of the vector: round r runs leaves -> partner on
// chunk r (folded there), the reduce-scatter among owners on chunk r-1 (every
// owner sends each owner its piece), the allgather among them on r-2 and
// partner -> leaves on r-3, so every link carries both directions at once.
// Cost: 2 rounds of p-1 messages + max_i (n + (p-2) b_i) beta_i + (p-1) b_max gamma
// (a leaf: n beta_i). Equal links: the blocks are even and the traffic that of
// the ring. Only considered automatically where node links differ (tuned or
// declared rates); BAOBAB_ALGO / algo= can force it anywhere.
#include <algorithm>

#include "flat.hpp"
#include "registry.hpp"
#include "weighted_blocks.hpp"

namespace baobab::algo {

namespace {

// The allreduce with blocks b (their total is the count).
void blocks_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, Blocks b,
                      const std::vector<double>& beta) {
  const int p = g.size(), i = g.me;
  const size_t count = b.total;
  if (i < 0) return;
  if (p <= 1) return copy_if_needed(s, src, buf, off, count);
  b = b.shifted(off);
  // Leaves (members that own nothing) hand their input to one partner each
  // and take the result back from it: one flow each way on the slow link.
  // Partners are the owners, fastest first, in turn.
  std::vector<int> owners;
  for (int j = 0; j < p; ++j)
    if (b.cnt[j]) owners.push_back(j);
  if (owners.empty()) owners.push_back(0);  // count == 0
  std::stable_sort(owners.begin(), owners.end(), [&](int x, int y) { return beta[x] < beta[y]; });
  std::vector<int> partner(p, -1);
  std::vector<std::vector<int>> leaves_of(p);
  for (int j = 0, next = 0; j < p; ++j)
    if (!b.cnt[j] && !(owners.size() == 1 && owners[0] == j)) {
      partner[j] = owners[next++ % owners.size()];
      leaves_of[partner[j]].push_back(j);
    }
  const bool leaf = partner[i] >= 0, core_i = !leaf;
  auto core = [&](int j) { return partner[j] < 0; };
  // Software pipeline over k chunks of the region. Chunk c goes through four
  // stages in consecutive rounds: 0 leaves -> partner (folded there), 1 the
  // reduce-scatter among owners (every core member sends each owner its piece
  // of the chunk), 2 the allgather among them, 3 partner -> leaves. Round r
  // runs stage q on chunk r - q, so every link carries both directions at once.
  const size_t bytes = count * s.elem_size;
  bool any_leaf = false;
  for (int j = 0; j < p; ++j) any_leaf = any_leaf || partner[j] >= 0;
  const size_t grain = any_leaf ? (size_t{256} << 10) : (size_t{64} << 10) * p;
  const int k = static_cast<int>(std::clamp<size_t>(bytes / grain, 1, any_leaf ? 64 : 16));
  auto piece = [&](int j, int c) {  // chunk c of block j: (offset, count)
    const size_t n = b.cnt[j], lo = n * c / k, hi = n * (c + 1) / k;
    return std::pair<size_t, size_t>{b.off[j] + lo, hi - lo};
  };
  size_t most = 0, chunk_most = 0;
  for (int c = 0; c < k; ++c) {
    most = std::max(most, piece(i, c).second);
    size_t all = 0;
    for (int j = 0; j < p; ++j) all += piece(j, c).second;
    chunk_most = std::max(chunk_most, all);
  }
  int ncore = 0;
  for (int j = 0; j < p; ++j) ncore += core(j);
  const uint8_t tmp = core_i && most && ncore > 1 ? s.add_scratch(most * (ncore - 1)) : 0;
  const uint8_t ltmp = core_i && !leaves_of[i].empty() ? s.add_scratch(chunk_most * leaves_of[i].size()) : 0;
  // Core member j's contribution lands in slot j (core members other than i, in order).
  std::vector<int> slot_of(p, -1);
  for (int j = 0, q = 0; j < p; ++j)
    if (core(j) && j != i) slot_of[j] = q++;
  // After stage 0 a partner's contribution (its own plus its leaves') is in buf.
  const uint8_t mine = core_i && !leaves_of[i].empty() ? buf : src;
  const int stages = any_leaf ? 4 : 2, first = any_leaf ? 0 : 1;
  for (int r = 0; r < k + stages - 1; ++r) {
    RoundBuilder rb(s);
    // Stages 3 and 0 first: messages on the slow links are posted before the rest.
    for (int q : {3, 0, 1, 2}) {
      if (q < first || q >= first + stages) continue;
      const int c = r - (q - first);
      if (c < 0 || c >= k) continue;
      if (q == 0) {  // leaves -> partner: the whole chunk, every block's piece
        if (leaf) {
          for (int j = 0; j < p; ++j)
            if (auto [o, n] = piece(j, c); n) rb.send(g[partner[i]], Ref{src, o}, n);
        } else {
          for (size_t l = 0; l < leaves_of[i].size(); ++l) {
            size_t at = 0;
            for (int j = 0; j < p; ++j)
              if (auto [o, n] = piece(j, c); n) {
                rb.recv(g[leaves_of[i][l]], Ref{ltmp, l * chunk_most + at}, n);
                at += n;
              }
          }
          size_t at = 0;
          for (int j = 0; j < p; ++j)
            if (auto [o, n] = piece(j, c); n) {
              Ref acc{src, o};
              for (size_t l = 0; l < leaves_of[i].size(); ++l) {
                rb.reduce(Ref{buf, o}, acc, Ref{ltmp, l * chunk_most + at}, n);
                acc = Ref{buf, o};
              }
              at += n;
            }
        }
      } else if (q == 1 && core_i) {  // reduce-scatter among the core
        for (int d = 1; d < p; ++d) {  // staggered: members do not all start on the same peer
          const int j = (i + d) % p;
          if (auto [o, n] = piece(j, c); n && core(j)) rb.send(g[j], Ref{mine, o}, n);
        }
        if (auto [o, n] = piece(i, c); n) {
          for (int j = 0; j < p; ++j)
            if (j != i && core(j)) rb.recv(g[j], Ref{tmp, slot_of[j] * most}, n);
          Ref acc{mine, o};  // own contribution first: it may be in buf already
          for (int j = 0; j < p; ++j)
            if (j != i && core(j)) {
              rb.reduce(Ref{buf, o}, acc, Ref{tmp, slot_of[j] * most}, n);
              acc = Ref{buf, o};
            }
        }
      } else if (q == 2 && core_i) {  // allgather among the core
        auto [o, n] = piece(i, c);
        for (int d = 1; d < p && n; ++d)
          if (core((i + d) % p)) rb.send(g[(i + d) % p], Ref{buf, o}, n);
        for (int j = 0; j < p; ++j)
          if (auto [oj, nj] = piece(j, c); j != i && nj && core(j)) rb.recv(g[j], Ref{buf, oj}, nj);
      } else if (q == 3) {  // partner -> leaves
        for (int j = 0; j < p; ++j) {
          auto [o, n] = piece(j, c);
          if (!n) continue;
          if (leaf) rb.recv(g[partner[i]], Ref{buf, o}, n);
          else
            for (int l : leaves_of[i]) rb.send(g[l], Ref{buf, o}, n);
        }
      }
    }
  }
}

}  // namespace

void weighted_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count,
                        const std::vector<double>& beta) {
  blocks_allreduce(s, g, src, buf, off, weighted_blocks(count, beta), beta);
}

Algorithm allreduce_weighted() {
  Algorithm a;
  a.name = "weighted";
  a.coll = Coll::allreduce;
  a.segmentable = false;  // pipelined inside (weighted_allreduce)
  a.summary = "direct reduce-scatter + allgather, blocks sized to each rank's link rate";
  a.unsupported = always;
  a.consider = consider_uneven_links;
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

// Flat building blocks used by the algorithm files. Costs use p members,
// n bytes, alpha/beta/gamma of the link level the group spans.
#include <algorithm>
#include <cmath>
#include <map>

#include "build.hpp"

namespace baobab::algo {

Group::Group(std::vector<int> r, int rank) : ranks(std::move(r)) {
  for (int i = 0; i < size(); ++i)
    if (ranks[i] == rank) me = i;
}

Group Group::world(int size, int rank) {
  std::vector<int> r(size);
  for (int i = 0; i < size; ++i) r[i] = i;
  return Group(std::move(r), rank);
}

size_t total(const Extents& e) {
  size_t n = 0;
  for (auto s : e) n += s.len;
  return n;
}

Extents shifted(const Extents& e, size_t delta) {
  Extents out = e;
  for (auto& s : out) s.off += delta;
  return out;
}

void append_merged(Extents& e, Span s) {
  if (s.len == 0) return;
  if (!e.empty() && e.back().off + e.back().len == s.off) e.back().len += s.len;
  else e.push_back(s);
}

Blocks Blocks::even(size_t count, int parts) {
  Blocks b;
  b.off.resize(parts);
  b.cnt.resize(parts);
  size_t base = count / parts, extra = count % parts, o = 0;
  for (int i = 0; i < parts; ++i) {
    b.off[i] = o;
    b.cnt[i] = base + (static_cast<size_t>(i) < extra ? 1 : 0);
    o += b.cnt[i];
  }
  b.total = count;
  return b;
}

Blocks Blocks::of(const std::vector<size_t>& counts) {
  Blocks b;
  size_t o = 0;
  for (size_t c : counts) {
    b.off.push_back(o);
    b.cnt.push_back(c);
    o += c;
  }
  b.total = o;
  return b;
}

size_t Blocks::max() const { return cnt.empty() ? 0 : *std::max_element(cnt.begin(), cnt.end()); }

static Blocks offset_by(Blocks b, size_t off) {
  for (auto& o : b.off) o += off;
  return b;
}

// Ring reduce-scatter: p-1 rounds; at step k member i sends block i-k-1 to
// its right neighbour and folds block i-k-2 received from its left one.
// Cost: (p-1) alpha + (p-1)/p n beta + (p-1)/p n gamma.
// Block i-1 is sent raw from src at step 0; every other block is folded exactly
// once at this rank (buf <- received partial OP own contribution from src).
void ring_reduce_scatter(Schedule& s, const Group& g, uint8_t src, uint8_t buf, const Blocks& b) {
  const int p = g.size(), i = g.me;
  if (p <= 1 || i < 0) return;
  const uint8_t tmp = s.add_scratch(b.max());
  const int right = g[(i + 1) % p], left = g[(i + p - 1) % p];
  for (int k = 0; k < p - 1; ++k) {
    const int si = ((i - k - 1) % p + p) % p, ri = ((i - k - 2) % p + p) % p;
    RoundBuilder r(s);
    r.send(right, Ref{k == 0 ? src : buf, b.off[si]}, b.cnt[si]);
    r.recv(left, Ref{tmp, 0}, b.cnt[ri]);
    r.reduce(Ref{buf, b.off[ri]}, Ref{tmp, 0}, Ref{src, b.off[ri]}, b.cnt[ri]);
  }
}

void copy_if_needed(Schedule& s, uint8_t src, uint8_t buf, size_t off, size_t count) {
  if (src == buf || count == 0) return;
  RoundBuilder r(s);
  r.copy(Ref{buf, off}, Ref{src, off}, count);
}

// Ring allgather: p-1 rounds, (p-1) alpha + (p-1)/p n beta.
void ring_allgather(Schedule& s, const Group& g, uint8_t buf, const std::vector<Extents>& units) {
  const int p = g.size(), i = g.me;
  if (p <= 1 || i < 0) return;
  const int right = g[(i + 1) % p], left = g[(i + p - 1) % p];
  for (int k = 0; k < p - 1; ++k) {
    const int si = ((i - k) % p + p) % p, ri = ((i - k - 1) % p + p) % p;
    R r(s);
    r.send(right, buf, units[si]);
    r.recv(left, buf, units[ri]);
  }
}

void ring_allgather(Schedule& s, const Group& g, uint8_t buf, const Blocks& b) {
  std::vector<Extents> units(b.off.size());
  for (size_t i = 0; i < units.size(); ++i) units[i] = {Span{b.off[i], b.cnt[i]}};
  ring_allgather(s, g, buf, units);
}

void ring_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count) {
  if (g.size() <= 1) return copy_if_needed(s, src, buf, off, count);
  Blocks b = offset_by(Blocks::even(count, g.size()), off);
  ring_reduce_scatter(s, g, src, buf, b);
  ring_allgather(s, g, buf, b);
}

namespace {

// The non-power-of-two fold used by recursive doubling and Rabenseifner: the
// first 2*rem members pair up, evens hand their data to the odd neighbour and
// wait for the result. Returns the caller's index among the p2 survivors, or -1.
struct Fold {
  int p2 = 1, rem = 0, newidx = -1;
  int real(int v) const { return v < rem ? 2 * v + 1 : v + rem; }
};

Fold fold_in(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count, uint8_t tmp,
             bool& fresh) {
  Fold f;
  const int p = g.size(), i = g.me;
  f.p2 = floor_pow2(p);
  f.rem = p - f.p2;
  if (i < 2 * f.rem) {
    RoundBuilder r(s);
    if (i % 2 == 0) {
      r.send(g[i + 1], Ref{src, off}, count);
      f.newidx = -1;
    } else {
      r.recv(g[i - 1], Ref{tmp, 0}, count);
      r.reduce(Ref{buf, off}, Ref{tmp, 0}, Ref{src, off}, count);
      f.newidx = i / 2;
    }
    fresh = false;  // evens receive the whole result into buf at the end
  } else {
    f.newidx = i - f.rem;
  }
  return f;
}

void fold_out(Schedule& s, const Group& g, uint8_t buf, size_t off, size_t count, const Fold&) {
  const int i = g.me;
  const int rem = g.size() - floor_pow2(g.size());
  if (i < 2 * rem) {
    RoundBuilder r(s);
    if (i % 2 == 1) r.send(g[i - 1], Ref{buf, off}, count);
    else r.recv(g[i + 1], Ref{buf, off}, count);
  }
}

}  // namespace

// Recursive doubling: log2(p) exchanges of the whole vector.
// Cost: ceil(log2 p) (alpha + n beta + n gamma), plus 2 (alpha + n beta) + n gamma
// for the fold when p is not a power of two.
void rd_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count) {
  if (g.me < 0) return;
  if (g.size() <= 1) return copy_if_needed(s, src, buf, off, count);
  const uint8_t tmp = s.add_scratch(count);
  bool fresh = true;
  Fold f = fold_in(s, g, src, buf, off, count, tmp, fresh);
  if (f.newidx >= 0) {
    for (int mask = 1; mask < f.p2; mask <<= 1) {
      const int partner = f.newidx ^ mask;
      const int peer = g[f.real(partner)];
      const uint8_t cur = fresh ? src : buf;
      RoundBuilder r(s);
      r.send(peer, Ref{cur, off}, count);
      r.recv(peer, Ref{tmp, 0}, count);
      // Lower index on the left: both partners compute the same bits.
      if (partner < f.newidx) r.reduce(Ref{buf, off}, Ref{tmp, 0}, Ref{cur, off}, count);
      else r.reduce(Ref{buf, off}, Ref{cur, off}, Ref{tmp, 0}, count);
      fresh = false;
    }
  }
  if (fresh) copy_if_needed(s, src, buf, off, count);
  fold_out(s, g, buf, off, count, f);
}

// Rabenseifner: reduce-scatter by recursive halving, then allgather by recursive
// doubling, among the p2 survivors of the fold.
// Cost: 2 log2(p) alpha + 2 (p-1)/p n beta + (p-1)/p n gamma (+ fold).
void rabenseifner_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count) {
  if (g.me < 0) return;
  if (g.size() <= 1) return copy_if_needed(s, src, buf, off, count);
  const int p2 = floor_pow2(g.size());
  const Blocks b = offset_by(Blocks::even(count, p2), off);
  const uint8_t tmp = s.add_scratch(count);  // the fold receives everything
  bool fresh = true;
  Fold f = fold_in(s, g, src, buf, off, count, tmp, fresh);
  auto span = [&](int lo, int hi) { return Span{b.off[lo], b.off[hi - 1] + b.cnt[hi - 1] - b.off[lo]}; };
  if (f.newidx >= 0) {
    const int v = f.newidx;
    int lo = 0, hi = p2;
    for (int mask = p2 / 2; mask >= 1; mask >>= 1) {
      const int partner = v ^ mask;
      const int peer = g[f.real(partner)];
      const int mid = lo + (hi - lo) / 2;
      const bool upper = (v & mask) != 0;
      const Span keep = upper ? span(mid, hi) : span(lo, mid);
      const Span give = upper ? span(lo, mid) : span(mid, hi);
      const uint8_t cur = fresh ? src : buf;
      RoundBuilder r(s);
      r.send(peer, Ref{cur, give.off}, give.len);
      r.recv(peer, Ref{tmp, 0}, keep.len);
      if (partner < v) r.reduce(Ref{buf, keep.off}, Ref{tmp, 0}, Ref{cur, keep.off}, keep.len);
      else r.reduce(Ref{buf, keep.off}, Ref{cur, keep.off}, Ref{tmp, 0}, keep.len);
      fresh = false;
      if (upper) lo = mid;
      else hi = mid;
    }
    for (int mask = 1; mask < p2; mask <<= 1) {
      const int partner = v ^ mask;
      const int peer = g[f.real(partner)];
      const int mylo = v & ~(mask - 1), plo = partner & ~(mask - 1);
      const Span mine = span(mylo, mylo + mask), theirs = span(plo, plo + mask);
      RoundBuilder r(s);
      r.send(peer, Ref{buf, mine.off}, mine.len);
      r.recv(peer, Ref{buf, theirs.off}, theirs.len);
    }
  }
  fold_out(s, g, buf, off, count, f);
}

void weighted_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count,
                        const std::vector<double>& beta) {
  weighted_allreduce(s, g, src, buf, off, weighted_blocks(count, beta), beta);
}

void weighted_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, Blocks b,
                        const std::vector<double>& beta) {
  const int p = g.size(), i = g.me;
  const size_t count = b.total;
  if (i < 0) return;
  if (p <= 1) return copy_if_needed(s, src, buf, off, count);
  for (auto& o : b.off) o += off;
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
    if (direct < std::min({rd, rab, ring})) return weighted_allreduce(s, g, src, buf, off, std::move(wb), beta);
  }
  if (rd <= rab && rd <= ring) rd_allreduce(s, g, src, buf, off, count);
  else if (rab <= ring) rabenseifner_allreduce(s, g, src, buf, off, count);
  else ring_allreduce(s, g, src, buf, off, count);
}

// Binomial tree broadcast: ceil(log2 p) (alpha + n beta) on the critical path.
void binomial_bcast(Schedule& s, const Group& g, uint8_t buf, const Extents& e, int root) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return;
  const int v = (g.me - root + p) % p;
  auto real = [&](int x) { return g[(x + root) % p]; };
  int mask = 1;
  while (mask < p) {
    if (v & mask) {
      R r(s);
      r.recv(real(v - mask), buf, e);
      break;
    }
    mask <<= 1;
  }
  mask >>= 1;
  while (mask > 0) {
    if (v + mask < p) {
      R r(s);
      r.send(real(v + mask), buf, e);
    }
    mask >>= 1;
  }
}

// Binomial tree reduction to root: ceil(log2 p) (alpha + n beta + n gamma).
void binomial_reduce(Schedule& s, const Group& g, uint8_t buf, const Extents& e, int root) {
  binomial_reduce(s, g, buf, buf, e, root);
}

bool binomial_reduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, const Extents& e, int root) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return src == buf;
  bool fresh = src != buf;
  const int v = (g.me - root + p) % p;
  auto real = [&](int x) { return g[(x + root) % p]; };
  const size_t n = total(e);
  uint8_t tmp = 0;
  bool have_tmp = false;
  for (int mask = 1; mask < p; mask <<= 1) {
    if ((v & mask) == 0) {
      const int child = v | mask;
      if (child >= p) continue;
      if (!have_tmp) {
        tmp = s.add_scratch(n);
        have_tmp = true;
      }
      Extents te{Span{0, n}};
      R r(s);
      r.recv(real(child), tmp, te);
      size_t t = 0;
      for (auto sp : e) {
        r.b().reduce(Ref{buf, sp.off}, Ref{fresh ? src : buf, sp.off}, Ref{tmp, t}, sp.len);
        t += sp.len;
      }
      fresh = false;
    } else {
      R r(s);
      r.send(real(v - mask), fresh ? src : buf, e);
      break;
    }
  }
  return !fresh;
}

// Binomial scatter: the subtree of relative index v holds blocks [v, v + lowbit(v)).
// Cost: ceil(log2 p) alpha + (p-1)/p n beta.
void binomial_scatter(Schedule& s, const Group& g, uint8_t buf, const Blocks& rel, int root) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return;
  const int v = (g.me - root + p) % p;
  auto real = [&](int x) { return g[(x + root) % p]; };
  auto span = [&](int lo, int hi) {
    hi = std::min(hi, p);
    return Extents{Span{rel.off[lo], rel.off[hi - 1] + rel.cnt[hi - 1] - rel.off[lo]}};
  };
  int mask = 1;
  while (mask < p) {
    if (v & mask) {
      R r(s);
      r.recv(real(v - mask), buf, span(v, v + mask));
      break;
    }
    mask <<= 1;
  }
  mask >>= 1;
  while (mask > 0) {
    if (v + mask < p) {
      R r(s);
      r.send(real(v + mask), buf, span(v + mask, v + 2 * mask));
    }
    mask >>= 1;
  }
}

// Linear gather: every member sends its unit to the root in one round.
void linear_gather(Schedule& s, const Group& g, uint8_t buf, const std::vector<Extents>& units, int root) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return;
  R r(s);
  if (g.me == root) {
    for (int i = 0; i < p; ++i)
      if (i != root) r.recv(g[i], buf, units[i]);
  } else {
    r.send(g[root], buf, units[g.me]);
  }
}

// Dissemination barrier: ceil(log2 p) rounds of zero-byte messages.
void dissemination(Schedule& s, const Group& g) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return;
  for (int d = 1; d < p; d <<= 1) {
    RoundBuilder r(s);
    r.send(g[(g.me + d) % p], Ref{kOut, 0}, 0);
    r.recv(g[(g.me - d + p) % p], Ref{kOut, 0}, 0);
  }
}

std::vector<Group> parts_at(const Topology& t, const Group& g, int L, int rank) {
  std::map<int, size_t> index;
  std::vector<std::vector<int>> members;
  for (int r : g.ranks) {
    int id = t.group(L, r);
    auto it = index.find(id);
    if (it == index.end()) {
      it = index.emplace(id, members.size()).first;
      members.emplace_back();
    }
    members[it->second].push_back(r);
  }
  std::vector<Group> out;
  for (auto& m : members) out.emplace_back(std::move(m), rank);
  return out;
}

RootedLeaders rooted_leaders(const std::vector<Group>& parts, int root_rank, int rank) {
  RootedLeaders out;
  std::vector<int> lead;
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& q = parts[i].ranks;
    const bool has_root = std::find(q.begin(), q.end(), root_rank) != q.end();
    if (has_root) out.root = static_cast<int>(i);
    lead.push_back(has_root ? root_rank : q[0]);
    if (std::find(q.begin(), q.end(), rank) != q.end()) {
      out.my_part = static_cast<int>(i);
      out.part_root = static_cast<int>(std::find(q.begin(), q.end(), lead.back()) - q.begin());
    }
  }
  out.leaders = Group(lead, rank);
  return out;
}

int part_of(const std::vector<Group>& parts, int comm_rank) {
  for (size_t i = 0; i < parts.size(); ++i)
    for (int r : parts[i].ranks)
      if (r == comm_rank) return static_cast<int>(i);
  return -1;
}

}  // namespace baobab::algo

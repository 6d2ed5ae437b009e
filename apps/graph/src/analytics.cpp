// PageRank, connected components and community detection kernels (the per-rank
// loops of apps/graph/pagerank.py, components.py and community.py) and their
// bindings.
//
// The kernels work on `Rows`: one rank's rows (graph.hpp conventions: owned
// rows, then hub delegate rows) copied once, checked once (every column in
// [0, n)), with column ids narrowed to int32 when n allows (half the memory
// traffic of the gather loops), and the global vertex of each row. Per-vertex
// state that a kernel reads for any vertex (labels, contributions, community
// ids) is a replicated global array of n entries, checked for range on entry.
//
// Community decisions use sums of float32 weights in float64: such sums are
// exact (independent of order) while the weights are multiples of a common
// power of two within 2^53 of the total (integer weights; the generator's
// 24-bit [0, 1) weights up to 2^29 of them), so partial sums made on different
// ranks and added in a different order give the same bits, and so the same
// decisions, on any number of ranks.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/tuple.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "baobab/error.hpp"
#include "bind.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using baobab::InvalidArgument;

namespace {

using namespace baobab::graph::bind;

template <class A>
int64_t len(const A& a) {
  return int64_t(a.shape(0));
}

template <class A>
void need_ids(const A& a, int64_t n, const char* what) {
  const auto* p = a.data();
  for (int64_t i = 0; i < len(a); ++i)
    if (p[i] < 0 || p[i] >= n)
      throw InvalidArgument(std::string("graph analytics kernel: ") + what + " outside [0, n)");
}

uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// ---- the rows ------------------------------------------------------------------

struct Rows {
  int64_t n = 0, nrows = 0, nlocal = 0;
  bool wide = false;
  std::vector<int64_t> off, vert;
  std::vector<int32_t> c32;
  std::vector<int64_t> c64;
  std::vector<float> w;  // empty: unit weights
  // For spmv: the columns renumbered by falling frequency in these rows (pcol),
  // colmap[j] the global id of local column j, xl the gathered x: the entries of
  // the most frequent columns share few cache lines.
  std::vector<int32_t> pcol;
  std::vector<int64_t> colmap;
  std::vector<double> xl;

  void prepare_spmv() {
    if (!colmap.empty() || nnz() == 0) return;
    std::vector<int64_t> count(size_t(n), 0);
    auto tally = [&](const auto* cols) {
      for (int64_t k = 0; k < nnz(); ++k) ++count[size_t(cols[k])];
    };
    if (wide)
      tally(c64.data());
    else
      tally(c32.data());
    for (int64_t v = 0; v < n; ++v)
      if (count[size_t(v)]) colmap.push_back(v);
    std::stable_sort(colmap.begin(), colmap.end(),
                     [&](int64_t a, int64_t b) { return count[size_t(a)] > count[size_t(b)]; });
    std::vector<int32_t> local(size_t(n), -1);
    for (size_t j = 0; j < colmap.size(); ++j) local[size_t(colmap[j])] = int32_t(j);
    pcol.resize(size_t(nnz()));
    auto renumber = [&](const auto* cols) {
      for (int64_t k = 0; k < nnz(); ++k) pcol[size_t(k)] = local[size_t(cols[k])];
    };
    if (wide)
      renumber(c64.data());
    else
      renumber(c32.data());
    xl.resize(colmap.size());
  }

  template <class F>
  auto visit(F&& f) const {
    return wide ? f(c64.data()) : f(c32.data());
  }
  double wt(int64_t k) const { return w.empty() ? 1.0 : double(w[size_t(k)]); }
  int64_t nnz() const { return off.back(); }
};

// Community ids and weights of one row's entries, summed per community, in
// order of first appearance; `acc` (n zeros) and `slot` (n entries of -1) are
// scratch left as found.
struct Tally {
  std::vector<double> acc;
  std::vector<int64_t> slot, ids;
  explicit Tally(int64_t n) : acc(size_t(n), 0.0), slot(size_t(n), -1) {}
  void add(int64_t c, double x) {
    if (slot[size_t(c)] < 0) {
      slot[size_t(c)] = int64_t(ids.size());
      ids.push_back(c);
    }
    acc[size_t(c)] += x;
  }
  void clear() {
    for (int64_t c : ids) {
      acc[size_t(c)] = 0.0;
      slot[size_t(c)] = -1;
    }
    ids.clear();
  }
};

// ---- Louvain move decision ------------------------------------------------------
// Vertex of weighted degree kv in community a; pairs (community, weight to it);
// tot[c]: the communities' degree sums (a's including kv). The best community by
// the modularity gain of the move (networkx's formula), staying on ties, the
// smaller id among equal candidates; dir > 0 admits only larger ids than a,
// dir < 0 only smaller, 0 any.
int64_t louvain_decide(int64_t a, double kv, const int64_t* cs, const double* ws, int64_t cnt, const double* tot,
                       double m, double gamma, int dir) {
  if (kv <= 0 || m <= 0) return a;
  double wa = 0;
  for (int64_t i = 0; i < cnt; ++i)
    if (cs[i] == a) wa = ws[i];
  const double q = gamma * kv / (2 * m * m);
  const double stay = wa / m - (tot[a] - kv) * q;
  int64_t best = a;
  double bg = stay;
  for (int64_t i = 0; i < cnt; ++i) {
    const int64_t c = cs[i];
    if (c == a || (dir > 0 && c < a) || (dir < 0 && c > a)) continue;
    const double gn = ws[i] / m - tot[c] * q;
    if (gn > bg || (gn == bg && best != a && c < best)) {
      best = c;
      bg = gn;
    }
  }
  return best;
}

// Which vertices may move in Louvain sweep `sweep`: those whose seeded hash
// priority for the sweep is 0 modulo nb ("active"), about 1/nb of them, fewer
// conflicting simultaneous moves; with `independent`, only those whose priority
// also exceeds every active neighbour's (an independent set: simultaneous moves
// then act as sequential ones, but for the degree sums of a community joined by
// several at once; slower to converge).
uint64_t louvain_priority(int64_t v, uint64_t seed, int64_t sweep) {
  return mix64(seed ^ mix64(uint64_t(v) ^ (uint64_t(sweep) << 40)));
}
bool louvain_active(uint64_t prio, int64_t nb) { return nb <= 1 || prio % uint64_t(nb) == 0; }

// Label propagation choice: the label of largest count, ties to the smallest
// key (the label itself, or its seeded hash), then the smallest label.
struct LabelChoice {
  bool seeded;
  uint64_t seed;
  uint64_t key(int64_t l) const { return seeded ? mix64(seed ^ mix64(uint64_t(l))) : uint64_t(l); }
  bool better(int64_t l, double c, int64_t bl, double bc) const {
    if (c != bc) return c > bc;
    const uint64_t k = key(l), bk = key(bl);
    return k != bk ? k < bk : l < bl;
  }
  // The new label of a vertex with label `own` among neighbour labels ls with
  // counts cs (own's count: that of own among them, plus one with self_count);
  // with keep_own, own stays when it ties for the largest count.
  int64_t choose(int64_t own, const int64_t* ls, const double* cs, int64_t cnt, bool self_count, bool keep_own) const {
    double oc = self_count ? 1.0 : 0.0;
    for (int64_t i = 0; i < cnt; ++i)
      if (ls[i] == own) oc += cs[i];
    int64_t best = own;
    double bc = oc;
    for (int64_t i = 0; i < cnt; ++i) {
      const int64_t c = ls[i];
      if (c == own) continue;
      if (cs[i] > bc || (cs[i] == bc && !(keep_own && best == own) && better(c, cs[i], best, bc)))
        best = c, bc = cs[i];
    }
    return best;
  }
};

// ---- sequential Louvain on a replicated (coarse) graph --------------------------

struct Coarse {
  int64_t n = 0;
  std::vector<int64_t> off, adj;  // neighbours other than self
  std::vector<double> w, self, k;  // self: self-loop weight (each internal edge once)
};

// From entries (a, b, x) over nodes [0, n), both directions of every edge
// present (a == b entries: twice the internal weight), summed per pair.
Coarse coarse_from_entries(int64_t n, const int64_t* a, const int64_t* b, const double* x, int64_t cnt) {
  Coarse g;
  g.n = n;
  std::vector<int64_t> start(size_t(n) + 1, 0);
  for (int64_t i = 0; i < cnt; ++i) ++start[size_t(a[i]) + 1];
  for (int64_t v = 0; v < n; ++v) start[size_t(v) + 1] += start[size_t(v)];
  std::vector<int64_t> fill(start.begin(), start.end() - 1), eb(static_cast<size_t>(cnt));
  std::vector<double> ex(static_cast<size_t>(cnt));
  for (int64_t i = 0; i < cnt; ++i) {
    const int64_t p = fill[size_t(a[i])]++;
    eb[size_t(p)] = b[i];
    ex[size_t(p)] = x[i];
  }
  g.off.assign(size_t(n) + 1, 0);
  g.self.assign(size_t(n), 0.0);
  g.k.assign(size_t(n), 0.0);
  Tally t(n);
  for (int64_t v = 0; v < n; ++v) {
    for (int64_t p = start[size_t(v)]; p < start[size_t(v) + 1]; ++p) t.add(eb[size_t(p)], ex[size_t(p)]);
    std::sort(t.ids.begin(), t.ids.end());
    double kv = 0;
    for (int64_t c : t.ids) {
      const double s = t.acc[size_t(c)];
      kv += s;
      if (c == v) {
        g.self[size_t(v)] = s / 2;
      } else {
        g.adj.push_back(c);
        g.w.push_back(s);
      }
    }
    g.k[size_t(v)] = kv;
    g.off[size_t(v) + 1] = int64_t(g.adj.size());
    t.clear();
  }
  return g;
}

double coarse_modularity(const Coarse& g, const std::vector<int64_t>& comm, double m, double gamma) {
  if (m <= 0) return 0.0;
  std::vector<double> in(size_t(g.n), 0.0), tot(size_t(g.n), 0.0);
  for (int64_t v = 0; v < g.n; ++v) {
    const int64_t c = comm[size_t(v)];
    tot[size_t(c)] += g.k[size_t(v)];
    in[size_t(c)] += 2 * g.self[size_t(v)];
    for (int64_t p = g.off[size_t(v)]; p < g.off[size_t(v) + 1]; ++p)
      if (comm[size_t(g.adj[size_t(p)])] == c) in[size_t(c)] += g.w[size_t(p)];
  }
  double q = 0;
  for (int64_t c = 0; c < g.n; ++c) {
    const double f = tot[size_t(c)] / (2 * m);
    q += in[size_t(c)] / (2 * m) - gamma * f * f;
  }
  return q;
}

// One level of local moving (networkx's _one_level with a seeded fixed order):
// returns whether any node moved; comm: dense community per node.
bool one_level(const Coarse& g, double m, double gamma, uint64_t seed, int64_t level, std::vector<int64_t>& comm) {
  const int64_t n = g.n;
  comm.resize(static_cast<size_t>(n));
  std::iota(comm.begin(), comm.end(), 0);
  std::vector<double> tot(g.k);
  std::vector<std::pair<uint64_t, int64_t>> ord(static_cast<size_t>(n));
  for (int64_t v = 0; v < n; ++v)
    ord[size_t(v)] = {mix64(seed ^ mix64(uint64_t(level) * 0x100000001ull + uint64_t(v))), v};
  std::sort(ord.begin(), ord.end());
  Tally t(n);
  bool improved = false;
  int64_t moves = 1;
  while (moves > 0) {
    moves = 0;
    for (const auto& [h, u] : ord) {
      (void)h;
      const double ku = g.k[size_t(u)];
      const int64_t cu = comm[size_t(u)];
      for (int64_t p = g.off[size_t(u)]; p < g.off[size_t(u) + 1]; ++p)
        t.add(comm[size_t(g.adj[size_t(p)])], g.w[size_t(p)]);
      tot[size_t(cu)] -= ku;
      const double q = gamma * ku / (2 * m * m);
      const double remove = -t.acc[size_t(cu)] / m + tot[size_t(cu)] * q;
      int64_t best = cu;
      double bg = 0;
      for (int64_t c : t.ids) {
        const double gn = remove + t.acc[size_t(c)] / m - tot[size_t(c)] * q;
        if (gn > bg) {
          bg = gn;
          best = c;
        }
      }
      tot[size_t(best)] += ku;
      if (best != cu) {
        comm[size_t(u)] = best;
        improved = true;
        ++moves;
      }
      t.clear();
    }
  }
  return improved;
}

// Renumbers comm densely (first appearance order); returns the count.
int64_t renumber(std::vector<int64_t>& comm) {
  std::vector<int64_t> map(comm.size(), -1);
  int64_t k = 0;
  for (auto& c : comm) {
    if (map[size_t(c)] < 0) map[size_t(c)] = k++;
    c = map[size_t(c)];
  }
  return k;
}

Coarse aggregate(const Coarse& g, const std::vector<int64_t>& comm, int64_t k) {
  std::vector<int64_t> a, b;
  std::vector<double> x;
  a.reserve(g.adj.size() + size_t(g.n));
  for (int64_t v = 0; v < g.n; ++v) {
    const int64_t cv = comm[size_t(v)];
    if (g.self[size_t(v)] != 0) {
      a.push_back(cv);
      b.push_back(cv);
      x.push_back(2 * g.self[size_t(v)]);
    }
    for (int64_t p = g.off[size_t(v)]; p < g.off[size_t(v) + 1]; ++p) {
      a.push_back(cv);
      b.push_back(comm[size_t(g.adj[size_t(p)])]);
      x.push_back(g.w[size_t(p)]);
    }
  }
  Coarse c = coarse_from_entries(k, a.data(), b.data(), x.data(), int64_t(a.size()));
  // a node's degree is its members' degrees, isolated members included
  std::fill(c.k.begin(), c.k.end(), 0.0);
  for (int64_t v = 0; v < g.n; ++v) c.k[size_t(comm[size_t(v)])] += g.k[size_t(v)];
  return c;
}

}  // namespace

void bind_analytics(nb::module_& m) {
  nb::class_<Rows>(m, "AnalyticsRows",
                   "One rank's rows checked and copied for the analytics kernels (analytics.cpp).")
      .def(
          "__init__",
          [](Rows* self, In<int64_t> off, In<int64_t> cols, In<float> w, In<int64_t> vert, int64_t nlocal, int64_t n) {
            const int64_t nrows = len(off) - 1;
            need(n >= 1, "n must be positive");
            need(nrows >= 0 && len(vert) == nrows && nlocal >= 0 && nlocal <= nrows, "off, vert and nlocal disagree");
            need(off.data()[0] == 0 && off.data()[nrows] == len(cols), "offsets do not cover cols");
            need(len(w) == 0 || len(w) == len(cols), "weights and cols differ in length");
            for (int64_t r = 0; r < nrows; ++r) need(off.data()[r] <= off.data()[r + 1], "offsets decrease");
            need_ids(cols, n, "a column");
            need_ids(vert, n, "a row vertex");
            new (self) Rows();
            self->n = n;
            self->nrows = nrows;
            self->nlocal = nlocal;
            self->off.assign(off.data(), off.data() + nrows + 1);
            self->vert.assign(vert.data(), vert.data() + nrows);
            self->wide = n > std::numeric_limits<int32_t>::max();
            if (self->wide)
              self->c64.assign(cols.data(), cols.data() + len(cols));
            else
              self->c32.assign(cols.data(), cols.data() + len(cols));
            if (len(w)) self->w.assign(w.data(), w.data() + len(w));
          },
          "off"_a.noconvert(), "cols"_a.noconvert(), "w"_a.noconvert(), "vert"_a.noconvert(), "nlocal"_a, "n"_a,
          "Rows from CSR (off, cols), weights w (empty: unit weights), the global vertex of each row.")
      .def_prop_ro("n", [](const Rows& r) { return r.n; })
      .def_prop_ro("nrows", [](const Rows& r) { return r.nrows; })
      .def_prop_ro("nnz", [](const Rows& r) { return r.nnz(); })
      .def(
          "weighted_degree",
          [](const Rows& r) {
            std::vector<double> d(size_t(r.nrows), 0.0);
            for (int64_t i = 0; i < r.nrows; ++i)
              for (int64_t k = r.off[size_t(i)]; k < r.off[size_t(i) + 1]; ++k) d[size_t(i)] += r.wt(k);
            return to_numpy(std::move(d));
          },
          "Per row: the sum of its weights (float64).")
      .def(
          "spmv",
          [](Rows& r, In<double> x, Out<double> y) {
            need(len(x) == r.n && len(y) == r.nrows, "spmv: x needs n entries, y one per row");
            const bool local = !r.wide && r.nnz() > 0;
            if (local) r.prepare_spmv();
            nb::gil_scoped_release rel;
            const int64_t* off = r.off.data();
            const double* xv = x.data();
            double* yv = y.data();
            if (local) {
              double* xl = r.xl.data();
              const int64_t* cm = r.colmap.data();
              for (size_t j = 0; j < r.colmap.size(); ++j) xl[j] = xv[cm[j]];
              const int32_t* pc = r.pcol.data();
              for (int64_t i = 0; i < r.nrows; ++i) {
                double s = 0;
                for (int64_t k = off[i]; k < off[i + 1]; ++k) s += xl[pc[k]];
                yv[i] = s;
              }
              return;
            }
            r.visit([&](const auto* cols) {
              for (int64_t i = 0; i < r.nrows; ++i) {
                double s = 0;
                for (int64_t k = off[i]; k < off[i + 1]; ++k) s += xv[cols[k]];
                yv[i] = s;
              }
              return 0;
            });
          },
          "x"_a.noconvert(), "y"_a.noconvert(),
          "y[row] = sum of x over the row's columns (unweighted). The first call renumbers the columns; calls on "
          "one AnalyticsRows share a scratch vector: one at a time.")
      .def(
          "cc_hook",
          [](const Rows& r, In<int64_t> lab, Out<int64_t> prop) {
            need(len(lab) == r.n && len(prop) == r.n, "cc_hook: lab and prop need n entries");
            need_ids(lab, r.n, "a label");
            nb::gil_scoped_release rel;
            const int64_t* L = lab.data();
            int64_t* P = prop.data();
            int64_t hooks = 0;
            r.visit([&](const auto* cols) {
              for (int64_t i = 0; i < r.nrows; ++i) {
                const int64_t lv = L[r.vert[size_t(i)]];
                for (int64_t k = r.off[size_t(i)]; k < r.off[size_t(i) + 1]; ++k) {
                  const int64_t lu = L[cols[k]];
                  if (lu < lv) {
                    if (lu < P[lv]) P[lv] = lu, ++hooks;
                  } else if (lv < lu) {
                    if (lv < P[lu]) P[lu] = lv, ++hooks;
                  }
                }
              }
              return 0;
            });
            return hooks;
          },
          "lab"_a.noconvert(), "prop"_a.noconvert(),
          "Hook proposals: for each entry (v, u) joining trees of different roots, the larger root's prop "
          "lowered to the smaller root; returns how many times a proposal was lowered.")
      .def(
          "lpa_step",
          [](const Rows& r, In<int64_t> lab, uint64_t seed, bool seeded, bool self_count, bool keep_own,
             Out<int64_t> out) {
            need(len(lab) == r.n && len(out) == r.nlocal, "lpa_step: lab needs n entries, out nlocal");
            need_ids(lab, r.n, "a label");
            std::vector<int64_t> hub;  // (hub index, label, count) triples
            int64_t changed = 0;
            {
              nb::gil_scoped_release rel;
              const int64_t* L = lab.data();
              const LabelChoice ch{seeded, seed};
              Tally t(r.n);
              std::vector<double> cs;
              r.visit([&](const auto* cols) {
                for (int64_t i = 0; i < r.nrows; ++i) {
                  for (int64_t k = r.off[size_t(i)]; k < r.off[size_t(i) + 1]; ++k) t.add(L[cols[k]], 1.0);
                  if (i < r.nlocal) {
                    const int64_t own = L[r.vert[size_t(i)]];
                    cs.resize(t.ids.size());
                    for (size_t j = 0; j < t.ids.size(); ++j) cs[j] = t.acc[size_t(t.ids[j])];
                    const int64_t best =
                        ch.choose(own, t.ids.data(), cs.data(), int64_t(t.ids.size()), self_count, keep_own);
                    out.data()[i] = best;
                    changed += best != own;
                  } else {
                    for (int64_t c : t.ids) {
                      hub.push_back(i - r.nlocal);
                      hub.push_back(c);
                      hub.push_back(int64_t(t.acc[size_t(c)]));
                    }
                  }
                  t.clear();
                }
                return 0;
              });
            }
            return std::make_tuple(changed, to_numpy(std::move(hub)));
          },
          "lab"_a.noconvert(), "seed"_a, "seeded"_a, "self_count"_a, "keep_own"_a, "out"_a.noconvert(),
          "One synchronous label propagation step over the owned rows (own label counted once); returns "
          "(owned labels changed, the hub rows' (hub, label, count) triples, flat).")
      .def(
          "modularity_parts",
          [](const Rows& r, In<int64_t> comm, int64_t k) {
            need(len(comm) == r.n && k >= 1, "modularity_parts: comm needs n entries, k >= 1");
            need_ids(comm, k, "a community");
            std::vector<double> deg(size_t(k) + 2, 0.0);  // [intra, total, degree per community]
            {
              nb::gil_scoped_release rel;
              const int64_t* C = comm.data();
              double intra = 0, total = 0;
              r.visit([&](const auto* cols) {
                for (int64_t i = 0; i < r.nrows; ++i) {
                  const int64_t cv = C[r.vert[size_t(i)]];
                  double s = 0, in = 0;
                  for (int64_t e = r.off[size_t(i)]; e < r.off[size_t(i) + 1]; ++e) {
                    const double x = r.wt(e);
                    s += x;
                    if (C[cols[e]] == cv) in += x;
                  }
                  deg[size_t(cv) + 2] += s;
                  intra += in;
                  total += s;
                }
                return 0;
              });
              deg[0] = intra;
              deg[1] = total;
            }
            return to_numpy(std::move(deg));
          },
          "comm"_a.noconvert(), "k"_a,
          "[intra, total, per-community degree sum]: entry weights inside communities, of all entries, and "
          "summed per community of the row vertex.")
      .def(
          "louvain_move",
          [](const Rows& r, In<int64_t> comm, In<double> kdeg, In<double> tot, double mtot, double gamma, int dir,
             uint64_t seed, int64_t nb, int64_t sweep, bool independent, Out<int64_t> out) {
            need(len(comm) == r.n && len(kdeg) == r.n && len(tot) == r.n && len(out) == r.nlocal,
                 "louvain_move: comm, k, tot need n entries, out nlocal");
            need_ids(comm, r.n, "a community");
            std::vector<int64_t> hub;  // (hub index, community) pairs
            std::vector<double> hubw;  // their weights
            double intra = 0;
            {
              nb::gil_scoped_release rel;
              const int64_t* C = comm.data();
              Tally t(r.n);
              std::vector<double> ws;
              r.visit([&](const auto* cols) {
                for (int64_t i = 0; i < r.nrows; ++i) {
                  const int64_t v = r.vert[size_t(i)], a = C[v];
                  const uint64_t pv = louvain_priority(v, seed, sweep);
                  if (!louvain_active(pv, nb)) {  // stays: only its share of the weight inside communities
                    double in = 0;
                    for (int64_t e = r.off[size_t(i)]; e < r.off[size_t(i) + 1]; ++e)
                      if (C[cols[e]] == a) in += r.wt(e);
                    intra += in;
                    if (i < r.nlocal) out.data()[i] = a;
                    continue;
                  }
                  bool blocked = false;
                  for (int64_t e = r.off[size_t(i)]; e < r.off[size_t(i) + 1]; ++e) {
                    const int64_t u = cols[e];
                    t.add(C[u], r.wt(e));
                    if (independent && !blocked) {
                      const uint64_t pu = louvain_priority(u, seed, sweep);
                      blocked = louvain_active(pu, nb) && (pu > pv || (pu == pv && u > v));
                    }
                  }
                  if (t.slot[size_t(a)] >= 0) intra += t.acc[size_t(a)];
                  if (i < r.nlocal) {
                    ws.resize(t.ids.size());
                    for (size_t j = 0; j < t.ids.size(); ++j) ws[j] = t.acc[size_t(t.ids[j])];
                    out.data()[i] = blocked ? a
                                            : louvain_decide(a, kdeg.data()[v], t.ids.data(), ws.data(),
                                                             int64_t(t.ids.size()), tot.data(), mtot, gamma, dir);
                  } else {
                    if (blocked) {
                      hub.push_back(i - r.nlocal);
                      hub.push_back(-1);
                      hubw.push_back(0.0);
                    }
                    for (int64_t c : t.ids) {
                      hub.push_back(i - r.nlocal);
                      hub.push_back(c);
                      hubw.push_back(t.acc[size_t(c)]);
                    }
                  }
                  t.clear();
                }
                return 0;
              });
            }
            return std::make_tuple(intra, to_numpy(std::move(hub)), to_numpy(std::move(hubw)));
          },
          "comm"_a.noconvert(), "k"_a.noconvert(), "tot"_a.noconvert(), "m"_a, "gamma"_a, "dir"_a, "seed"_a,
          "nb"_a, "sweep"_a, "independent"_a, "out"_a.noconvert(),
          "One synchronous Louvain sweep from the state comm: each owned vertex's best community (out; moving "
          "only when active and not blocked by an active neighbour); returns (entry weight inside communities, "
          "the hub rows' (hub, community) pairs flat, community -1 when a neighbour blocks the hub, their weights).")
      .def(
          "coarse_entries",
          [](const Rows& r, In<int64_t> comm, int64_t k) {
            need(len(comm) == r.n && k >= 1, "coarse_entries: comm needs n entries, k >= 1");
            need_ids(comm, k, "a community");
            std::vector<int64_t> ab;
            std::vector<double> x;
            {
              nb::gil_scoped_release rel;
              const int64_t* C = comm.data();
              // rows grouped by the community of their vertex
              std::vector<int64_t> start(size_t(k) + 1, 0), order(size_t(r.nrows));
              for (int64_t i = 0; i < r.nrows; ++i) ++start[size_t(C[r.vert[size_t(i)]]) + 1];
              for (int64_t c = 0; c < k; ++c) start[size_t(c) + 1] += start[size_t(c)];
              std::vector<int64_t> fill(start.begin(), start.end() - 1);
              for (int64_t i = 0; i < r.nrows; ++i) order[size_t(fill[size_t(C[r.vert[size_t(i)]])]++)] = i;
              Tally t(k);
              r.visit([&](const auto* cols) {
                for (int64_t c = 0; c < k; ++c) {
                  for (int64_t p = start[size_t(c)]; p < start[size_t(c) + 1]; ++p) {
                    const int64_t i = order[size_t(p)];
                    for (int64_t e = r.off[size_t(i)]; e < r.off[size_t(i) + 1]; ++e) t.add(C[cols[e]], r.wt(e));
                  }
                  for (int64_t b : t.ids) {
                    ab.push_back(c);
                    ab.push_back(b);
                    x.push_back(t.acc[size_t(b)]);
                  }
                  t.clear();
                }
                return 0;
              });
            }
            return std::make_tuple(to_numpy(std::move(ab)), to_numpy(std::move(x)));
          },
          "comm"_a.noconvert(), "k"_a,
          "This rank's entries summed per (community of row vertex, community of column): ((a, b) pairs flat, "
          "weights).");

  m.def(
      "pr_contrib",
      [](In<double> x, In<double> inv, Out<double> out) {
        const int64_t k = len(x);
        need(len(inv) == k && len(out) == k, "pr_contrib: x, inv and out differ in length");
        nb::gil_scoped_release rel;
        double dangling = 0;
        for (int64_t i = 0; i < k; ++i) {
          const double v = x.data()[i], f = inv.data()[i];
          out.data()[i] = v * f;
          if (f == 0) dangling += v;
        }
        return dangling;
      },
      "x"_a.noconvert(), "inv"_a.noconvert(), "out"_a.noconvert(),
      "out = x * inv (the PageRank contributions); returns the sum of x where inv is 0 (dangling mass).");
  m.def(
      "pr_update",
      [](In<double> s, Out<double> x, double base, double d, double add) {
        const int64_t k = len(x);
        need(len(s) >= k, "pr_update: s shorter than x");
        nb::gil_scoped_release rel;
        double change = 0;
        for (int64_t i = 0; i < k; ++i) {
          const double v = base + d * (s.data()[i] + add);
          change += std::fabs(v - x.data()[i]);
          x.data()[i] = v;
        }
        return change;
      },
      "s"_a.noconvert(), "x"_a.noconvert(), "base"_a, "d"_a, "add"_a,
      "x = base + d * (s + add) in place (the first len(x) entries of s); returns the L1 change.");
  m.def(
      "cc_apply",
      [](Out<int64_t> lab, In<int64_t> prop) {
        const int64_t n = len(lab);
        need(len(prop) == n, "cc_apply: lab and prop differ in length");
        int64_t* L = lab.data();
        const int64_t* P = prop.data();
        for (int64_t v = 0; v < n; ++v) need(L[v] >= 0 && L[v] <= v, "cc_apply: a label above its vertex");
        nb::gil_scoped_release rel;
        int64_t hooked = 0;
        for (int64_t v = 0; v < n; ++v)
          if (P[v] < L[v] && L[v] == v && P[v] >= 0) L[v] = P[v], ++hooked;
        for (int64_t v = 0; v < n; ++v) L[v] = L[L[v]];  // ascending: L[L[v]] is final already
        return hooked;
      },
      "lab"_a.noconvert(), "prop"_a.noconvert(),
      "Hooks every root v with prop[v] < v under prop[v], then compresses every label to its root; returns the "
      "roots hooked.");
  m.def(
      "lpa_hubs",
      [](In<int64_t> triples, In<int64_t> current, uint64_t seed, bool seeded, bool self_count, bool keep_own) {
        const int64_t nh = len(current), k = len(triples) / 3;
        need(len(triples) % 3 == 0, "lpa_hubs: triples come in threes");
        for (int64_t i = 0; i < k; ++i)
          need(triples.data()[3 * i] >= 0 && triples.data()[3 * i] < nh, "lpa_hubs: hub index out of range");
        std::vector<std::tuple<int64_t, int64_t, int64_t>> e(static_cast<size_t>(k));
        for (int64_t i = 0; i < k; ++i)
          e[size_t(i)] = {triples.data()[3 * i], triples.data()[3 * i + 1], triples.data()[3 * i + 2]};
        std::sort(e.begin(), e.end());
        const LabelChoice ch{seeded, seed};
        std::vector<int64_t> best(static_cast<size_t>(nh)), ls;
        std::vector<double> cs;
        size_t i = 0;
        for (int64_t j = 0; j < nh; ++j) {
          ls.clear();
          cs.clear();
          while (i < e.size() && std::get<0>(e[i]) == j) {
            const int64_t l = std::get<1>(e[i]);
            int64_t c = 0;
            for (; i < e.size() && std::get<0>(e[i]) == j && std::get<1>(e[i]) == l; ++i) c += std::get<2>(e[i]);
            ls.push_back(l);
            cs.push_back(double(c));
          }
          best[size_t(j)] =
              ch.choose(current.data()[j], ls.data(), cs.data(), int64_t(ls.size()), self_count, keep_own);
        }
        return to_numpy(std::move(best));
      },
      "triples"_a.noconvert(), "current"_a.noconvert(), "seed"_a, "seeded"_a, "self_count"_a, "keep_own"_a,
      "The hubs' new labels from every rank's (hub, label, count) triples (the rule of lpa_step).");
  m.def(
      "louvain_hubs",
      [](In<int64_t> pairs, In<double> wts, In<int64_t> hubs, In<int64_t> comm, In<double> kdeg, In<double> tot,
         double mtot, double gamma, int dir, uint64_t seed, int64_t nb, int64_t sweep) {
        const int64_t nh = len(hubs), k = len(wts), n = len(comm);
        need(len(pairs) == 2 * k && len(kdeg) == n && len(tot) == n, "louvain_hubs: sizes disagree");
        need_ids(hubs, n, "a hub");
        need_ids(comm, n, "a community");
        std::vector<std::tuple<int64_t, int64_t, double>> e(static_cast<size_t>(k));
        for (int64_t i = 0; i < k; ++i) {
          const int64_t j = pairs.data()[2 * i], c = pairs.data()[2 * i + 1];
          need(j >= 0 && j < nh && c >= -1 && c < n, "louvain_hubs: pair out of range");
          e[size_t(i)] = {j, c, wts.data()[i]};
        }
        std::sort(e.begin(), e.end());
        std::vector<int64_t> out(static_cast<size_t>(nh));
        std::vector<int64_t> cs;
        std::vector<double> ws;
        size_t i = 0;
        for (int64_t j = 0; j < nh; ++j) {
          cs.clear();
          ws.clear();
          const int64_t v = hubs.data()[j];
          bool blocked = !louvain_active(louvain_priority(v, seed, sweep), nb);
          for (; i < e.size() && std::get<0>(e[i]) == j && std::get<1>(e[i]) < 0; ++i) blocked = true;
          while (i < e.size() && std::get<0>(e[i]) == j) {
            const int64_t c = std::get<1>(e[i]);
            double s = 0;
            for (; i < e.size() && std::get<0>(e[i]) == j && std::get<1>(e[i]) == c; ++i) s += std::get<2>(e[i]);
            cs.push_back(c);
            ws.push_back(s);
          }
          out[size_t(j)] = blocked ? comm.data()[v]
                                   : louvain_decide(comm.data()[v], kdeg.data()[v], cs.data(), ws.data(),
                                                    int64_t(cs.size()), tot.data(), mtot, gamma, dir);
        }
        return to_numpy(std::move(out));
      },
      "pairs"_a.noconvert(), "wts"_a.noconvert(), "hubs"_a.noconvert(), "comm"_a.noconvert(), "k"_a.noconvert(),
      "tot"_a.noconvert(), "m"_a, "gamma"_a, "dir"_a, "seed"_a, "nb"_a, "sweep"_a,
      "The hubs' Louvain moves from every rank's (hub, community) partial weights.");
  m.def(
      "louvain_sequential",
      [](int64_t k, In<int64_t> pairs, In<double> wts, In<double> kdeg, double gamma, uint64_t seed, double threshold) {
        const int64_t cnt = len(wts);
        need(k >= 1 && len(pairs) == 2 * cnt && len(kdeg) == k, "louvain_sequential: sizes disagree");
        need_ids(pairs, k, "a node");
        std::vector<int64_t> a(static_cast<size_t>(cnt)), b(static_cast<size_t>(cnt));
        for (int64_t i = 0; i < cnt; ++i) a[size_t(i)] = pairs.data()[2 * i], b[size_t(i)] = pairs.data()[2 * i + 1];
        std::vector<int64_t> member(static_cast<size_t>(k));
        std::iota(member.begin(), member.end(), 0);
        double q = 0;
        int64_t levels = 0;
        {
          nb::gil_scoped_release rel;
          Coarse g = coarse_from_entries(k, a.data(), b.data(), wts.data(), cnt);
          g.k.assign(kdeg.data(), kdeg.data() + k);
          double mm = 0;
          for (double x : g.k) mm += x;
          mm /= 2;
          std::vector<int64_t> comm(static_cast<size_t>(k));
          std::iota(comm.begin(), comm.end(), 0);
          q = coarse_modularity(g, comm, mm, gamma);
          while (mm > 0) {
            const bool moved = one_level(g, mm, gamma, seed, levels, comm);
            if (!moved) break;
            ++levels;
            const int64_t nk = renumber(comm);
            for (auto& x : member) x = comm[size_t(x)];
            const double nq = coarse_modularity(g, comm, mm, gamma);
            const double gain = nq - q;
            q = nq;
            if (gain <= threshold) break;
            g = aggregate(g, comm, nk);
          }
        }
        return std::make_tuple(to_numpy(std::move(member)), q, levels);
      },
      "k"_a, "pairs"_a.noconvert(), "wts"_a.noconvert(), "kdeg"_a.noconvert(), "gamma"_a, "seed"_a, "threshold"_a,
      "Sequential Louvain (fixed seeded order per level) on the graph of k nodes given by entries (a, b) with "
      "weights (both directions; a == b: twice the internal weight), node degrees kdeg: (community of each "
      "node, densely numbered, modularity, levels).");
}

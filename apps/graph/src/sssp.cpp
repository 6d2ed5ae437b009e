// Delta-stepping SSSP kernels and the Graph500 SSSP edge checks, with their
// bindings (called from module.cpp). apps/graph/sssp.py runs the phase loop
// over baobab's collectives; these are one rank's loops.
//
// Split is the rank's transpose with each column's light entries (weight <=
// delta) before its heavy ones, so that a phase scans only what it relaxes.
// Stepper holds one rank's search state: the tentative distance (float64) and
// parent of every local row (owned rows, then hub delegate rows, whose values
// sssp.py keeps equal on every rank), and the buckets. Row r is "pending" when
// its distance has changed since its edges were last relaxed; a pending row
// sits in bucket floor(dist / delta), kept as where[r] (-1 when not pending);
// bucket lists are lazy (an entry r in bucket k counts only while where[r] ==
// k). Buckets near the smallest live one are a deque indexed by bucket number;
// those more than kNear beyond it wait in a flat list (only reached when the
// weights span many bucket widths). A pending row is listed once in its bucket.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "baobab/error.hpp"
#include "bind.hpp"

namespace nb = nanobind;
using namespace nb::literals;

namespace baobab::graph {

constexpr int64_t kNoBucket = std::numeric_limits<int64_t>::max();

// The transpose with each column's entries split by weight: light ones (w <=
// delta) in [off[u], mid[u]), heavy ones in [mid[u], off[u + 1]), each part
// in the transpose's order; an entry is (local row, weight) in 8 bytes.
struct Split {
  struct Entry {
    uint32_t row;
    float w;
  };
  Split(int64_t n, int64_t nrows, const int64_t* coff, const int64_t* crow, const float* cw, double delta)
      : n(n), nrows(nrows), delta(delta), off(coff, coff + n + 1), mid(size_t(n)), e(size_t(coff[n])) {
    for (int64_t u = 0; u < n; ++u) {
      int64_t a = coff[u];
      for (int64_t j = coff[u]; j < coff[u + 1]; ++j)
        if (double(cw[j]) <= delta) e[size_t(a++)] = {uint32_t(crow[j]), cw[j]};
      mid[size_t(u)] = a;
      for (int64_t j = coff[u]; j < coff[u + 1]; ++j)
        if (double(cw[j]) > delta) e[size_t(a++)] = {uint32_t(crow[j]), cw[j]};
    }
  }
  int64_t n, nrows;
  double delta;
  std::vector<int64_t> off, mid;
  std::vector<Entry> e;
};

class Stepper {
 public:
  // The rank's rows: nlocal owned from vertex lo, then one per hub; the split
  // transpose (read, not copied) gives delta.
  Stepper(int64_t nlocal, int64_t lo, std::vector<int64_t> hubs, const Split& split)
      : split_(split),
        nlocal_(nlocal),
        lo_(lo),
        hubs_(std::move(hubs)),
        delta_(split.delta),
        dist_(size_t(nlocal + int64_t(hubs_.size())), std::numeric_limits<double>::infinity()),
        parent_(dist_.size(), -1),
        where_(dist_.size(), -1),
        heavy_(dist_.size(), 0) {}

  int64_t nrows() const { return int64_t(dist_.size()); }
  int64_t n() const { return split_.n; }
  double delta() const { return delta_; }
  double* dist() { return dist_.data(); }
  int64_t* parent() { return parent_.data(); }

  int64_t key(double d) const {
    const double q = std::floor(d / delta_);
    return q >= 4.0e18 ? int64_t(4e18) : int64_t(q);
  }

  int64_t vertex(int64_t r) const { return r < nlocal_ ? lo_ + r : hubs_[size_t(r - nlocal_)]; }

  // Row r gets distance d and parent p and becomes pending.
  void set(int64_t r, double d, int64_t p) {
    dist_[r] = d;
    parent_[r] = p;
    push(r);
  }

  // The smallest bucket holding a pending row, or kNoBucket.
  int64_t min_bucket() {
    while (!near_.empty()) {
      auto& b = near_.front();
      const int64_t k = base_;
      b.erase(std::remove_if(b.begin(), b.end(), [&](int64_t r) { return where_[r] != k; }), b.end());
      if (!b.empty()) break;
      near_.pop_front();
      ++base_;
    }
    int64_t best = near_.empty() ? kNoBucket : base_;
    if (!far_.empty()) {
      far_.erase(std::remove_if(far_.begin(), far_.end(), [&](const auto& e) { return where_[e.first] != e.second; }),
                 far_.end());
      for (const auto& e : far_) best = std::min(best, e.second);
      if (near_.empty() && !far_.empty()) {  // restart the deque at the far list's first bucket
        base_ = best;
        near_.emplace_back();
        auto rest = std::move(far_);
        far_.clear();
        for (const auto& e : rest) place(e.first, e.second);
      }
    }
    return best;
  }

  // Takes the pending rows of bucket i (no longer pending; marked for the heavy
  // pass): owned rows as (vertex, dist bits) pairs in `owned`, hub rows in `hubs`.
  void take(int64_t i, std::vector<int64_t>& owned, std::vector<int64_t>& hubs) {
    if (i >= base_ && i - base_ < int64_t(near_.size())) {
      std::vector<int64_t> b = std::move(near_[size_t(i - base_)]);
      near_[size_t(i - base_)].clear();
      for (int64_t r : b) emit(r, i, owned, hubs);
    }
    if (!far_.empty()) {
      std::vector<std::pair<int64_t, int64_t>> keep;
      for (const auto& e : far_) {
        if (e.second == i)
          emit(e.first, i, owned, hubs);
        else
          keep.push_back(e);
      }
      far_ = std::move(keep);
    }
  }

  // Owned (not hub) pending rows in bucket i (min_bucket() first, so that i's
  // lists are current).
  int64_t count(int64_t i) const {
    int64_t c = 0;
    if (i >= base_ && i - base_ < int64_t(near_.size()))
      for (int64_t r : near_[size_t(i - base_)]) c += where_[r] == i && r < nlocal_;
    for (const auto& e : far_) c += e.second == i && where_[e.first] == i && e.first < nlocal_;
    return c;
  }

  // Owned rows marked for the heavy pass.
  int64_t heavy_count() const { return heavy_owned_; }

  // The rows marked since the last call (the heavy pass), marks cleared.
  void take_heavy(std::vector<int64_t>& owned, std::vector<int64_t>& hubs) {
    for (int64_t r : heavy_list_) {
      heavy_[r] = 0;
      append(r, owned, hubs);
    }
    heavy_list_.clear();
    heavy_owned_ = 0;
  }

  // Relaxes, for each (u, dist bits) pair, the edges u -> r of the local rows r
  // listing u whose weight is <= delta (mode 0), > delta (mode 1) or any (2).
  // A strictly shorter distance replaces the row's and makes it pending.
  // Returns (entries scanned, distances improved).
  std::pair<int64_t, int64_t> relax(const int64_t* pairs, int64_t k, int mode) {
    const int64_t* off = split_.off.data();
    const int64_t* mid = split_.mid.data();
    const Split::Entry* ent = split_.e.data();
    const int64_t nent = int64_t(split_.e.size());
    constexpr int64_t kAhead = 16;
    int64_t scanned = 0, improved = 0;
    for (int64_t i = 0; i < k; ++i) {
      if (i + 8 < k) {
        __builtin_prefetch(&off[pairs[2 * (i + 8)]]);
        __builtin_prefetch(&mid[pairs[2 * (i + 8)]]);
      }
      const int64_t u = pairs[2 * i];
      double du;
      std::memcpy(&du, &pairs[2 * i + 1], 8);
      const int64_t b = mode == 1 ? mid[u] : off[u], e = mode == 0 ? mid[u] : off[u + 1];
      scanned += e - b;
      for (int64_t j = b; j < e; ++j) {
        if (j + kAhead < nent) __builtin_prefetch(&dist_[ent[j + kAhead].row]);
        const int64_t r = ent[j].row;
        const double nd = du + double(ent[j].w);
        if (nd < dist_[r]) {
          dist_[r] = nd;
          parent_[r] = u;
          push(r);
          ++improved;
        }
      }
    }
    return {scanned, improved};
  }

  // Hub rows take the agreed (distance, parent): a shorter distance makes the
  // row pending; an equal one takes the agreed parent.
  void agree_hubs(const double* d, const int64_t* p) {
    for (int64_t j = 0; j < int64_t(hubs_.size()); ++j) {
      const int64_t r = nlocal_ + j;
      if (d[j] < dist_[r]) {
        set(r, d[j], p[j]);
      } else if (d[j] == dist_[r]) {
        parent_[r] = p[j];
      }
    }
  }

 private:
  static constexpr int64_t kNear = int64_t(1) << 16;

  void push(int64_t r) {
    const int64_t k = key(dist_[r]);
    if (where_[r] == k) return;  // already listed there: bucket lists hold each pending row once
    where_[r] = k;
    place(r, k);
  }

  void place(int64_t r, int64_t k) {
    if (near_.empty()) base_ = k;
    if (k < base_ && base_ - k <= kNear) {
      near_.insert(near_.begin(), size_t(base_ - k), std::vector<int64_t>());
      base_ = k;
    }
    if (k >= base_ && k - base_ < kNear) {
      if (k - base_ >= int64_t(near_.size())) near_.resize(size_t(k - base_ + 1));
      near_[size_t(k - base_)].push_back(r);
    } else {
      far_.emplace_back(r, k);
    }
  }

  void emit(int64_t r, int64_t k, std::vector<int64_t>& owned, std::vector<int64_t>& hubs) {
    if (where_[r] != k) return;
    where_[r] = -1;
    if (!heavy_[r]) {
      heavy_[r] = 1;
      heavy_list_.push_back(r);
      heavy_owned_ += r < nlocal_;
    }
    append(r, owned, hubs);
  }

  void append(int64_t r, std::vector<int64_t>& owned, std::vector<int64_t>& hubs) {
    int64_t bits;
    std::memcpy(&bits, &dist_[r], 8);
    auto& out = r < nlocal_ ? owned : hubs;
    out.push_back(vertex(r));
    out.push_back(bits);
  }

  const Split& split_;
  int64_t nlocal_, lo_;
  std::vector<int64_t> hubs_;
  double delta_;
  std::vector<double> dist_;
  std::vector<int64_t> parent_;
  std::vector<int64_t> where_;
  std::vector<uint8_t> heavy_;
  std::vector<int64_t> heavy_list_;
  int64_t heavy_owned_ = 0;
  int64_t base_ = 0;
  std::deque<std::vector<int64_t>> near_;
  std::vector<std::pair<int64_t, int64_t>> far_;
};

namespace {

bool exceeds(double a, double b, double tol) { return a > b + tol * std::max(a, b); }

std::string edge_name(int64_t u, int64_t v, double w) {
  return "(" + std::to_string(u) + ", " + std::to_string(v) + ", weight " + std::to_string(w) + ")";
}

}  // namespace

// Graph500 SSSP checks of the edges [0, m) (weights w, or 1 when w is null)
// against the global dist and parent arrays: an edge whose tail is reached has
// its head reached (undirected: both ends or neither), and no edge shortens a
// distance beyond the relative tolerance tol. Where parent[v] is the edge's
// other end (v not the root), tree[v] becomes at least 1, and 2 when the
// weight equals dist[v] - dist[parent[v]] within tol. Returns '' or the first
// violation.
std::string sssp_check_edges(const double* dist, const int64_t* parent, int64_t n, int64_t root, const int64_t* src,
                             const int64_t* dst, const float* w, int64_t m, bool directed, double tol,
                             uint8_t* tree) {
  for (int64_t i = 0; i < m; ++i) {
    const int64_t u = src[i], v = dst[i];
    const double wt = w ? double(w[i]) : 1.0;
    if (u < 0 || u >= n || v < 0 || v >= n)
      return "edge (" + std::to_string(u) + ", " + std::to_string(v) + ") names a vertex beyond " +
             std::to_string(n - 1);
    if (u == v) continue;
    const bool ru = parent[u] != -1, rv = parent[v] != -1;
    if (ru && !rv)
      return "the tree does not span the reachable vertices: edge " + edge_name(u, v, wt) + " leaves reached vertex " +
             std::to_string(u) + " for unreached vertex " + std::to_string(v);
    if (!directed && rv && !ru)
      return "the tree does not span the component: edge " + edge_name(u, v, wt) + " joins unreached vertex " +
             std::to_string(u) + " and reached vertex " + std::to_string(v);
    if (!ru) continue;
    for (int side = 0; side < (directed ? 1 : 2); ++side) {
      const int64_t a = side ? v : u, b = side ? u : v;  // the edge a -> b
      const double via = dist[a] + wt;
      if (exceeds(dist[b], via, tol))
        return "edge " + edge_name(u, v, wt) + " shortens the distance of vertex " + std::to_string(b) + " from " +
               std::to_string(dist[b]) + " to " + std::to_string(via);
      if (parent[b] == a && b != root) {
        const uint8_t mark = std::fabs(dist[b] - via) <= tol * std::max(dist[b], via) ? 2 : 1;
        tree[b] = std::max(tree[b], mark);
      }
    }
  }
  return {};
}

}  // namespace baobab::graph

namespace {

namespace g = baobab::graph;
using baobab::InvalidArgument;
using namespace baobab::graph::bind;

template <class A>
int64_t len(const A& a) {
  return int64_t(a.shape(0));
}

}  // namespace

void bind_sssp(nb::module_& m) {
  nb::class_<g::Split>(m, "Split", "The transpose split into light and heavy entries per column (sssp.cpp).")
      .def(
          "__init__",
          [](g::Split* self, In<int64_t> coff, In<int64_t> crow, In<float> cw, int64_t nrows, double delta) {
            need(delta > 0 && std::isfinite(delta), "delta must be positive and finite");
            need(nrows >= 0 && nrows < (int64_t(1) << 32), "rows must number under 2^32");
            const int64_t n = len(coff) - 1;
            need(n >= 0 && coff.data()[0] == 0 && len(crow) == coff.data()[n] && len(cw) == len(crow),
                 "transpose arrays disagree");
            bool ok = true;
            for (int64_t u = 0; u < n; ++u) ok &= coff.data()[u] <= coff.data()[u + 1];
            need(ok, "column offsets decrease");
            for (int64_t j = 0; j < len(crow); ++j) ok &= crow.data()[j] >= 0 && crow.data()[j] < nrows;
            need(ok, "transpose row out of range");
            nb::gil_scoped_release rel;
            new (self) g::Split(n, nrows, coff.data(), crow.data(), cw.data(), delta);
          },
          "coff"_a.noconvert(), "crow"_a.noconvert(), "cw"_a.noconvert(), "nrows"_a, "delta"_a)
      .def_ro("delta", &g::Split::delta);
  nb::class_<g::Stepper>(m, "Stepper",
                         "One rank's delta-stepping state: distances, parents and buckets of its rows (sssp.cpp).")
      .def(
          "__init__",
          [](g::Stepper* self, int64_t nlocal, int64_t lo, In<int64_t> hubs, const g::Split& split) {
            need(nlocal >= 0 && lo >= 0, "nlocal and lo must be non-negative");
            need(nlocal + len(hubs) == split.nrows, "the split transpose has other rows than nlocal + hubs");
            new (self) g::Stepper(nlocal, lo, std::vector<int64_t>(hubs.data(), hubs.data() + len(hubs)), split);
          },
          "nlocal"_a, "lo"_a, "hubs"_a.noconvert(), "split"_a, nb::keep_alive<1, 5>(),
          "State for rows nlocal owned from vertex lo then one per hub; split's rows must number nlocal + hubs.")
      .def_prop_ro("delta", &g::Stepper::delta)
      .def(
          "set",
          [](g::Stepper& s, int64_t row, double d, int64_t p) {
            need(row >= 0 && row < s.nrows(), "row out of range");
            s.set(row, d, p);
          },
          "row"_a, "dist"_a, "parent"_a, "Row gets (dist, parent) and becomes pending.")
      .def("min_bucket", &g::Stepper::min_bucket, "The smallest bucket holding a pending row, or 2^63 - 1.")
      .def("count", &g::Stepper::count, "bucket"_a, "Owned pending rows in the bucket (after min_bucket).")
      .def("heavy_count", &g::Stepper::heavy_count, "Owned rows marked for the heavy pass.")
      .def(
          "take",
          [](g::Stepper& s, int64_t i) {
            std::vector<int64_t> owned, hubs;
            {
              nb::gil_scoped_release rel;
              s.take(i, owned, hubs);
            }
            return std::make_tuple(to_numpy(std::move(owned)), to_numpy(std::move(hubs)));
          },
          "bucket"_a,
          "Takes bucket i's pending rows: (owned (vertex, dist bits) pairs flat, hub pairs flat); marks them heavy.")
      .def(
          "take_heavy",
          [](g::Stepper& s) {
            std::vector<int64_t> owned, hubs;
            {
              nb::gil_scoped_release rel;
              s.take_heavy(owned, hubs);
            }
            return std::make_tuple(to_numpy(std::move(owned)), to_numpy(std::move(hubs)));
          },
          "The rows marked heavy since the last call, as take's pairs; marks cleared.")
      .def(
          "relax",
          [](g::Stepper& s, In<int64_t> pairs, int mode) {
            need(len(pairs) % 2 == 0, "pairs must hold (vertex, dist bits) pairs");
            need(mode >= 0 && mode <= 2, "mode must be 0 (light), 1 (heavy) or 2 (all)");
            const int64_t k = len(pairs) / 2, n = s.n();
            bool ok = true;
            for (int64_t i = 0; i < k; ++i) ok &= pairs.data()[2 * i] >= 0 && pairs.data()[2 * i] < n;
            need(ok, "vertex out of range");
            nb::gil_scoped_release rel;
            return s.relax(pairs.data(), k, mode);
          },
          "pairs"_a.noconvert(), "mode"_a,
          "Relaxes the pairs' edges into the local rows: (entries scanned, distances improved).")
      .def(
          "agree_hubs",
          [](g::Stepper& s, In<double> d, In<int64_t> p) {
            need(len(d) == len(p) && len(d) <= s.nrows(), "one distance and one parent per hub");
            s.agree_hubs(d.data(), p.data());
          },
          "dist"_a.noconvert(), "parent"_a.noconvert(), "Hub rows take the agreed distances and parents.")
      .def(
          "dist",
          [](g::Stepper& s) { return NpArr<double>(s.dist(), {size_t(s.nrows())}, nb::handle()); },
          nb::rv_policy::reference_internal, "The rows' distances (a view).")
      .def(
          "parent",
          [](g::Stepper& s) { return NpArr<int64_t>(s.parent(), {size_t(s.nrows())}, nb::handle()); },
          nb::rv_policy::reference_internal, "The rows' parents (a view).");

  m.def(
      "sssp_check_edges",
      [](In<double> dist, In<int64_t> parent, int64_t root, In<int64_t> src, In<int64_t> dst, In<float> w,
         bool directed, double tol, Out<uint8_t> tree) {
        const int64_t n = len(parent);
        need(len(dist) == n && len(tree) == n, "dist and tree need one entry per vertex");
        need(len(src) == len(dst) && (len(w) == 0 || len(w) == len(src)), "src, dst, w differ in length");
        nb::gil_scoped_release rel;
        return g::sssp_check_edges(dist.data(), parent.data(), n, root, src.data(), dst.data(),
                                   len(w) ? w.data() : nullptr, len(src), directed, tol, tree.data());
      },
      "dist"_a.noconvert(), "parent"_a.noconvert(), "root"_a, "src"_a.noconvert(), "dst"_a.noconvert(),
      "w"_a.noconvert(), "directed"_a, "tol"_a, "tree"_a.noconvert(),
      "Graph500 SSSP edge checks; marks tree edges (2: weight matches, 1: not); '' or the first violation.");
}

// Graph construction kernels: degrees, routing entries to their ranks, the
// per-rank rows and their transpose (graph.hpp).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "graph.hpp"

namespace baobab::graph {

void degree_count(const int64_t* src, const int64_t* dst, int64_t m, bool undirected, bool skip_loops, int64_t n,
                  int64_t* deg) {
  (void)n;
  for (int64_t i = 0; i < m; ++i) {
    const int64_t u = src[i], v = dst[i];
    if (skip_loops && u == v) continue;
    ++deg[v];
    if (undirected) ++deg[u];
  }
}

namespace {
inline int owner_of(const int64_t* bounds, int nranks, int64_t v) {
  return int(std::upper_bound(bounds + 1, bounds + nranks, v) - (bounds + 1));
}
inline int64_t float_bits(float w) {
  uint32_t b;
  std::memcpy(&b, &w, 4);
  return int64_t(b);
}
}  // namespace

void route_entries(const int64_t* src, const int64_t* dst, const float* w, int64_t m, bool undirected,
                   const int64_t* bounds, int nranks, const uint8_t* is_hub, int64_t n, std::vector<int64_t>& packed,
                   int64_t* counts) {
  (void)n;
  std::fill(counts, counts + nranks, 0);
  auto dest = [&](int64_t row, int64_t col) {
    return (is_hub && is_hub[row]) ? owner_of(bounds, nranks, col) : owner_of(bounds, nranks, row);
  };
  // two passes: count, then place
  std::vector<int> d(size_t(m) * (undirected ? 2 : 1));
  for (int64_t i = 0; i < m; ++i) {
    const int64_t u = src[i], v = dst[i];
    if (undirected) {
      d[2 * i] = dest(u, v);
      d[2 * i + 1] = dest(v, u);
      ++counts[d[2 * i]];
      ++counts[d[2 * i + 1]];
    } else {
      d[i] = dest(v, u);
      ++counts[d[i]];
    }
  }
  std::vector<int64_t> pos(nranks + 1, 0);
  for (int p = 0; p < nranks; ++p) pos[p + 1] = pos[p] + counts[p];
  packed.assign(size_t(pos[nranks]) * 3, 0);
  auto put = [&](int p, int64_t row, int64_t col, float wt) {
    int64_t* e = packed.data() + 3 * pos[p]++;
    e[0] = row;
    e[1] = col;
    e[2] = float_bits(wt);
  };
  for (int64_t i = 0; i < m; ++i) {
    const int64_t u = src[i], v = dst[i];
    const float wt = w ? w[i] : 1.0f;
    if (undirected) {
      put(d[2 * i], u, v, wt);
      put(d[2 * i + 1], v, u, wt);
    } else {
      put(d[i], v, u, wt);
    }
  }
}

void build_rows_packed(int64_t lo, int64_t nlocal, const uint8_t* is_hub, const int64_t* hubs, int64_t nhubs,
                       int64_t n, const int64_t* packed, int64_t k, std::vector<int64_t>& offsets,
                       std::vector<int64_t>& cols, std::vector<float>& weights, int64_t* raw) {
  const int64_t nrows = nlocal + nhubs;
  std::vector<int64_t> row(static_cast<size_t>(k));
  for (int64_t i = 0; i < k; ++i) {
    const int64_t r = packed[3 * i];
    row[i] = (is_hub && is_hub[r]) ? nlocal + (std::lower_bound(hubs, hubs + nhubs, r) - hubs) : r - lo;
  }
  // pass 1: order of the entries by column (stable)
  std::vector<int64_t> by_col(static_cast<size_t>(k));
  {
    std::vector<int64_t> c(size_t(n) + 1, 0);
    for (int64_t i = 0; i < k; ++i) ++c[size_t(packed[3 * i + 1]) + 1];
    for (int64_t v = 0; v < n; ++v) c[v + 1] += c[v];
    for (int64_t i = 0; i < k; ++i) by_col[size_t(c[packed[3 * i + 1]]++)] = i;
  }
  // pass 2: by row, stable, so each row's entries keep ascending columns
  std::vector<int64_t> start(size_t(nrows) + 1, 0);
  for (int64_t i = 0; i < k; ++i) ++start[size_t(row[i]) + 1];
  for (int64_t r = 0; r < nrows; ++r) {
    raw[r] = start[r + 1];
    start[r + 1] += start[r];
  }
  std::vector<int64_t> order(static_cast<size_t>(k));
  {
    std::vector<int64_t> fill(start.begin(), start.end() - 1);
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = by_col[j];
      order[size_t(fill[row[i]]++)] = i;
    }
  }
  std::vector<int64_t>().swap(by_col);
  offsets.assign(size_t(nrows) + 1, 0);
  cols.clear();
  weights.clear();
  cols.reserve(size_t(k));
  weights.reserve(size_t(k));
  for (int64_t r = 0; r < nrows; ++r) {
    const int64_t me = r < nlocal ? lo + r : hubs[r - nlocal];
    const int64_t first = int64_t(cols.size());
    for (int64_t j = start[r]; j < start[r + 1]; ++j) {
      const int64_t* e = packed + 3 * order[j];
      const int64_t c = e[1];
      if (c == me) continue;
      float w;
      const uint32_t bits = uint32_t(e[2]);
      std::memcpy(&w, &bits, 4);
      if (int64_t(cols.size()) > first && cols.back() == c) {
        if (w < weights.back()) weights.back() = w;
        continue;
      }
      cols.push_back(c);
      weights.push_back(w);
    }
    offsets[r + 1] = int64_t(cols.size());
  }
}

void transpose(int64_t nrows, const int64_t* off, const int64_t* cols, const float* w, int64_t n,
               std::vector<int64_t>& coff, std::vector<int64_t>& crow, std::vector<float>& cw) {
  const int64_t nnz = off[nrows];
  coff.assign(size_t(n) + 1, 0);
  for (int64_t i = 0; i < nnz; ++i) ++coff[size_t(cols[i]) + 1];
  for (int64_t c = 0; c < n; ++c) coff[c + 1] += coff[c];
  crow.resize(size_t(nnz));
  cw.resize(w ? size_t(nnz) : 0);
  std::vector<int64_t> fill(coff.begin(), coff.end() - 1);
  for (int64_t r = 0; r < nrows; ++r)
    for (int64_t i = off[r]; i < off[r + 1]; ++i) {
      const int64_t p = fill[cols[i]]++;
      crow[p] = r;
      if (w) cw[p] = w[i];
    }
}

}  // namespace baobab::graph

// BFS steps and frontier conversions (graph.hpp).
#include <cstdint>
#include <cstring>
#include <vector>

#include "graph.hpp"

namespace baobab::graph {

int64_t bfs_top_down(const int64_t* coff, const int64_t* crow, const int64_t* frontier, int64_t nf, int64_t* parent,
                     std::vector<int64_t>& next) {
  int64_t scanned = 0;
  for (int64_t i = 0; i < nf; ++i) {
    const int64_t u = frontier[i];
    const int64_t b = coff[u], e = coff[u + 1];
    scanned += e - b;
    for (int64_t j = b; j < e; ++j) {
      const int64_t r = crow[j];
      if (parent[r] == -1) {
        parent[r] = u;
        next.push_back(r);
      }
    }
  }
  return scanned;
}

int64_t bfs_bottom_up(int64_t nrows, const int64_t* off, const int64_t* cols, const uint64_t* front, int64_t* parent,
                      std::vector<int64_t>& next) {
  int64_t scanned = 0;
  for (int64_t r = 0; r < nrows; ++r) {
    if (parent[r] != -1) continue;
    const int64_t b = off[r], e = off[r + 1];
    for (int64_t j = b; j < e; ++j) {
      const int64_t u = cols[j];
      if ((front[u >> 6] >> (u & 63)) & 1) {
        parent[r] = u;
        next.push_back(r);
        scanned += j - b + 1;
        goto found;
      }
    }
    scanned += e - b;
  found:;
  }
  return scanned;
}

void ids_to_bitmap(const int64_t* ids, int64_t k, int64_t n, uint64_t* bits) {
  std::memset(bits, 0, size_t((n + 63) >> 6) * 8);
  for (int64_t i = 0; i < k; ++i) bits[ids[i] >> 6] |= uint64_t(1) << (ids[i] & 63);
}

void bitmap_to_ids(const uint64_t* bits, int64_t n, std::vector<int64_t>& ids) {
  const int64_t words = (n + 63) >> 6;
  for (int64_t w = 0; w < words; ++w) {
    uint64_t x = bits[w];
    while (x) {
      ids.push_back((w << 6) + __builtin_ctzll(x));
      x &= x - 1;
    }
  }
}

}  // namespace baobab::graph

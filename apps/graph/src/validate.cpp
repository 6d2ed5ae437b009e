// Graph500 validation of a BFS tree (graph.hpp).
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "graph.hpp"

namespace baobab::graph {

std::string bfs_levels(const int64_t* parent, int64_t n, int64_t root, int64_t* level) {
  if (root < 0 || root >= n) return "root " + std::to_string(root) + " is not a vertex";
  if (parent[root] != root)
    return "the root " + std::to_string(root) + " is not its own parent (parent " + std::to_string(parent[root]) + ")";
  for (int64_t v = 0; v < n; ++v) {
    if (parent[v] < -1 || parent[v] >= n)
      return "vertex " + std::to_string(v) + " has parent " + std::to_string(parent[v]) + ", not a vertex";
    level[v] = -1;
  }
  constexpr int64_t kOnPath = -2;
  level[root] = 0;
  std::vector<int64_t> path;
  for (int64_t v = 0; v < n; ++v) {
    if (parent[v] == -1 || level[v] >= 0) continue;
    path.clear();
    int64_t x = v;
    while (level[x] == -1) {  // climb to a vertex of known level
      if (parent[x] == -1)
        return "vertex " + std::to_string(path.empty() ? v : path.back()) + " has parent " + std::to_string(x) +
               ", which the search did not reach";
      level[x] = kOnPath;
      path.push_back(x);
      x = parent[x];
    }
    if (level[x] == kOnPath) {
      for (int64_t y : path) level[y] = -1;
      return "the parent array has a cycle through vertex " + std::to_string(x) + " (it does not lead to the root " +
             std::to_string(root) + ")";
    }
    int64_t l = level[x];
    for (size_t i = path.size(); i-- > 0;) level[path[i]] = ++l;
  }
  return {};
}

std::string bfs_check_edges(const int64_t* parent, const int64_t* level, int64_t n, const int64_t* src,
                            const int64_t* dst, int64_t m, uint8_t* tree) {
  for (int64_t i = 0; i < m; ++i) {
    const int64_t u = src[i], v = dst[i];
    if (u < 0 || u >= n || v < 0 || v >= n)
      return "edge (" + std::to_string(u) + ", " + std::to_string(v) + ") names a vertex beyond " +
             std::to_string(n - 1);
    const int64_t lu = level[u], lv = level[v];
    if ((lu < 0) != (lv < 0)) {
      const int64_t in = lu < 0 ? v : u, out = lu < 0 ? u : v;
      return "the tree does not span the component: edge (" + std::to_string(u) + ", " + std::to_string(v) +
             ") joins reached vertex " + std::to_string(in) + " and unreached vertex " + std::to_string(out);
    }
    if (lu < 0) continue;
    if (std::llabs(lu - lv) > 1)
      return "edge (" + std::to_string(u) + ", " + std::to_string(v) + ") joins levels " + std::to_string(lu) +
             " and " + std::to_string(lv) + ", which differ by more than one";
    if (parent[v] == u) tree[v] = 1;
    if (parent[u] == v) tree[u] = 1;
  }
  return {};
}

}  // namespace baobab::graph

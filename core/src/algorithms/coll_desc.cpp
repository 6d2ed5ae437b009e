// What a collective call asks for (CollDesc in baobab/algorithms.hpp): the
// size of its largest buffer and the hash of its per-rank counts.
#include <algorithm>
#include <numeric>

#include "baobab/algorithms.hpp"

namespace baobab {

size_t CollDesc::total() const {
  switch (coll) {
    case Coll::reduce_scatter:
    case Coll::allgather:
      return std::accumulate(counts.begin(), counts.end(), size_t{0});
    case Coll::alltoall: {
      // the largest row or column: what one rank sends or receives
      size_t p = 0;
      while (p * p < counts.size()) ++p;
      size_t best = 0;
      for (size_t r = 0; r < p; ++r) {
        size_t row = 0, col = 0;
        for (size_t c = 0; c < p; ++c) {
          row += counts[r * p + c];
          col += counts[c * p + r];
        }
        best = std::max({best, row, col});
      }
      return best;
    }
    case Coll::barrier: return 0;
    default: return count;
  }
}

uint64_t CollDesc::counts_hash() const {
  uint64_t h = 1469598103934665603ull;
  for (size_t c : counts) {
    h ^= c + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    h *= 1099511628211ull;
  }
  return h;
}

}  // namespace baobab

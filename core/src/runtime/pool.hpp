// Scratch memory of the executor, reused across operations: large vectors
// would otherwise pay page faults on fresh memory at every call. A buffer is
// taken for the life of one lane (its schedule's scratch buffers) and given
// back when the lane is done; at most 1 GiB is kept.
#pragma once
#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

namespace baobab::runtime {

struct PoolBuf {
  std::unique_ptr<char[]> p;
  size_t cap = 0;
  char* data() { return p.get(); }
};

class Pool {
 public:
  // The smallest free buffer of at least `bytes`, else a new one.
  PoolBuf get(size_t bytes) {
    size_t best = free_.size();
    for (size_t i = 0; i < free_.size(); ++i)
      if (free_[i].cap >= bytes && (best == free_.size() || free_[i].cap < free_[best].cap)) best = i;
    if (best < free_.size()) {
      PoolBuf b = std::move(free_[best]);
      free_.erase(free_.begin() + static_cast<long>(best));
      held_ -= b.cap;
      return b;
    }
    PoolBuf b;
    b.cap = std::max<size_t>(bytes, 64);
    b.p.reset(new char[b.cap]);
    return b;
  }
  void put(PoolBuf b) {
    if (!b.p) return;
    held_ += b.cap;
    free_.push_back(std::move(b));
    // Keep at most kLimit bytes: drop the smallest buffers first.
    while (held_ > kLimit && !free_.empty()) {
      auto it = std::min_element(free_.begin(), free_.end(),
                                 [](const PoolBuf& a, const PoolBuf& c) { return a.cap < c.cap; });
      held_ -= it->cap;
      free_.erase(it);
    }
  }

 private:
  static constexpr size_t kLimit = size_t{1} << 30;
  std::vector<PoolBuf> free_;
  size_t held_ = 0;
};

}  // namespace baobab::runtime

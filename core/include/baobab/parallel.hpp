// What the CPU kernels (the core's and the applications') share besides the
// SIMD layer: 64-byte aligned scratch arrays, the number of usable cores, and a
// loop that hands work items to threads dynamically.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <new>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

namespace baobab::parallel {

// A 64-byte aligned, uninitialised array of E (trivial types).
template <class E>
class AlignedArray {
 public:
  AlignedArray() = default;
  explicit AlignedArray(size_t n) { reset(n); }
  AlignedArray(const AlignedArray&) = delete;
  AlignedArray& operator=(const AlignedArray&) = delete;
  AlignedArray(AlignedArray&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ~AlignedArray() { release(); }
  // n elements (at least one), the old contents dropped.
  void reset(size_t n) {
    release();
    size_t bytes = (std::max<size_t>(n, 1) * sizeof(E) + 63) & ~size_t(63);
    p_ = static_cast<E*>(::operator new[](bytes, std::align_val_t(64)));
  }
  E* get() const { return p_; }

 private:
  void release() {
    if (p_) ::operator delete[](p_, std::align_val_t(64));
    p_ = nullptr;
  }
  E* p_ = nullptr;
};

// The cores this process may run on (its affinity mask), at least 1.
inline int usable_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

// Runs fn(thread index, item) for item in [0, items) on `threads` threads (the
// calling one included, at most one per item), items handed out dynamically in
// increasing order. A thread that cannot be started leaves its share to the
// others.
inline void run(int threads, int64_t items, const std::function<void(int, int64_t)>& fn) {
  if (items <= 0) return;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
  std::atomic<int64_t> next{0};
  auto worker = [&](int tid) {
    for (;;) {
      int64_t it = next.fetch_add(1, std::memory_order_relaxed);
      if (it >= items) break;
      fn(tid, it);
    }
  };
  if (threads == 1) {
    worker(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads - 1));
  for (int t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(worker, t);
    } catch (const std::system_error&) {
      break;  // could not start another thread: the ones running share the items
    }
  }
  worker(0);
  for (auto& th : pool) th.join();
}

}  // namespace baobab::parallel

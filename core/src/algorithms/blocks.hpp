// Where a building block's data lies in a buffer: runs of elements (Extents),
// and the blocks of a contiguous region that the members of a group own
// (Blocks). ExtentRound sends or receives a list of runs in one round, one
// message per run.
#pragma once
#include <cstddef>
#include <vector>

#include "baobab/schedule.hpp"

namespace baobab::algo {

// A list of (offset, length) runs of elements in one buffer.
struct Span {
  size_t off = 0, len = 0;
};
using Extents = std::vector<Span>;
size_t total(const Extents& e);
void append_merged(Extents& e, Span s);  // appends, merging with the last run when adjacent

// Per-member blocks of a contiguous region: member i owns [off[i], off[i] + cnt[i]).
struct Blocks {
  std::vector<size_t> off, cnt;
  size_t total = 0;
  static Blocks even(size_t count, int parts);  // the first count % parts blocks get one more
  static Blocks of(const std::vector<size_t>& counts);
  size_t max() const;
  Blocks shifted(size_t delta) const;  // the same blocks, delta elements further into the buffer
};

// A round whose messages are lists of runs (one message per run; an empty
// list or a single empty run is one empty message, which still synchronises).
class ExtentRound {
 public:
  explicit ExtentRound(Schedule& s) : rb_(s) {}
  void send(int peer, uint8_t buf, const Extents& e) {
    for (auto sp : e)
      if (sp.len || e.size() == 1) rb_.send(peer, Ref{buf, sp.off}, sp.len);
    if (e.empty()) rb_.send(peer, Ref{buf, 0}, 0);
  }
  void recv(int peer, uint8_t buf, const Extents& e) {
    for (auto sp : e)
      if (sp.len || e.size() == 1) rb_.recv(peer, Ref{buf, sp.off}, sp.len);
    if (e.empty()) rb_.recv(peer, Ref{buf, 0}, 0);
  }
  RoundBuilder& b() { return rb_; }

 private:
  RoundBuilder rb_;
};

// Copies [off, off+count) from src to buf when they differ (what an allreduce
// among a group of one does).
inline void copy_if_needed(Schedule& s, uint8_t src, uint8_t buf, size_t off, size_t count) {
  if (src == buf || count == 0) return;
  RoundBuilder r(s);
  r.copy(Ref{buf, off}, Ref{src, off}, count);
}

}  // namespace baobab::algo

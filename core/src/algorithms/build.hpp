// Building blocks shared by the algorithm files: groups of ranks, block
// layouts, and flat algorithms that work in place on a region of a buffer.
// Each flat building block appends rounds to a schedule for the calling rank.
#pragma once
#include <cstddef>
#include <vector>

#include "baobab/algorithms.hpp"
#include "baobab/config.hpp"
#include "baobab/schedule.hpp"
#include "baobab/topology.hpp"

namespace baobab::algo {

// An ordered set of communicator ranks; `me` is the caller's index or -1.
struct Group {
  std::vector<int> ranks;
  int me = -1;
  Group() = default;
  Group(std::vector<int> r, int rank);
  static Group world(int size, int rank);
  int size() const { return static_cast<int>(ranks.size()); }
  int operator[](int i) const { return ranks[i]; }
  bool member() const { return me >= 0; }
};

// A list of (offset, length) runs of elements in one buffer.
struct Span {
  size_t off = 0, len = 0;
};
using Extents = std::vector<Span>;
size_t total(const Extents& e);
Extents shifted(const Extents& e, size_t delta);
void append_merged(Extents& e, Span s);  // appends, merging with the last run when adjacent

// Per-member blocks of a contiguous region: member i owns [off[i], off[i] + cnt[i]).
struct Blocks {
  std::vector<size_t> off, cnt;
  size_t total = 0;
  static Blocks even(size_t count, int parts);  // the first count % parts blocks get one more
  static Blocks of(const std::vector<size_t>& counts);
  size_t max() const;
};

// Round helpers over extents (one message per run).
class R {
 public:
  explicit R(Schedule& s) : rb_(s) {}
  void send(int peer, uint8_t buf, const Extents& e) {
    for (auto sp : e) if (sp.len || e.size() == 1) rb_.send(peer, Ref{buf, sp.off}, sp.len);
    if (e.empty()) rb_.send(peer, Ref{buf, 0}, 0);
  }
  void recv(int peer, uint8_t buf, const Extents& e) {
    for (auto sp : e) if (sp.len || e.size() == 1) rb_.recv(peer, Ref{buf, sp.off}, sp.len);
    if (e.empty()) rb_.recv(peer, Ref{buf, 0}, 0);
  }
  RoundBuilder& b() { return rb_; }

 private:
  RoundBuilder rb_;
};

inline bool is_pow2(int n) { return n > 0 && (n & (n - 1)) == 0; }
inline int floor_pow2(int n) {
  int p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}
inline int ceil_log2(int n) {
  int k = 0;
  while ((1 << k) < n) ++k;
  return k;
}

// ---- flat building blocks (in place on buffer `buf`) -------------------------

// Ring reduce-scatter: afterwards member i's block of `buf` holds the reduction
// of everyone's block i. Unreduced data is read from `src` (which may be `buf`):
// no copy of the input is needed. Other blocks of buf hold partial sums.
void ring_reduce_scatter(Schedule& s, const Group& g, uint8_t src, uint8_t buf, const Blocks& b);
inline void ring_reduce_scatter(Schedule& s, const Group& g, uint8_t buf, const Blocks& b) {
  ring_reduce_scatter(s, g, buf, buf, b);
}
// Ring allgather: member i's block is sent around the ring.
void ring_allgather(Schedule& s, const Group& g, uint8_t buf, const std::vector<Extents>& units);
void ring_allgather(Schedule& s, const Group& g, uint8_t buf, const Blocks& b);
// Flat allreduces of elements [off, off+count): the result lands in `buf`; the
// input is read from `src` (src == buf: in place). Each reads src only where it
// first touches an element, so no input-to-output copy is needed.
// Recursive doubling, with the non-power-of-two fold.
void rd_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count);
// Rabenseifner: reduce-scatter by recursive halving, allgather by recursive doubling.
void rabenseifner_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count);
// Ring reduce-scatter + ring allgather.
void ring_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count);
// Allreduce of [off, off+count) among members whose links cost beta[i] s/byte.
// Blocks come from weighted_blocks: member i owns b_i elements; owners run a
// direct reduce-scatter (each sends every owner its piece) and allgather,
// moving n + (p-2) b_i bytes each way on member i's link. A member too slow to
// own anything is a leaf: it sends its input to one owner (its partner, which
// folds it into its own) and receives the result from it, n bytes each way on
// one flow. Pipelined in chunks: round r runs leaves->partner on chunk r,
// reduce-scatter on chunk r-1, allgather on r-2 and partner->leaves on r-3,
// so every link carries both directions at once.
void weighted_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count,
                        const std::vector<double>& beta);
// The same with blocks already computed by weighted_blocks (their total is the count).
void weighted_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, Blocks b,
                        const std::vector<double>& beta);
// Blocks of `count` elements for weighted_allreduce among members whose links
// cost beta[i] s/byte: the smallest T with b_i = max(0, (T/beta_i - n)/(p-2))
// covering n, rounded to elements. Equal links or p = 2: even blocks.
Blocks weighted_blocks(size_t count, const std::vector<double>& beta);
// The per-member link costs of a group for weighted_blocks: each member's node
// link, and (level >= 2) no faster than the uplinks of the level it spans.
std::vector<double> member_betas(const Group& g, const CostModel& m, int level);
// Picks one of the three by the alpha-beta-gamma formulas for a flat group whose
// links are of level `level` (the slowest member's node link bounds them all);
// where the members' node links differ, also weighted_allreduce.
void best_flat_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count,
                         const CostModel& m, int level);
inline void best_flat_allreduce(Schedule& s, const Group& g, uint8_t buf, size_t off, size_t count,
                                const CostModel& m, int level) {
  best_flat_allreduce(s, g, buf, buf, off, count, m, level);
}
// Copies [off, off+count) from src to buf when they differ (a group of one).
void copy_if_needed(Schedule& s, uint8_t src, uint8_t buf, size_t off, size_t count);
// Binomial tree bcast / reduce of extents, root = group index.
void binomial_bcast(Schedule& s, const Group& g, uint8_t buf, const Extents& e, int root);
void binomial_reduce(Schedule& s, const Group& g, uint8_t buf, const Extents& e, int root);
// The same, reading this rank's contribution from `src`; returns false if buf
// was never written (a leaf, or a group of one): the data is still in src.
bool binomial_reduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, const Extents& e, int root);
// Binomial scatter of block j (relative index j = (member - root) mod p) from root.
void binomial_scatter(Schedule& s, const Group& g, uint8_t buf, const Blocks& rel, int root);
// Linear gather / scatter of per-member extents to / from the root.
void linear_gather(Schedule& s, const Group& g, uint8_t buf, const std::vector<Extents>& units, int root);
// Dissemination barrier.
void dissemination(Schedule& s, const Group& g);

// Members of g grouped by their level-L group, in order of first appearance;
// each part keeps g's order.
std::vector<Group> parts_at(const Topology& t, const Group& g, int L, int rank);
// The part of `parts` containing comm_rank.
int part_of(const std::vector<Group>& parts, int comm_rank);

// Leaders of rooted hierarchical collectives: the root leads its own part, the
// first member leads every other part.
struct RootedLeaders {
  Group leaders;     // one rank per part, in part order
  int root = 0;      // the root's index among the leaders
  int my_part = -1;  // the caller's part
  int part_root = 0; // the caller's part leader's index within that part
};
RootedLeaders rooted_leaders(const std::vector<Group>& parts, int root_rank, int rank);

}  // namespace baobab::algo

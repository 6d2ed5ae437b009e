// Groups of ranks: an ordered set of communicator ranks with the caller's
// place in it, the parts of a group at a topology level (what hierarchical
// compositions recurse over), and the leaders of rooted hierarchical
// collectives.
#pragma once
#include <memory>
#include <vector>

#include "baobab/topology.hpp"

namespace baobab::algo {

// An ordered set of communicator ranks; `me` is the caller's index or -1.
// The whole communicator (world()) keeps no list: member i is rank i, so
// that building a schedule does not cost O(p) before its first round.
// Read members through size() and [] (`ranks` is empty for the whole).
struct Group {
  std::vector<int> ranks;
  int me = -1;
  bool whole = false;  // made by world(): the communicator's ranks in order
  int whole_size = 0;
  Group() = default;
  Group(std::vector<int> r, int rank);
  static Group world(int size, int rank);
  int size() const { return whole ? whole_size : static_cast<int>(ranks.size()); }
  int operator[](int i) const { return whole ? i : ranks[i]; }
  bool member() const { return me >= 0; }
};

// Members of g grouped by their level-L group, in order of first appearance;
// each part keeps g's order. Shared and immutable (me = -1 in every part):
// a simulation builds every rank's schedule over the same groups, and
// copying them for each rank would cost O(p) allocations per schedule.
struct Parts {
  std::vector<Group> all;
  Group firsts;  // the first member of each part, in part order (me = -1)
  std::vector<int> part, index;  // by communicator rank: its part and its place there (-1: not in g)
  size_t size() const { return all.size(); }
  const Group& operator[](size_t i) const { return all[i]; }
  std::vector<Group>::const_iterator begin() const { return all.begin(); }
  std::vector<Group>::const_iterator end() const { return all.end(); }
  int part_of(int comm_rank) const {
    return comm_rank >= 0 && static_cast<size_t>(comm_rank) < part.size() ? part[comm_rank] : -1;
  }
  // The caller's part with its place in it (a copy of that part only).
  Group mine(int comm_rank) const;
};
class PartsRef {
 public:
  explicit PartsRef(std::shared_ptr<const Parts> p) : p_(std::move(p)) {}
  const Parts& operator*() const { return *p_; }
  const Parts* operator->() const { return p_.get(); }
  size_t size() const { return p_->size(); }
  const Group& operator[](size_t i) const { return (*p_)[i]; }
  auto begin() const { return p_->begin(); }
  auto end() const { return p_->end(); }
  Group mine(int comm_rank) const { return p_->mine(comm_rank); }

 private:
  std::shared_ptr<const Parts> p_;
};
PartsRef parts_at(const Topology& t, const Group& g, int L);

// Leaders of rooted hierarchical collectives: the root leads its own part, the
// first member leads every other part.
struct RootedLeaders {
  Group leaders;     // one rank per part, in part order
  int root = 0;      // the root's index among the leaders
  int my_part = -1;  // the caller's part
  int part_root = 0; // the caller's part leader's index within that part
};
RootedLeaders rooted_leaders(const Parts& parts, int root_rank, int rank);

}  // namespace baobab::algo

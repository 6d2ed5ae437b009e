// Groups of ranks: an ordered set of communicator ranks with the caller's
// place in it, the parts of a group at a topology level (what hierarchical
// compositions recurse over), and the leaders of rooted hierarchical
// collectives.
#pragma once
#include <vector>

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

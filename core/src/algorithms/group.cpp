// Groups of ranks and their parts at a topology level (group.hpp).
#include "group.hpp"

#include <algorithm>
#include <map>

namespace baobab::algo {

Group::Group(std::vector<int> r, int rank) : ranks(std::move(r)) {
  for (int i = 0; i < size(); ++i)
    if (ranks[i] == rank) me = i;
}

Group Group::world(int size, int rank) {
  std::vector<int> r(size);
  for (int i = 0; i < size; ++i) r[i] = i;
  return Group(std::move(r), rank);
}

namespace {

// The last partition made on this thread: a simulation builds every rank's
// schedule for one topology, and each would otherwise partition the same
// group again (O(p log p) per rank). Keyed by the group's members and their
// level-L ids, compared in full, so a hit is never stale.
struct PartsMemo {
  int level = -1;
  std::vector<int> ranks, ids;
  std::vector<Group> parts;      // me = -1
  std::vector<int> part_of_pos;  // g's position -> its part
  std::vector<int> index_in_part;
};

}  // namespace

std::vector<Group> parts_at(const Topology& t, const Group& g, int L, int rank) {
  thread_local PartsMemo memo;
  const size_t n = g.ranks.size();
  bool hit = memo.level == L && memo.ranks.size() == n && memo.ranks == g.ranks;
  if (hit)
    for (size_t i = 0; i < n && hit; ++i) hit = memo.ids[i] == t.group(L, g.ranks[i]);
  if (!hit) {
    memo.level = L;
    memo.ranks = g.ranks;
    memo.ids.resize(n);
    memo.parts.clear();
    memo.part_of_pos.resize(n);
    memo.index_in_part.resize(n);
    std::map<int, size_t> index;
    for (size_t i = 0; i < n; ++i) {
      const int r = g.ranks[i];
      const int id = t.group(L, r);
      memo.ids[i] = id;
      auto it = index.find(id);
      if (it == index.end()) {
        it = index.emplace(id, memo.parts.size()).first;
        memo.parts.emplace_back();
      }
      Group& part = memo.parts[it->second];
      memo.part_of_pos[i] = static_cast<int>(it->second);
      memo.index_in_part[i] = part.size();
      part.ranks.push_back(r);
    }
  }
  std::vector<Group> out = memo.parts;
  for (size_t i = 0; i < n; ++i)
    if (g.ranks[i] == rank) out[memo.part_of_pos[i]].me = memo.index_in_part[i];
  return out;
}

int part_of(const std::vector<Group>& parts, int comm_rank) {
  for (size_t i = 0; i < parts.size(); ++i)
    for (int r : parts[i].ranks)
      if (r == comm_rank) return static_cast<int>(i);
  return -1;
}

RootedLeaders rooted_leaders(const std::vector<Group>& parts, int root_rank, int rank) {
  RootedLeaders out;
  std::vector<int> lead;
  for (size_t i = 0; i < parts.size(); ++i) {
    const auto& q = parts[i].ranks;
    const bool has_root = std::find(q.begin(), q.end(), root_rank) != q.end();
    if (has_root) out.root = static_cast<int>(i);
    lead.push_back(has_root ? root_rank : q[0]);
    if (std::find(q.begin(), q.end(), rank) != q.end()) {
      out.my_part = static_cast<int>(i);
      out.part_root = static_cast<int>(std::find(q.begin(), q.end(), lead.back()) - q.begin());
    }
  }
  out.leaders = Group(lead, rank);
  return out;
}

}  // namespace baobab::algo

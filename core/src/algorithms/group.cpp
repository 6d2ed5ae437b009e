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

std::vector<Group> parts_at(const Topology& t, const Group& g, int L, int rank) {
  std::map<int, size_t> index;
  std::vector<std::vector<int>> members;
  for (int r : g.ranks) {
    int id = t.group(L, r);
    auto it = index.find(id);
    if (it == index.end()) {
      it = index.emplace(id, members.size()).first;
      members.emplace_back();
    }
    members[it->second].push_back(r);
  }
  std::vector<Group> out;
  for (auto& m : members) out.emplace_back(std::move(m), rank);
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

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
  Group g;
  g.whole = true;
  g.whole_size = std::max(size, 0);
  g.me = rank >= 0 && rank < size ? rank : -1;  // rank i is at place i: no search
  return g;
}

Group Parts::mine(int comm_rank) const {
  const int i = part_of(comm_rank);
  if (i < 0) return Group{};
  Group g = all[static_cast<size_t>(i)];
  g.me = index[static_cast<size_t>(comm_rank)];
  return g;
}

namespace {

// The partitions made lately on this thread: a simulation builds every
// rank's schedule over the same groups. Keyed by the group's members and
// their level-L ids, compared in full, so a hit is never stale.
struct PartsMemo {
  int level = -1;
  uint64_t whole = 0;  // the serial of the topology whose whole communicator this partitions, or 0
  std::vector<int> ranks, ids;
  std::shared_ptr<const Parts> parts;
};

}  // namespace

PartsRef parts_at(const Topology& t, const Group& g, int L) {
  if (g.whole && !(t.serial() && g.size() == t.size())) {  // not this topology's communicator: list it
    Group listed;
    for (int i = 0; i < g.size(); ++i) listed.ranks.push_back(i);
    listed.me = g.me;
    return parts_at(t, listed, L);
  }
  thread_local std::vector<PartsMemo> memo(16);  // a level's groups and its rails
  thread_local size_t next = 0;
  const size_t n = static_cast<size_t>(g.size());
  // The whole communicator of a topology (the outermost group of every
  // schedule) is found by the topology's serial, without comparing members.
  const uint64_t whole = g.whole ? t.serial() : 0;
  for (const PartsMemo& e : memo) {
    if (!e.parts || e.level != L) continue;
    if (whole) {
      if (e.whole == whole) return PartsRef(e.parts);
      continue;
    }
    if (e.whole || e.ranks != g.ranks) continue;
    bool same = true;
    for (size_t i = 0; i < n && same; ++i) same = e.ids[i] == t.group(L, g[static_cast<int>(i)]);
    if (same) return PartsRef(e.parts);
  }
  auto parts = std::make_shared<Parts>();
  PartsMemo& e = memo[next++ % memo.size()];
  e.level = L;
  e.whole = whole;
  e.ranks = g.ranks;  // empty for the whole communicator (found by `whole`)
  e.ids.resize(whole ? 0 : n);
  parts->part.assign(static_cast<size_t>(t.size()), -1);
  parts->index.assign(static_cast<size_t>(t.size()), -1);
  std::map<int, size_t> index;
  for (size_t i = 0; i < n; ++i) {
    const int r = g[static_cast<int>(i)];
    const int id = t.group(L, r);
    if (!whole) e.ids[i] = id;
    auto it = index.find(id);
    if (it == index.end()) {
      it = index.emplace(id, parts->all.size()).first;
      parts->all.emplace_back();
    }
    Group& part = parts->all[it->second];
    parts->part[static_cast<size_t>(r)] = static_cast<int>(it->second);
    parts->index[static_cast<size_t>(r)] = part.size();
    part.ranks.push_back(r);
  }
  for (const Group& q : parts->all) parts->firsts.ranks.push_back(q.ranks.front());
  e.parts = parts;
  return PartsRef(std::move(parts));
}

RootedLeaders rooted_leaders(const Parts& parts, int root_rank, int rank) {
  RootedLeaders out;
  const int rp = parts.part_of(root_rank);
  std::vector<int> lead;
  lead.reserve(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    const bool has_root = static_cast<int>(i) == rp;
    if (has_root) out.root = static_cast<int>(i);
    lead.push_back(has_root ? root_rank : parts[i][0]);
  }
  out.my_part = parts.part_of(rank);
  if (out.my_part >= 0) out.part_root = out.my_part == rp ? parts.index[static_cast<size_t>(root_rank)] : 0;
  out.leaders = Group(lead, rank);
  return out;
}

}  // namespace baobab::algo

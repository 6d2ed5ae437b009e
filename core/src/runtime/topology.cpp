#include <atomic>
#include "baobab/topology.hpp"

#include <algorithm>
#include <map>
#include <numeric>
#include <sstream>
#include <unordered_map>

#include "baobab/error.hpp"

namespace baobab {

namespace {

// Renumbers ids so that groups are numbered in order of their lowest rank.
std::vector<int> densify(const std::vector<int>& ids) {
  std::map<int, int> remap;
  std::vector<int> out(ids.size());
  for (size_t r = 0; r < ids.size(); ++r) {
    auto it = remap.find(ids[r]);
    if (it == remap.end()) it = remap.emplace(ids[r], static_cast<int>(remap.size())).first;
    out[r] = it->second;
  }
  return out;
}

template <class Key>
std::vector<int> ids_from_keys(const std::vector<Key>& keys) {
  std::map<Key, int> first;
  std::vector<int> out(keys.size());
  for (size_t r = 0; r < keys.size(); ++r) {
    auto it = first.find(keys[r]);
    if (it == first.end()) it = first.emplace(keys[r], static_cast<int>(r)).first;
    out[r] = it->second;
  }
  return densify(out);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  return out;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\n");
  size_t e = s.find_last_not_of(" \t\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

long parse_positive(const std::string& tok, const std::string& spec) {
  char* end = nullptr;
  long v = std::strtol(tok.c_str(), &end, 10);
  if (tok.empty() || *end != '\0' || v <= 0)
    throw InvalidArgument("BAOBAB_TOPOLOGY='" + spec + "': '" + tok + "' is not a positive integer");
  return v;
}

// Sizes of `n` groups splitting `units` units evenly (the first ones get the remainder).
std::vector<long> even_split(long units, long n) {
  std::vector<long> sizes(n, units / n);
  for (long i = 0; i < units % n; ++i) sizes[i]++;
  return sizes;
}

struct LevelSpec {
  std::string name;
  std::vector<long> values;  // one value: a count; several: explicit sizes
  bool explicit_sizes = false;
};

std::vector<LevelSpec> parse_spec(const std::string& spec) {
  std::vector<LevelSpec> levels;
  for (const auto& raw : split(spec, ',')) {
    std::string tok = trim(raw);
    if (tok.empty()) continue;
    auto eq = tok.find('=');
    if (eq != std::string::npos) {
      LevelSpec l;
      l.name = trim(tok.substr(0, eq));
      if (l.name.empty()) throw InvalidArgument("BAOBAB_TOPOLOGY='" + spec + "': a level has no name");
      for (const auto& prev : levels)
        if (prev.name == l.name) throw InvalidArgument("BAOBAB_TOPOLOGY='" + spec + "': level '" + l.name + "' given twice");
      l.explicit_sizes = (l.name == "groups");
      l.values.push_back(parse_positive(trim(tok.substr(eq + 1)), spec));
      levels.push_back(l);
    } else {
      if (levels.empty()) throw InvalidArgument("BAOBAB_TOPOLOGY='" + spec + "': expected NAME=VALUE, got '" + tok + "'");
      levels.back().values.push_back(parse_positive(tok, spec));
      levels.back().explicit_sizes = true;
    }
  }
  return levels;
}

// Assigns consecutive units to groups of the given sizes.
std::vector<int> assign(const std::vector<long>& sizes, long units, const std::string& what, const std::string& spec) {
  long total = std::accumulate(sizes.begin(), sizes.end(), 0L);
  if (total != units) {
    std::ostringstream m;
    m << "BAOBAB_TOPOLOGY='" << spec << "': the " << what << " sizes add up to " << total << ", but there are "
      << units << (what == "node" ? " ranks" : " groups below");
    throw InvalidArgument(m.str());
  }
  std::vector<int> owner;
  for (size_t g = 0; g < sizes.size(); ++g)
    for (long i = 0; i < sizes[g]; ++i) owner.push_back(static_cast<int>(g));
  return owner;
}

std::vector<long> level_sizes(const LevelSpec& l, long units, const std::string& spec) {
  if (l.explicit_sizes) return l.values;
  long n = l.values[0];
  if (n > units) {
    std::ostringstream m;
    m << "BAOBAB_TOPOLOGY='" << spec << "': " << l.name << "=" << n << " asks for more groups than the " << units
      << " units below it";
    throw InvalidArgument(m.str());
  }
  return even_split(units, n);
}

}  // namespace

Topology::Topology(std::vector<std::string> level_names, std::vector<std::vector<int>> group_of,
                   std::vector<std::string> hosts, std::string source)
    : names_(std::move(level_names)), group_(std::move(group_of)), hosts_(std::move(hosts)), source_(std::move(source)) {
  static std::atomic<uint64_t> made{0};
  serial_ = ++made;
  if (group_.empty()) throw InvalidArgument("topology needs at least the node level");
  size_ = static_cast<int>(group_[0].size());
  if (hosts_.size() != static_cast<size_t>(size_)) hosts_.resize(size_);
  members_.resize(group_.size());
  for (size_t L = 0; L < group_.size(); ++L) {
    group_[L] = densify(group_[L]);
    int ng = group_[L].empty() ? 0 : *std::max_element(group_[L].begin(), group_[L].end()) + 1;
    members_[L].assign(ng, {});
    for (int r = 0; r < size_; ++r) members_[L][group_[L][r]].push_back(r);
    if (L > 0)
      for (int r = 0; r < size_; ++r)
        for (int q : members_[L - 1][group_[L - 1][r]])
          if (group_[L][q] != group_[L][r])
            throw InvalidArgument("topology level '" + names_[L] + "' splits a group of level '" + names_[L - 1] + "'");
  }
  local_rank_.assign(size_, 0);
  for (const auto& node : members_[0])
    for (size_t i = 0; i < node.size(); ++i) local_rank_[node[i]] = static_cast<int>(i);
  std::unordered_map<std::string, int> id;
  host_id_.resize(size_);
  for (int r = 0; r < size_; ++r) host_id_[r] = id.try_emplace(hosts_[r], static_cast<int>(id.size())).first->second;
  num_hosts_ = static_cast<int>(id.size());
}

std::vector<int> Topology::leaders() const {
  std::vector<int> out;
  for (const auto& node : members_[0]) out.push_back(node.front());
  return out;
}

bool Topology::uniform_nodes() const {
  for (const auto& node : members_[0])
    if (node.size() != members_[0][0].size()) return false;
  return true;
}

int Topology::link_level(int a, int b) const {
  for (int L = 0; L < levels(); ++L)
    if (group_[L][a] == group_[L][b]) return L;
  return levels();
}

std::string Topology::describe() const {
  std::ostringstream o;
  o << "topology: " << size_ << " ranks, " << num_nodes() << " nodes";
  for (int L = 1; L < levels(); ++L) o << ", " << num_groups(L) << " " << names_[L] << " groups";
  o << " (" << source_ << ")\n";
  o << "  rank  host                      node  local";
  for (int L = 1; L < levels(); ++L) o << "  " << names_[L];
  o << "\n";
  for (int r = 0; r < size_; ++r) {
    char line[160];
    std::snprintf(line, sizeof line, "  %4d  %-24s  %4d  %2d/%-2d", r, hosts_[r].substr(0, 24).c_str(), node_of(r),
                  local_rank(r), local_size(r));
    o << line;
    for (int L = 1; L < levels(); ++L) o << "  " << group_[L][r];
    o << "\n";
  }
  return o.str();
}

std::string Topology::spec_string() const {
  std::ostringstream o;
  for (int L = 0; L < levels(); ++L) {
    o << names_[L] << ":";
    for (int r = 0; r < size_; ++r) o << (r ? "," : "") << group_[L][r];
    o << ";";
  }
  return o.str();
}

Topology make_topology(int size, const std::vector<int>& node_key, const std::vector<std::string>& hosts,
                       const std::vector<std::string>& slurm_addr, const std::string& spec_in) {
  const std::string spec = trim(spec_in);
  std::vector<int> node = ids_from_keys(node_key);
  std::vector<std::string> names{"node"};
  std::vector<std::vector<int>> groups{node};
  std::string source = "detected: shared-memory domains";

  if (!spec.empty()) {
    auto levels = parse_spec(spec);
    // Node level: the innermost entry when it is named nodes/node/groups.
    bool has_node_level = !levels.empty() &&
                          (levels.back().name == "nodes" || levels.back().name == "node" || levels.back().name == "groups");
    if (has_node_level) {
      const LevelSpec& l = levels.back();
      node = assign(level_sizes(l, size, spec), size, "node", spec);
      groups = {node};
      levels.pop_back();
    }
    // Coarser levels, innermost first.
    for (auto it = levels.rbegin(); it != levels.rend(); ++it) {
      const std::vector<int>& below = groups.back();
      long units = *std::max_element(below.begin(), below.end()) + 1;
      std::vector<int> owner = assign(level_sizes(*it, units, spec), units, it->name, spec);
      std::vector<int> ids(size);
      for (int r = 0; r < size; ++r) ids[r] = owner[below[r]];
      groups.push_back(ids);
      names.push_back(it->name);
    }
    source = "BAOBAB_TOPOLOGY=" + spec;
  } else {
    // Slurm's topology address, e.g. "s0.s3.node12" with pattern "switch.switch.node":
    // every prefix shorter than the whole address names a coarser group.
    bool all = !slurm_addr.empty();
    size_t depth = 0;
    for (int r = 0; all && r < size; ++r) {
      if (static_cast<size_t>(r) >= slurm_addr.size() || slurm_addr[r].empty()) { all = false; break; }
      size_t d = split(slurm_addr[r], '.').size();
      if (r == 0) depth = d;
      else if (d != depth) all = false;
    }
    if (all && depth > 1) {
      for (size_t k = depth - 1; k >= 1; --k) {
        std::vector<std::string> keys(size);
        for (int r = 0; r < size; ++r) {
          auto parts = split(slurm_addr[r], '.');
          std::string key;
          for (size_t i = 0; i < k; ++i) key += parts[i] + ".";
          keys[r] = key;
        }
        std::vector<int> ids = ids_from_keys(keys);
        // Keep the refinement property even if the address disagrees with
        // the detected nodes: a node belongs to the group of its lowest rank.
        for (int r = 0; r < size; ++r) {
          int low = r;
          for (int q = 0; q < size; ++q)
            if (groups.back()[q] == groups.back()[r]) { low = q; break; }
          ids[r] = ids[low];
        }
        groups.push_back(ids);
        names.push_back(k == 1 ? "switch" : "switch" + std::to_string(depth - k));
      }
      source = "detected: shared-memory domains + SLURM_TOPOLOGY_ADDR";
    }
  }
  // Drop coarser levels that add nothing (one group, or the same as below).
  std::vector<std::string> kept_names{names[0]};
  std::vector<std::vector<int>> kept{groups[0]};
  for (size_t L = 1; L < groups.size(); ++L) {
    std::vector<int> ids = densify(groups[L]);
    int ng = *std::max_element(ids.begin(), ids.end()) + 1;
    int nb = *std::max_element(kept.back().begin(), kept.back().end()) + 1;
    if (ng <= 1 || ng == nb) continue;
    kept.push_back(ids);
    kept_names.push_back(names[L]);
  }
  return Topology(kept_names, kept, hosts, source);
}

}  // namespace baobab

// Which ranks share a node, a switch, a rack...: a hierarchy of groups.
//
// Level 0 is the node (ranks that share memory). Levels 1.. are coarser
// groupings (switch, rack, cluster), from Slurm's topology address or from an
// explicit BAOBAB_TOPOLOGY spec. The link between two ranks is classed by the
// lowest level whose group contains both: link level 0 = same node, L = same
// level-L group, levels() = only the whole communicator in common.
//
// Nodes may hold different numbers of ranks, and a node's ranks need not be
// consecutive in the communicator.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace baobab {

class Topology {
 public:
  Topology() = default;
  // group_of[L][r] = id of rank r's group at level L (ids dense from 0 in order
  // of the group's lowest rank). Level 0 is the node level. Each level must
  // refine the next: ranks in one level-L group share their level-(L+1) group.
  Topology(std::vector<std::string> level_names, std::vector<std::vector<int>> group_of,
           std::vector<std::string> hosts, std::string source);

  int size() const { return size_; }
  int levels() const { return static_cast<int>(group_.size()); }
  const std::string& level_name(int L) const { return names_[L]; }
  const std::string& source() const { return source_; }
  const std::string& host(int r) const { return hosts_[r]; }
  // The host's number: equal for ranks whose host names are equal, dense
  // from 0 in the order of their lowest rank.
  int host_id(int r) const { return host_id_[r]; }
  int num_hosts() const { return num_hosts_; }

  int group(int L, int r) const { return group_[L][r]; }
  int num_groups(int L) const { return static_cast<int>(members_[L].size()); }
  const std::vector<int>& members(int L, int g) const { return members_[L][g]; }

  int node_of(int r) const { return group_[0][r]; }
  int num_nodes() const { return num_groups(0); }
  const std::vector<int>& node_members(int n) const { return members_[0][n]; }
  int local_rank(int r) const { return local_rank_[r]; }
  int local_size(int r) const { return static_cast<int>(members_[0][group_[0][r]].size()); }
  bool is_leader(int r) const { return local_rank_[r] == 0; }
  std::vector<int> leaders() const;  // lowest rank of each node, by node id
  bool uniform_nodes() const;        // every node holds the same number of ranks

  int link_level(int a, int b) const;
  std::string describe() const;  // human-readable table

  // Serialise for broadcast / caching: "L names;group ids;..." round-trips.
  std::string spec_string() const;
  // Distinct for every topology constructed in the process (copies share it:
  // a topology never changes once made); 0 for an empty one.
  uint64_t serial() const { return serial_; }

 private:
  int size_ = 0;
  std::vector<std::string> names_;
  std::vector<std::vector<int>> group_;
  std::vector<std::vector<std::vector<int>>> members_;
  std::vector<int> local_rank_;
  std::vector<std::string> hosts_;
  std::vector<int> host_id_;
  int num_hosts_ = 0;
  std::string source_;
  uint64_t serial_ = 0;
};

// Builds a topology of `size` ranks.
//  node_key[r]   : ranks with the same key share a node (from MPI_Comm_split_type)
//  hosts[r]      : host names, for display
//  slurm_addr[r] : SLURM_TOPOLOGY_ADDR of each rank, may be empty
//  spec          : BAOBAB_TOPOLOGY, may be empty. Grammar (outermost level
//                  first, node level last, comma separated):
//                    nodes=N          N nodes, ranks split evenly in rank order
//                    groups=a,b,c     nodes of a, b, c consecutive ranks
//                    NAME=N           N groups of the level below, split evenly
//                    NAME=a,b         groups of a and b units of the level below
//                  e.g. "nodes=2", "groups=3,1,2", "switch=2,nodes=4",
//                  "rack=1,2,nodes=3". Without a node level, nodes are detected.
// Throws InvalidArgument on a malformed or inconsistent spec.
Topology make_topology(int size, const std::vector<int>& node_key, const std::vector<std::string>& hosts,
                       const std::vector<std::string>& slurm_addr, const std::string& spec);

}  // namespace baobab

// Blocks sized to link rates, for the weighted allreduce (allreduce_weighted.cpp)
// and for the compositions that embed it among nodes whose links differ.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "baobab/config.hpp"
#include "baobab/topology.hpp"
#include "blocks.hpp"
#include "group.hpp"

namespace baobab::algo {

// Blocks of `count` elements among members whose links cost beta[i] s/byte:
// the smallest T with b_i = max(0, (T/beta_i - n)/(p-2)) covering n, rounded
// to elements. Equal links (within 10 %) or p <= 2: even blocks.
Blocks weighted_blocks(size_t count, const std::vector<double>& beta);

// The per-member link costs of a group: each member's node link, and (level
// >= 2) no faster than the uplinks of the level the group spans.
std::vector<double> member_betas(const Group& g, const CostModel& m, int level);

// "" where the node links of the topology differ (the weighted algorithm is
// worth costing), else why it is not considered.
std::string consider_uneven_links(const Topology& t, const CostModel& m);

}  // namespace baobab::algo

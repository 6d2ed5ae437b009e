// The flat allreduces a composition can embed (its inner algorithm). The
// registry makes one variant of each composition per entry, named
// "composition(inner)" (split_rail(ring), leader(rabenseifner), ...); the
// selector costs every variant by simulation like any other algorithm, so
// the inner choice is made there and shown by explain.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "baobab/algorithms.hpp"
#include "baobab/config.hpp"
#include "baobab/schedule.hpp"
#include "baobab/topology.hpp"
#include "group.hpp"

namespace baobab::algo {

struct InnerAllreduce {
  std::string name;  // the flat algorithm's registry name
  // Allreduce of [off, off+count) among g, whose links are of level `level`;
  // src is read on first touch, the result lands in buf.
  void (*run)(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count, const CostModel& m,
              int level) = nullptr;
  // As Algorithm::consider: "" if automatic selection should cost variants
  // with this inner algorithm, else why not.
  std::string (*consider)(const Topology& t, const CostModel& m) = nullptr;
};

// recursive_doubling, rabenseifner, ring, weighted: in this order, which is
// also the order of preference between variants predicted equal.
const std::vector<InnerAllreduce>& inner_allreduces();

// Algorithm::bound of a composition whose inner allreduce is a ring (leader,
// split_rail): the innermost ring spans one member of every top-level group,
// q of them, and each of its 2(q-1) rounds waits for the left neighbour's
// message sent in the same round (a chain: at least the top level's link
// latency and the per-round overhead a round); unpipelined, also the built
// schedule's finish_lower_bound. Null for other inner algorithms.
std::function<double(const Topology&, const CollDesc&, int, const CostModel&, size_t)> ring_chain_bound(
    const InnerAllreduce& inner, std::function<void(Schedule&, const Topology&, const CollDesc&, int, const CostModel&)> build);

}  // namespace baobab::algo

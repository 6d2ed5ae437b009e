// The flat allreduces a composition can embed (its inner algorithm). The
// registry makes one variant of each composition per entry, named
// "composition(inner)" (split_rail(ring), leader(rabenseifner), ...); the
// selector costs every variant by simulation like any other algorithm, so
// the inner choice is made there and shown by explain.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace baobab::algo

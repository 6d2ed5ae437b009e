// The plan cache of a communicator: for each call shape (collective, count,
// element size, root, per-rank counts, forced algorithm, and for device
// buffers the transport, whose model prices the plan) the algorithm the
// selector chose and this rank's schedules, built once. A second, coarser
// cache keeps the choice per size class (quarter octaves of bytes), so that a
// new size in a class already costed builds its schedule without simulating
// every candidate again. Every rank makes the same calls in the same order,
// so every rank makes the same choices.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

#include "baobab/algorithms.hpp"
#include "baobab/config.hpp"
#include "baobab/schedule.hpp"
#include "baobab/select.hpp"
#include "baobab/topology.hpp"

namespace baobab::runtime {

struct PlanKey {
  uint8_t coll;
  size_t count, elem_size;
  int root;
  uint64_t counts_hash;
  std::string algo;
  uint8_t where = 0;  // host buffers (0), or 1 + the device transport (plan_where)
  bool operator==(const PlanKey& o) const {
    return coll == o.coll && count == o.count && elem_size == o.elem_size && root == o.root &&
           counts_hash == o.counts_hash && algo == o.algo && where == o.where;
  }
};
struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = std::hash<size_t>()(k.count) ^ (std::hash<uint64_t>()(k.counts_hash) << 1);
    h ^= (static_cast<size_t>(k.coll) << 3) ^ (k.elem_size << 7) ^ (static_cast<size_t>(k.root) << 11);
    return h ^ std::hash<std::string>()(k.algo) ^ (static_cast<size_t>(k.where) << 17);
  }
};

struct CachedPlan {
  Plan plan;
  uint8_t algo_id = 0;     // index in algorithms(): travels in the signature
  size_t seg_sends = 0;    // send operations of this rank in `seg`
  bool seg_recvs = false;  // whether `seg` receives anything
  Schedule seg;   // the schedule of one segment (or of the whole call)
  Schedule last;  // the last, shorter segment when segmented
  // direct_reads of seg and last, made at the first collective with the
  // device IPC transport (under the runtime's lock).
  bool direct_ready = false;
  std::vector<std::vector<int32_t>> seg_direct, last_direct;
};

class PlanCache {
 public:
  // The plan of a call and this rank's schedules for it.
  std::shared_ptr<CachedPlan> get(const Topology& topo, const Config& cfg, const CostModel& model, int rank,
                                  const CollDesc& d, const std::string& algo);

 private:
  Plan choose_cached(const Topology& topo, const Config& cfg, const CostModel& model, const CollDesc& d,
                     const std::string& algo);

  std::unordered_map<PlanKey, std::shared_ptr<CachedPlan>, PlanKeyHash> plans_;
  // The algorithm chosen per size class (see size_class in plan_cache.cpp).
  std::unordered_map<PlanKey, Plan, PlanKeyHash> choices_;
};

}  // namespace baobab::runtime

// The plan cache: size classes, the reuse of a class's choice, and the
// schedules of this rank built once per call shape (see plan_cache.hpp).
#include "plan_cache.hpp"

#include <algorithm>
#include <cmath>

namespace baobab::runtime {

namespace {

uint8_t algo_index(const Algorithm* a) {
  const auto& all = algorithms();
  return static_cast<uint8_t>(a - all.data());
}

// Size class of a call: quarter octaves of its bytes (the whole buffer, or the
// sum of the counts), and for count lists whether they are all equal. Calls in
// one class reuse the algorithm chosen for the first of them. Every rank sees
// the same calls in the same order, so every rank reuses the same choice.
// Host buffers, or which device transport's model (CostModel::dev) priced the plan.
uint8_t plan_where(const CostModel& m) {
  return m.dev.on ? static_cast<uint8_t>(1 + static_cast<int>(m.dev.path) * 2 + (m.dev.ipc ? 1 : 0)) : 0;
}

PlanKey size_class(const CollDesc& d, const std::string& algo, const CostModel& m) {
  size_t elems = d.count;
  bool uniform = true;
  for (size_t c : d.counts) {
    elems += c;
    uniform = uniform && c == d.counts.front();
  }
  const double bytes = static_cast<double>(elems) * static_cast<double>(d.elem_size);
  const size_t cls = bytes < 1 ? 0 : 1 + static_cast<size_t>(std::floor(4.0 * std::log2(bytes)));
  return PlanKey{static_cast<uint8_t>(d.coll), cls, d.elem_size, d.root, d.counts.empty() ? 0u : (uniform ? 1u : 2u),
                 algo, plan_where(m)};
}

}  // namespace

Plan PlanCache::choose_cached(const Topology& topo, const Config& cfg, const CostModel& model, const CollDesc& d,
                              const std::string& algo) {
  const PlanKey k = size_class(d, algo, model);
  auto it = choices_.find(k);
  if (it != choices_.end() && it->second.algo && it->second.algo->unsupported(topo, d).empty()) {
    Plan p;
    p.algo = it->second.algo;
    p.reason = it->second.reason;
    p.segments = 1;
    p.seg_count = d.count;
    if (it->second.segments > 1 && p.algo->segmentable) {
      // the segment size chosen for the class (whose element size is this
      // call's), applied to this count
      const size_t seg = std::max<size_t>(1, it->second.seg_count);
      const size_t nseg = (d.count + seg - 1) / seg;
      if (nseg > 1) {
        p.segments = nseg;
        p.seg_count = seg;
      }
    }
    return p;
  }
  Plan p = choose(topo, cfg, model, d, algo);
  if (choices_.size() > 4096) choices_.clear();
  Plan keep;  // without the candidate list
  keep.algo = p.algo;
  keep.segments = p.segments;
  keep.seg_count = p.seg_count;
  keep.reason = p.reason;
  choices_[k] = keep;
  return p;
}

std::shared_ptr<CachedPlan> PlanCache::get(const Topology& topo, const Config& cfg, const CostModel& model, int rank,
                                           const CollDesc& d, const std::string& algo) {
  PlanKey k{static_cast<uint8_t>(d.coll), d.count, d.elem_size, d.root, d.counts_hash(), algo, plan_where(model)};
  auto it = plans_.find(k);
  if (it != plans_.end()) return it->second;
  auto cp = std::make_shared<CachedPlan>();
  cp->plan = choose_cached(topo, cfg, model, d, algo);
  cp->algo_id = algo_index(cp->plan.algo);
  CollDesc sd = d;
  if (cp->plan.segments > 1) sd.count = cp->plan.seg_count;
  cp->seg = build_schedule(*cp->plan.algo, topo, sd, rank, model);
  for (const Round& r : cp->seg.rounds)
    for (const Op& op : r.ops) {
      cp->seg_sends += op.kind == OpKind::send;
      cp->seg_recvs = cp->seg_recvs || op.kind == OpKind::recv;
    }
  if (cp->plan.segments > 1) {
    CollDesc ld = d;
    ld.count = d.count - (cp->plan.segments - 1) * cp->plan.seg_count;
    cp->last = build_schedule(*cp->plan.algo, topo, ld, rank, model);
  }
  if (plans_.size() > 1024) plans_.clear();
  plans_.emplace(k, cp);
  return cp;
}

}  // namespace baobab::runtime

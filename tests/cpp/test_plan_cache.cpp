// The plan cache's size classes keep the segment size the selector chose.
//
// On a 256-rank job with fast links and microsecond latencies the selector
// pipelines a 64 MiB allreduce in segments larger than BAOBAB_SEGMENT (each
// segment pays its schedule's rounds of latency). A second call of another
// count in the same size class reuses that choice without costing again: it
// must run in segments of the same bytes, not BAOBAB_SEGMENT's, with a
// shorter last segment of its own.
//
// Usage: test_plan_cache   exit status 0 on success.
#include <cstdio>
#include <string>
#include <vector>

#include "../../core/src/runtime/plan_cache.hpp"
#include "baobab/config.hpp"
#include "baobab/topology.hpp"

using namespace baobab;

static int failures = 0;
#define CHECK(cond)                                                   \
  do {                                                                \
    if (!(cond)) {                                                    \
      std::fprintf(stderr, "%s:%d: failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                     \
    }                                                                 \
  } while (0)

int main() {
  const int p = 256;
  std::vector<int> keys(p);
  std::vector<std::string> hosts(p), addr(p);
  for (int r = 0; r < p; ++r) {
    keys[r] = r / 8;
    hosts[r] = "h" + std::to_string(r / 8);
  }
  const Topology t = make_topology(p, keys, hosts, addr, "");
  Config cfg;
  CostModel m = cfg.model(t);
  m.link[0].alpha = 1e-6;
  m.link[0].beta = 1.0 / 450e9;
  m.link[1].alpha = 3e-6;
  m.link[1].beta = 1.0 / 400e9;
  m.gamma = m.copy = 1.0 / 2000e9;

  CollDesc d;
  d.coll = Coll::allreduce;
  d.elem_size = 4;
  d.count = (64u << 20) / 4;
  runtime::PlanCache cache;
  auto first = cache.get(t, cfg, m, 0, d, "");
  CHECK(first->plan.algo != nullptr);
  CHECK(first->plan.segments > 1);
  const size_t seg_bytes = first->plan.seg_count * d.elem_size;
  CHECK(seg_bytes > cfg.segment_bytes);
  CHECK(first->seg.rounds.size() > 0);

  CollDesc d2 = d;
  d2.count = d.count + 1000;  // the same size class
  auto second = cache.get(t, cfg, m, 0, d2, "");
  CHECK(second->plan.algo == first->plan.algo);
  CHECK(second->plan.seg_count == first->plan.seg_count);
  CHECK(second->plan.segments == (d2.count + second->plan.seg_count - 1) / second->plan.seg_count);
  CHECK(second->last.rounds.size() == second->seg.rounds.size());  // the shorter last segment's own schedule
  size_t last_elems = 0, seg_elems = 0;
  for (const Round& r : second->last.rounds)
    for (const Op& op : r.ops) last_elems += op.kind == OpKind::send ? op.count : 0;
  for (const Round& r : second->seg.rounds)
    for (const Op& op : r.ops) seg_elems += op.kind == OpKind::send ? op.count : 0;
  CHECK(last_elems < seg_elems);
  std::printf("%s: %zu segments of %zu bytes; second call %zu segments\n", first->plan.algo->name.c_str(),
              first->plan.segments, seg_bytes, second->plan.segments);
  if (failures) std::fprintf(stderr, "%d check(s) failed\n", failures);
  return failures ? 1 : 0;
}

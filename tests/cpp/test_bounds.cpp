// Algorithms' own lower bounds (Algorithm::bound: the selector uses them in
// place of building schedules that grow with the job, and to prune
// pipelined candidates) never exceed what the replay gives: the whole call,
// and the call cut into segments with lanes in flight; unpipelined, never
// below the built schedule's finish_lower_bound either (so they prune at
// least as much as that did). Several topologies (one node, nodes on one and
// on several hosts, a switch level), counts and ranks, under the host model
// (also with uneven latencies and node links) and the device models.
//
// busy_time (simulate.hpp) is checked the same way against every rank's
// finish in a pipelined replay.
//
// Usage: test_bounds   exit status 0 on success.
#include <cstdio>
#include <string>
#include <vector>

#include "baobab/algorithms.hpp"
#include "baobab/config.hpp"
#include "baobab/select.hpp"
#include "baobab/simulate.hpp"
#include "baobab/topology.hpp"

using namespace baobab;

static int failures = 0, checked = 0;

static Topology topo(int p, int per_node, int hosts_per, const std::string& spec) {
  std::vector<int> keys(p);
  std::vector<std::string> hosts(p), addr(p);
  for (int r = 0; r < p; ++r) {
    keys[r] = r / per_node;
    hosts[r] = "h" + std::to_string(r / (per_node * hosts_per));
  }
  return make_topology(p, keys, hosts, addr, spec);
}

// Links unlike each other: latencies growing with the level, a slow node
// link on every third node, rendezvous from 1 KiB.
static CostModel uneven_model(const Topology& t, const CostModel& host) {
  CostModel uneven = host;
  for (size_t L = 0; L < uneven.link.size(); ++L) uneven.link[L].alpha = 0.5e-6 * static_cast<double>(1 + 3 * L);
  uneven.node_beta.assign(t.size(), 0.0);
  for (int r = 0; r < t.size(); ++r)
    if (t.node_of(r) % 3 == 2) uneven.node_beta[r] = 4 * host.at(1).beta;
  uneven.rndv_bytes = 1024;
  return uneven;
}

static void fail(const Algorithm& a, int p, size_t count, int r, bool dev, const char* what, double bound, double ref) {
  std::fprintf(stderr, "%s p=%d count=%zu rank %d device %d: bound %.9g %s %.9g\n", a.name.c_str(), p, count, r, dev,
               bound, what, ref);
  ++failures;
}

int main() {
  struct T {
    int p, per_node, hosts_per;
    const char* spec;
  };
  const T tops[] = {{2, 1, 1, ""}, {5, 1, 5, ""}, {8, 4, 1, ""}, {12, 4, 1, ""}, {16, 2, 2, "switch=2,nodes=4"},
                    {24, 8, 1, ""}, {32, 4, 2, "switch=4,nodes=8"}};
  int with_bound = 0;
  for (const Algorithm& a : algorithms()) with_bound += a.bound != nullptr;
  for (const T& tt : tops) {
    const Topology t = topo(tt.p, tt.per_node, tt.hosts_per, tt.spec);
    Config cfg;
    cfg.sim_symmetric = false;  // the full replay
    const CostModel host = cfg.model(t);
    const CostModel uneven = uneven_model(t, host);
    for (const CostModel& m : {host, uneven, host.for_device(DevicePath::staged, true),
                               host.for_device(DevicePath::automatic, false)}) {
      for (const Algorithm& a : algorithms()) {
        if (!a.bound) continue;
        for (size_t count : {size_t{0}, size_t{1}, size_t{7}, static_cast<size_t>(tt.p) * 1000 + 3,
                             static_cast<size_t>(tt.p) * 4096}) {
          CollDesc d;
          d.coll = a.coll;
          d.count = count;
          d.elem_size = 4;
          if (!a.unsupported(t, d).empty()) continue;
          const double whole = cost_algorithm(a, t, cfg, m, d, 1).predicted;
          double piped = whole;
          size_t lane = std::max<size_t>(1, count);  // elements per segment of the pipelined replay
          Config seg = cfg;
          seg.segment_bytes = std::max<size_t>(4, count);  // four segments (when it can be cut)
          if (a.segmentable && count >= 16) {
            seg.segment_bytes = count;  // count * 4 bytes: four segments of `count` bytes
            piped = cost_algorithm(a, t, seg, m, d, 4).predicted;
            lane = segmentation(seg, d).second;
          }
          for (int r = 0; r < tt.p; ++r) {
            const double b = a.bound(t, d, r, m, 0), bp = a.bound(t, d, r, m, lane);
            const double built = finish_lower_bound(t, m, build_schedule(a, t, d, r, m), r);
            ++checked;
            if (!(b <= whole * (1 + 1e-12))) fail(a, tt.p, count, r, m.dev.on, "above the replay's", b, whole);
            if (!(bp <= piped * (1 + 1e-12))) fail(a, tt.p, count, r, m.dev.on, "(pipelined) above the replay's", bp, piped);
            if (!(bp <= b * (1 + 1e-12))) fail(a, tt.p, count, r, m.dev.on, "(pipelined) above unpipelined", bp, b);
            // as tight as the built schedule's where the ring's blocks are all alike
            if (count % static_cast<size_t>(tt.p) == 0 && !(b >= built * (1 - 1e-12))) fail(a, tt.p, count, r, m.dev.on, "below the schedule's", b, built);
          }
        }
      }
    }
  }
  // busy_time: what ranks 0 .. p-1 keep their CPU and their link busy over
  // all the segments of a pipelined call never exceeds that rank's finish in
  // the replay (the selector prunes pipelined candidates by it), with 2 and 4
  // lanes in flight and a shorter last segment.
  int busy_checked = 0, busy_positive = 0;  // (a leaf of a broadcast sends nothing)
  for (const T& tt : tops) {
    const Topology t = topo(tt.p, tt.per_node, tt.hosts_per, tt.spec);
    Config cfg;
    const CostModel host = cfg.model(t);
    const CostModel uneven = uneven_model(t, host);
    for (const CostModel& m : {host, uneven}) {
      for (const Algorithm& a : algorithms()) {
        if (!a.segmentable || a.is_family() || !(a.coll == Coll::allreduce || a.coll == Coll::bcast || a.coll == Coll::reduce))
          continue;
        CollDesc d;
        d.coll = a.coll;
        d.count = static_cast<size_t>(tt.p) * 1000 + 3;
        d.elem_size = 4;
        if (!a.unsupported(t, d).empty()) continue;
        const size_t nseg = 5, seg = (d.count + nseg - 1) / nseg;
        CollDesc sd = d, ld = d;
        sd.count = seg;
        ld.count = d.count - (nseg - 1) * seg;
        std::vector<Schedule> ss, ls;
        for (int r = 0; r < tt.p; ++r) {
          ss.push_back(build_schedule(a, t, sd, r, m));
          ls.push_back(build_schedule(a, t, ld, r, m));
        }
        std::vector<std::vector<SimLane>> lanes(tt.p);
        for (int r = 0; r < tt.p; ++r)
          for (size_t k = 0; k < nseg; ++k) lanes[r].push_back(SimLane{k + 1 < nseg ? &ss[r] : &ls[r], k * seg, k * seg});
        for (int window : {2, 4}) {
          const SimResult res = simulate(t, m, lanes, window);
          if (!res.error.empty()) {
            std::fprintf(stderr, "%s p=%d: %s\n", a.name.c_str(), tt.p, res.error.c_str());
            ++failures;
          }
          for (int r = 0; r < tt.p; ++r) {
            const Busy one = busy_time(t, m, ss[r], r), last = busy_time(t, m, ls[r], r);
            const double busy = std::max(4 * one.cpu + last.cpu, 4 * one.inj + last.inj);
            ++busy_checked;
            busy_positive += busy > 0;
            if (!(busy <= res.finish[r] * (1 + 1e-12))) fail(a, tt.p, d.count, r, false, "(busy) above the replay's finish", busy, res.finish[r]);
          }
        }
      }
    }
  }
  if (busy_checked < 100 || busy_positive < busy_checked / 2) {
    std::fprintf(stderr, "%d busy times checked, %d of them positive\n", busy_checked, busy_positive);
    return 1;
  }
  std::printf("%d busy times checked\n", busy_checked);
  if (with_bound < 3 || checked == 0) {
    std::fprintf(stderr, "%d algorithms with a bound, %d checks: expected ring, leader(ring), split_rail(ring)\n",
                 with_bound, checked);
    return 1;
  }
  std::printf("%d algorithms with their own bound, %d bounds checked, %d failures\n", with_bound, checked, failures);
  return failures ? 1 : 0;
}

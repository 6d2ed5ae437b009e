// The replay's own mechanics on hand-made schedules, where the answer is
// known without a simulator:
//  - consecutive rounds that compile alike are stored once with a count
//    (simulate.cpp): a chain of equal rounds takes exactly its rounds' sum,
//    and a round that differs in the middle (size, peer or local work) is
//    priced as itself, not as its neighbours;
//  - a channel's messages stay in MPI order however many are in flight: a
//    sender that runs six rounds ahead of its receiver, with data, delivers
//    every payload to its receive; receives posted in another order than the
//    sizes were sent are reported as a size mismatch naming the round;
//  - rendezvous messages that wait for their receives leave, once the
//    receives are posted together, in the order their sender posted them
//    (not in the order the replay numbered their channels);
//  - channels are found however many senders a rank has (past the short
//    list a rank scans), and a send that no receive names is reported as
//    unreceived, naming its sender and receiver;
//  - a replay given a limit (the selector's time to beat) stops once the
//    job is known to finish after it, and then reports a lower bound of the
//    full replay's time above the limit; at a limit equal to the full time
//    it runs to the end. Every algorithm of every collective, whole and
//    pipelined, on the host model and on one with uneven links.
//
// Usage: test_replay   exit status 0 on success.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "baobab/algorithms.hpp"
#include "baobab/config.hpp"
#include "baobab/schedule.hpp"
#include "baobab/simulate.hpp"
#include "baobab/topology.hpp"

using namespace baobab;

static int failures = 0;

static void check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL: %s\n", what.c_str());
    ++failures;
  }
}

// p ranks, per_node to a node and to a host, grouped as `spec` says.
static Topology topo(int p, int per_node, const std::string& spec) {
  std::vector<int> keys(p);
  std::vector<std::string> hosts(p), addr(p);
  for (int r = 0; r < p; ++r) {
    keys[r] = r / per_node;
    hosts[r] = "h" + std::to_string(r / per_node);
  }
  return make_topology(p, keys, hosts, addr, spec);
}

static Topology two_nodes() {
  return make_topology(2, {0, 1}, {"a", "b"}, {}, "nodes=2");
}

static SimResult replay(const Topology& t, const CostModel& m, const std::vector<Schedule>& s, SimData* data = nullptr) {
  std::vector<std::vector<SimLane>> lanes(s.size());
  for (size_t r = 0; r < s.size(); ++r) lanes[r].push_back(SimLane{&s[r], 0, 0});
  return simulate(t, m, lanes, 1, data);
}

// Both ranks exchange `bytes` with each other and copy `copied` bytes
// locally, once per round: a round lasts bytes*beta + alpha + the round's
// overhead + copied*copy.
static void exchange(Schedule& s, int peer, size_t bytes, size_t copied) {
  RoundBuilder b(s);
  b.send(peer, Ref{kIn, 0}, bytes);
  b.recv(peer, Ref{kOut, 0}, bytes);
  if (copied) b.copy(Ref{kOut, 0}, Ref{kIn, 0}, copied);
}

static void equal_rounds() {
  const Topology t = two_nodes();
  const CostModel m = CostModel::defaults(t.levels());
  auto round_time = [&](size_t bytes, size_t copied) {
    return static_cast<double>(bytes) * m.at(1).beta + m.at(1).alpha + m.round_overhead +
           static_cast<double>(copied) * m.copy;
  };
  const int R = 40;
  // R equal rounds; then the same with round 17 larger, with round 23
  // copying less, and with round 23 copying nothing.
  for (int variant = 0; variant < 4; ++variant) {
    std::vector<Schedule> s(2);
    double want = 0;
    for (int k = 0; k < R; ++k) {
      size_t bytes = 1000, copied = 500;
      if (variant == 1 && k == 17) bytes = 3000;
      if (variant == 2 && k == 23) copied = 100;
      if (variant == 3 && k == 23) copied = 0;
      for (int r = 0; r < 2; ++r) exchange(s[r], 1 - r, bytes, copied);
      want += round_time(bytes, copied);
    }
    const SimResult res = replay(t, m, s);
    check(res.error.empty(), "equal rounds: " + res.error);
    check(std::fabs(res.time - want) <= 1e-12 * want,
          "variant " + std::to_string(variant) + ": replay " + std::to_string(res.time) + " s, rounds' sum " +
              std::to_string(want) + " s");
    check(res.max_messages == static_cast<size_t>(R), "every round's message counted");
  }
  // Alike rounds whose peers differ are not alike: four ranks on four
  // nodes, rank 0 sending to 1, 2, 3, 1, 2, 3... while they receive.
  const Topology t4 = make_topology(4, {0, 1, 2, 3}, {"a", "b", "c", "d"}, {}, "nodes=4");
  std::vector<Schedule> s(4);
  const int per_peer = 5;
  for (int k = 0; k < 3 * per_peer; ++k) {
    RoundBuilder b(s[0]);
    b.send(1 + k % 3, Ref{kIn, 0}, 100);
  }
  for (int q = 1; q < 4; ++q) {
    RoundBuilder b(s[q]);
    for (int k = 0; k < per_peer; ++k) b.recv(0, Ref{kOut, 0}, 100);
  }
  const SimResult res = replay(t4, m, s);
  check(res.error.empty(), "rotating peers: " + res.error);
  check(res.total_bytes == 3 * per_peer * 100, "rotating peers: every message sent");
}

// Rank 0 sends six messages of different sizes to rank 1, one per round,
// while rank 1 copies a large buffer; then rank 1 receives all six in one
// round. They wait in one channel, in order.
static void many_in_flight(bool swapped) {
  const Topology t = two_nodes();
  const CostModel m = CostModel::defaults(t.levels());
  const int K = 6;
  const size_t big = 4 << 20;
  std::vector<size_t> size(K), off(K);
  size_t total = 0;
  for (int k = 0; k < K; ++k) {
    size[k] = 100 * static_cast<size_t>(k + 1);
    off[k] = total;
    total += size[k];
  }
  std::vector<Schedule> s(2);
  for (int k = 0; k < K; ++k) {
    RoundBuilder b(s[0]);
    b.send(1, Ref{kIn, off[k]}, size[k]);
  }
  {
    RoundBuilder b(s[1]);
    b.copy(Ref{kScratch, 0}, Ref{kIn, 0}, big);
  }
  s[1].add_scratch(big);
  {
    RoundBuilder b(s[1]);
    for (int k = 0; k < K; ++k) {
      const int j = swapped && k < 2 ? 1 - k : k;  // the first two posted the other way round
      b.recv(0, Ref{kOut, off[j]}, size[j]);
    }
  }
  SimData data;
  data.in.assign(2, std::vector<char>(big));
  data.out.assign(2, std::vector<char>(total, 0));
  for (size_t i = 0; i < big; ++i) data.in[0][i] = static_cast<char>(i * 7 + 3);
  const SimResult res = replay(t, m, s, &data);
  if (swapped) {
    check(res.error.find("size mismatch: rank 1 segment 0 round 1 expects 200 bytes from rank 0, which sent 100") !=
              std::string::npos,
          "swapped receives reported: '" + res.error + "'");
    return;
  }
  check(res.error.empty(), "six in flight: " + res.error);
  bool same = true;
  for (size_t i = 0; i < total; ++i) same = same && data.out[1][i] == data.in[0][i];
  check(same, "six in flight: every payload in its receive");
  check(res.finish[1] >= static_cast<double>(big) * m.copy, "six in flight: rank 1 received after its copy");
  check(res.finish[0] < static_cast<double>(big) * m.copy, "six in flight: rank 0 ran ahead (eager sends)");
}

// Rank 2 sends one rendezvous message to rank 1, then one to rank 0, in
// one round; ranks 0 and 1 copy a buffer first (as long on both) and then
// post their receives at one instant. Rank 2's link takes the two in its
// order: rank 1's message arrives first, a message's time on the wire
// before rank 0's. Compiling rank by rank meets rank 0's channel first,
// which must not decide.
static void release_order() {
  const Topology t = topo(3, 1, "nodes=3");
  const CostModel m = CostModel::defaults(t.levels());
  const size_t bytes = static_cast<size_t>(m.rndv_bytes) * 4, big = 1 << 20;
  std::vector<Schedule> s(3);
  for (int r : {0, 1}) {
    s[r].add_scratch(big);
    {
      RoundBuilder b(s[r]);
      b.copy(Ref{kScratch, 0}, Ref{kIn, 0}, big);
    }
    RoundBuilder b(s[r]);
    b.recv(2, Ref{kOut, 0}, bytes);
  }
  {
    RoundBuilder b(s[2]);
    b.send(1, Ref{kIn, 0}, bytes);
    b.send(0, Ref{kIn, 0}, bytes);
  }
  const SimResult res = replay(t, m, s);
  check(res.error.empty(), "release order: " + res.error);
  const double tx = static_cast<double>(bytes) * m.node_link_beta(2);
  check(res.finish[1] < res.finish[0], "release order: rank 1 (sent first) done first");
  check(std::fabs(res.finish[0] - res.finish[1] - tx) < 1e-9 * res.finish[0],
        "release order: rank 0 a message later (" + std::to_string(res.finish[0] - res.finish[1]) + " s, not " +
            std::to_string(tx) + ")");
}

// Rank 0 receives once from each of 39 others (more than a rank scans
// through), in an order unlike the senders'; the last sender also sends to
// rank 1, which posts no receive.
static void many_senders(bool unnamed) {
  const int p = 40;
  const Topology t = topo(p, 4, "nodes=10");
  const CostModel m = CostModel::defaults(t.levels());
  std::vector<Schedule> s(p);
  {
    RoundBuilder b(s[0]);
    for (int k = 0; k < p - 1; ++k) b.recv(1 + (k * 7) % (p - 1), Ref{kOut, 0}, 8 + static_cast<size_t>(k));
  }
  for (int q = 1; q < p; ++q) {
    RoundBuilder b(s[q]);
    const int k = [&] {
      for (int i = 0; i < p - 1; ++i)
        if (1 + (i * 7) % (p - 1) == q) return i;
      return -1;
    }();
    b.send(0, Ref{kIn, 0}, 8 + static_cast<size_t>(k));
    if (unnamed && q == p - 1) b.send(1, Ref{kIn, 0}, 16);
  }
  const SimResult res = replay(t, m, s);
  if (unnamed) {
    check(res.error == "unreceived message: rank 39 -> rank 1 segment 0",
          "a send no receive names: '" + res.error + "'");
    return;
  }
  check(res.error.empty(), "39 senders: " + res.error);
  check(res.max_messages == 1 && res.total_bytes == static_cast<size_t>(39 * 8 + 38 * 39 / 2),
        "39 senders: every message sent once");
  check(res.finish[0] > 0 && res.finish[0] == res.time, "39 senders: rank 0 done last");
}

// Full replay, then the same with limits at, just below and at half of its
// time.
static void limits() {
  int replays = 0, cut = 0, half = 0, half_cut = 0;
  for (const char* spec : {"nodes=4", "switch=2,nodes=4"}) {
    const int p = 16;
    const Topology t = topo(p, 4, spec);
    CostModel uneven = CostModel::defaults(t.levels());
    uneven.node_beta.assign(p, 0.0);
    for (int r = 0; r < p; ++r)
      if (t.node_of(r) == 2) uneven.node_beta[r] = 3 * uneven.at(1).beta;
    uneven.rndv_bytes = 4096;
    for (const CostModel& m : {CostModel::defaults(t.levels()), uneven})
      for (const Algorithm& a : algorithms()) {
        if (a.is_family()) continue;
        for (size_t bytes : {size_t(64), size_t(1) << 20}) {
          CollDesc d;
          d.coll = a.coll;
          d.elem_size = 4;
          d.count = bytes / 4;
          if (a.coll == Coll::reduce_scatter || a.coll == Coll::allgather) d.counts.assign(p, bytes / 4 / p + 1);
          if (a.coll == Coll::alltoall) d.counts.assign(static_cast<size_t>(p) * p, bytes / 4 / p / p + 1);
          if (!a.unsupported(t, d).empty()) continue;
          std::vector<Schedule> s(p);
          for (int r = 0; r < p; ++r) s[r] = build_schedule(a, t, d, r, m);
          for (int nseg : {1, 3}) {
            std::vector<std::vector<SimLane>> lanes(p);
            for (int r = 0; r < p; ++r)
              for (int k = 0; k < nseg; ++k) lanes[r].push_back(SimLane{&s[r], 0, 0});
            const int window = nseg > 1 ? 2 : 1;
            const SimResult full = simulate(t, m, lanes, window);
            const std::string what = a.name + " " + spec + " " + std::to_string(bytes) + " B, " +
                                     std::to_string(nseg) + " lanes";
            check(full.error.empty() && !full.cut, what + ": " + full.error);
            const double T = full.time;
            if (T <= 0) continue;
            const SimResult at = simulate(t, m, lanes, window, nullptr, T);
            check(!at.cut && at.time == T, what + ": cut at a limit equal to its time");
            for (double f : {1 - 1e-6, 0.5}) {
              const double limit = T * f;
              const SimResult c = simulate(t, m, lanes, window, nullptr, limit);
              ++replays;
              cut += c.cut;
              if (f == 0.5) {
                ++half;
                half_cut += c.cut;
              }
              if (c.cut)
                check(c.time > limit && c.time <= T * (1 + 1e-9),
                      what + ": cut at " + std::to_string(c.time) + " s, limit " + std::to_string(limit) +
                          " s, full " + std::to_string(T) + " s");
              else
                check(c.time == T, what + ": not cut but its time differs");
            }
          }
        }
      }
  }
  // One round of an exchange and a long local copy: its only event is at
  // time 0, so only its remaining work tells that it ends after the limit.
  {
    const Topology t = two_nodes();
    const CostModel m = CostModel::defaults(t.levels());
    std::vector<Schedule> s(2);
    for (int r = 0; r < 2; ++r) exchange(s[r], 1 - r, 1000, 4 << 20);
    const double T = replay(t, m, s).time;
    std::vector<std::vector<SimLane>> lanes(2);
    for (int r = 0; r < 2; ++r) lanes[r].push_back(SimLane{&s[r], 0, 0});
    const SimResult c = simulate(t, m, lanes, 1, nullptr, T / 2);
    check(c.cut && c.time > T / 2 && c.time <= T, "one long round: cut by its remaining work, at " +
                                                      std::to_string(c.time) + " s of " + std::to_string(T) + " s");
  }
  std::printf("limits: %d of %d replays under a limit cut (%d of %d at half the time), every bound within the full time\n", cut, replays, half_cut, half);
}

// Every move of every symmetry the replay may fold by maps the ranks onto
// themselves, blocks onto blocks: also where a switch holds a number of
// nodes that is not a power of two (10 nodes in 2 switches; 12 nodes per
// switch, 4 switches of 2 ranks per node).
static void symmetries() {
  struct T {
    int p, per_node;
    const char* spec;
  };
  for (const T& c : {T{10, 1, "switch=2,nodes=10"}, T{96, 2, "switch=4,nodes=48"}, T{64, 8, "switch=2,nodes=8"},
                     T{48, 4, "switch=4,nodes=12"}}) {
    const Topology t = topo(c.p, c.per_node, c.spec);
    const CostModel m = CostModel::defaults(t.levels());
    for (bool fold : {false, true})
      for (const Symmetry& sym : job_symmetries(t, m, fold))
        for (int k = 0; k < sym.generators(); ++k) {
          std::vector<int> hit(c.p, 0);
          bool inside = true;
          for (int r = 0; r < c.p; ++r) {
            const int g = sym.move(r, k);
            if (g < 0 || g >= c.p) inside = false;
            else hit[g]++;
          }
          bool perm = inside;
          for (int h : hit) perm = perm && h == 1;
          check(perm, std::string(c.spec) + ": " + symmetry_name(sym.kind) + " generator " + std::to_string(k) +
                          " is not a permutation of the ranks");
        }
  }
}

int main() {
  symmetries();
  limits();
  equal_rounds();
  many_in_flight(false);
  many_in_flight(true);
  release_order();
  many_senders(false);
  many_senders(true);
  if (failures) {
    std::fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  std::printf("test_replay: ok\n");
  return 0;
}

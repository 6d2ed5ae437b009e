// The replay's own mechanics on hand-made schedules, where the answer is
// known without a simulator:
//  - consecutive rounds that compile alike are stored once with a count
//    (simulate.cpp): a chain of equal rounds takes exactly its rounds' sum,
//    and a round that differs in the middle (size, peer or local work) is
//    priced as itself, not as its neighbours;
//  - a channel's messages stay in MPI order however many are in flight: a
//    sender that runs six rounds ahead of its receiver, with data, delivers
//    every payload to its receive; receives posted in another order than the
//    sizes were sent are reported as a size mismatch naming the round.
//
// Usage: test_replay   exit status 0 on success.
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

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

int main() {
  equal_rounds();
  many_in_flight(false);
  many_in_flight(true);
  if (failures) {
    std::fprintf(stderr, "%d failures\n", failures);
    return 1;
  }
  std::printf("test_replay: ok\n");
  return 0;
}

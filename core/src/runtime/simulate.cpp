#include "baobab/simulate.hpp"

#include "baobab/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <cstring>
#include <queue>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>

namespace baobab {

namespace {

// The messages in flight from one rank to another for one segment, in MPI
// order (a FIFO: `head` is the next to match). The matched ones are dropped
// whenever none is left, so a queue holds only what is in flight, and
// message and receive indices count from the first message not dropped
// (an unmatched message keeps its index until it is matched). Most
// channels hold one message at a time (many carry only one): it is kept in
// place, without an allocation. 40 bytes: a receiving rank's queues share
// few cache lines.
struct Queue {
  struct Slot {
    double arrive;  // +inf until settled
    size_t bytes;
  };
  Slot one{};                        // the slots while at most one
  std::unique_ptr<Slot[]> heap;      // else
  uint32_t n = 0, cap = 1;           // slots in use, and room
  uint32_t head = 0;                 // the next to match
  uint32_t posted = 0;               // receives posted for these messages (in order) so far

  Slot& at(size_t i) { return cap == 1 ? one : heap[i]; }
  void push(double arrive, size_t bytes) {
    if (n == cap) {
      const uint32_t room = cap * 4;
      std::unique_ptr<Slot[]> more(new Slot[room]);
      for (uint32_t i = 0; i < n; ++i) more[i] = at(i);
      heap.swap(more);
      cap = room;
    }
    at(n++) = Slot{arrive, bytes};
  }
  // No message to match next, or the next has not arrived (+inf: waiting
  // for its receive to be posted, under the rendezvous rule).
  bool empty() { return head == n || std::isinf(at(head).arrive); }
  // Drops the messages if every one is matched (then true).
  bool drop_matched() {
    if (head != n) return false;
    posted -= n;
    n = 0;
    head = 0;
    return true;
  }
};

// The schedules as the replay reads them: for each round its receives and
// then its sends (each kind in the order of the round's operations), 16
// bytes each, and the CPU time of each local operation; one rank's rounds
// follow one another in flat arrays, read in order. Consecutive rounds
// that compile alike (a ring's 2(p-1) rounds of one chunk each to the same
// peers) are stored once with their count: the compiled job of a 4,096-rank
// ring is then a few entries per rank, not 8,190, and stays in the cache.
struct PComm {
  int32_t peer;
  uint32_t chan;  // the (sender, receiver) pair the message travels on
  uint64_t word;  // bytes (low 48 bits), link level (8 bits), off the host (bit 56)
  size_t bytes() const { return static_cast<size_t>(word & ((uint64_t{1} << 48) - 1)); }
  int level() const { return static_cast<int>((word >> 48) & 0xff); }
  bool net() const { return ((word >> 56) & 1) != 0; }
};
struct PRound {
  uint32_t nrecv = 0, nsend = 0, nlocal = 0;
  uint32_t repeat = 1;  // consecutive rounds alike
};
// With a limit (host buffers), beside each PRound: what one such round
// takes at the least (its longest send on its sender's side, the overhead,
// its local work), the rank's CPU and injection time it needs, and the
// least time of the program's rounds after this entry's.
struct PBound {
  double least = 0, cpu = 0, inj = 0, after = 0;
};
struct Prog {  // one schedule of one rank
  const Schedule* schedule = nullptr;
  size_t round0 = 0, comm0 = 0, local0 = 0;
  double cpu = 0, inj = 0;  // with a limit: the whole program's CPU and injection time
};

struct Proc {  // one segment of one rank
  size_t round = 0;      // in the schedule
  uint32_t run = 0;      // its compiled entry (from the program's round0)
  uint32_t repeated = 0;  // rounds of that entry done
  uint32_t prog = 0;
  size_t comm = 0, local = 0;  // the current round's first entries in the compiled arrays
  bool started = false, done = false, blocked = false;
  bool fresh = false;  // its round started at this instant and has not tried to complete yet
  bool listed = false;  // in the instant's list of rounds to complete
  double round_start = 0, send_end = 0, max_arrive = 0;
  size_t matched = 0;
  size_t unsent = 0;  // sends of the round still waiting for their receive (rendezvous)
};

// The i-th operation of `kind` in a round (the data and device paths, which
// need its buffers).
const Op& nth_op(const Round& round, OpKind kind, size_t i) {
  for (const Op& op : round.ops)
    if (op.kind == kind && i-- == 0) return op;
  throw Error("simulate: a round lost an operation");
}

}  // namespace

const char* symmetry_name(Symmetry::Kind k) {
  switch (k) {
    case Symmetry::Kind::none: return "none";
    case Symmetry::Kind::translate: return "translate";
    case Symmetry::Kind::xor_mask: return "xor";
    case Symmetry::Kind::rotate: return "rotate";
    case Symmetry::Kind::rotate_xor: return "rotate+xor";
  }
  return "?";
}

int Symmetry::generators() const {
  if (kind == Kind::translate) return 1;
  if (kind == Kind::rotate) return size > block ? 2 : 1;
  if (kind == Kind::rotate_xor) {
    int k = 1;
    while ((block << (k - 1)) < size) ++k;
    return k;
  }
  if (kind != Kind::xor_mask) return 0;
  int k = 0;
  while ((period << k) < size) ++k;
  return k;
}

namespace {

bool pow2(int x) { return x > 0 && (x & (x - 1)) == 0; }

// Whether every move of `s` keeps the job's hosts and node link rates (the
// groups are blocks, checked by the caller): checked on the generators, which
// is enough, as every move is a product of them.
bool keeps_hosts_and_links(const Topology& t, const CostModel& m, const Symmetry& s) {
  const int p = t.size();
  const bool rates = !m.node_beta.empty();  // else every node's link is level 1's
  std::vector<int> f, finv;                  // host id -> its image, and back
  for (int k = 0; k < s.generators(); ++k) {
    f.assign(t.num_hosts(), -1);
    finv.assign(t.num_hosts(), -1);
    for (int r = 0; r < p; ++r) {
      const int g = s.move(r, k);
      if (rates && m.node_link_beta(r) != m.node_link_beta(g)) return false;
      const int a = t.host_id(r), b = t.host_id(g);
      if ((f[a] >= 0 && f[a] != b) || (finv[b] >= 0 && finv[b] != a)) return false;
      f[a] = b;
      finv[b] = a;
    }
  }
  return true;
}

}  // namespace

int block_period(const Topology& t) {
  const int p = t.size();
  if (t.levels() < 1 || p < 1) return std::max(p, 1);
  int block = p;
  for (int L = 0; L < t.levels(); ++L) {
    const int g = static_cast<int>(t.members(L, 0).size());
    if (g <= 0 || p % g != 0 || t.num_groups(L) != p / g) return p;
    for (int r = 0; r < p; ++r)
      if (t.group(L, r) != r / g) return p;
    block = g;
  }
  return block;
}

std::vector<Symmetry> job_symmetries(const Topology& t, const CostModel& m, bool node_fold) {
  std::vector<Symmetry> out;
  const int p = t.size();
  const int block = block_period(t);
  if (p < 2 || block >= p) return out;  // one block: nothing to fold
  const int node = static_cast<int>(t.members(0, 0).size());
  if (node_fold && t.levels() == 2 && node < block) {
    Symmetry rot{Symmetry::Kind::rotate, node, p};
    rot.block = block;
    rot.share = block / node;
    if (keeps_hosts_and_links(t, m, rot)) out.push_back(rot);
    rot.kind = Symmetry::Kind::rotate_xor;
    if (pow2(p / block) && keeps_hosts_and_links(t, m, rot)) out.push_back(rot);
    Symmetry x{Symmetry::Kind::xor_mask, node, p};
    x.share = block / node;
    if (pow2(node) && pow2(p / node) && pow2(block) && keeps_hosts_and_links(t, m, x)) out.push_back(x);
  }
  Symmetry tr{Symmetry::Kind::translate, block, p};
  if (keeps_hosts_and_links(t, m, tr)) out.push_back(tr);
  Symmetry x{Symmetry::Kind::xor_mask, block, p};
  if (pow2(block) && pow2(p / block) && keeps_hosts_and_links(t, m, x)) out.push_back(x);
  return out;
}

namespace {

// A message's time on the wire as the replay prices it, alone: a copy by the
// CPU between ranks of one host; else the slowest hop (either node's link,
// the uplinks of the groups it leaves).
double wire_time(const CostModel& m, int r, int peer, int L, bool net, double bytes) {
  if (!net) return bytes * m.at(L).beta;
  double x = std::max(bytes * m.node_link_beta(r), bytes * m.node_link_beta(peer));
  for (int l = 1; l < L; ++l) x = std::max(x, bytes * m.at(l + 1).beta);
  return x;
}

bool off_host(const Topology& t, int r, int peer, int L) { return !(L == 0 || t.host_id(r) == t.host_id(peer)); }

}  // namespace

namespace {

bool near(const Topology& t, int r, int peer) {
  return t.node_of(r) == t.node_of(peer) && t.host_id(r) == t.host_id(peer);
}

// One round of rank r alone, as the replay prices it at the least: the time
// until its last send is through (on device buffers: after the copies that
// precede the messages), its local work after the messages (on device
// buffers: the copies of the received payloads onto the device too), and
// for node_estimate the largest latency and the bytes leaving and entering
// the host.
struct RoundCost {
  double tx = 0, local = 0, alpha = 0, net_alpha = 0, out_net = 0, in_net = 0;
  bool comm = false;
};

RoundCost round_cost(const Topology& t, const CostModel& m, const Schedule& s, const Round& round, int r) {
  RoundCost c;
  const bool dev = m.dev.on;
  double d2h = 0, pre_copy = 0, h2d = 0, post_copy = 0;
  for (const Op& op : round.ops) {
    const size_t nbytes = op.count * s.elem_size;
    const double bytes = static_cast<double>(nbytes);
    if (op.kind == OpKind::send || op.kind == OpKind::recv) {
      c.comm = true;
      const int L = t.link_level(r, op.peer);
      const bool net = off_host(t, r, op.peer, L);
      const DeviceRoute rt = dev && nbytes ? m.device_route(nbytes, L, near(t, r, op.peer)) : DeviceRoute::direct;
      double wire = bytes;
      if (rt == DeviceRoute::ipc) {
        wire = 128;
        (op.kind == OpKind::send ? pre_copy : post_copy) +=
            bytes * (op.kind == OpKind::send ? m.dev.copy : std::max(m.dev.copy, m.dev.peer));
      } else if (rt == DeviceRoute::staged) {
        (op.kind == OpKind::send ? d2h : h2d) += bytes * (op.kind == OpKind::send ? m.dev.d2h : m.dev.h2d);
      }
      const bool aware = dev && rt == DeviceRoute::direct;
      const double alpha = m.at(L).alpha + (aware ? m.dev.aware_alpha : 0.0);
      c.alpha = std::max(c.alpha, alpha);
      if (net) c.net_alpha = std::max(c.net_alpha, alpha);
      if (op.kind == OpKind::send) {
        double x = wire_time(m, r, op.peer, L, net, wire);
        if (aware && net) x = std::max(x, wire * m.dev.aware_beta);
        c.tx = std::max(c.tx, x);
      }
      (op.kind == OpKind::send ? c.out_net : c.in_net) += net ? wire : 0.0;
    } else if (op.kind == OpKind::reduce) {
      c.local += bytes * (dev ? m.dev.gamma : m.gamma);
    } else if (op.kind == OpKind::copy) {
      c.local += bytes * (dev ? m.dev.copy : m.copy);
    }
  }
  if (d2h > 0 || pre_copy > 0) c.tx += m.dev.latency + std::max(d2h, pre_copy);
  if (dev && (h2d > 0 || post_copy > 0 || c.local > 0)) c.local += m.dev.latency + h2d + post_copy;
  return c;
}

}  // namespace

double finish_lower_bound(const Topology& t, const CostModel& m, const Schedule& s, int r) {
  double total = 0;
  for (const Round& round : s.rounds) {
    const RoundCost c = round_cost(t, m, s, round, r);
    total += c.tx + (c.comm ? m.round_overhead : 0.0) + c.local;
  }
  return total;
}

Busy busy_time(const Topology& t, const CostModel& m, const Schedule& s, int r) {
  Busy b;
  if (m.dev.on) return b;
  for (const Round& round : s.rounds)
    for (const Op& op : round.ops) {
      const double bytes = static_cast<double>(op.count * s.elem_size);
      if (op.kind == OpKind::send) {
        const int L = t.link_level(r, op.peer);
        if (off_host(t, r, op.peer, L)) b.inj += bytes * m.node_link_beta(r);
        else b.cpu += bytes * m.at(L).beta;
      } else if (op.kind == OpKind::reduce) {
        b.cpu += bytes * m.gamma;
      } else if (op.kind == OpKind::copy) {
        b.cpu += bytes * m.copy;
      }
    }
  return b;
}

double message_floor(const Topology& t, const CostModel& m, int from, int to, size_t bytes) {
  const int L = t.link_level(from, to);
  const double wire = static_cast<double>(m.dev.on ? std::min<size_t>(bytes, 128) : bytes);
  return wire_time(m, from, to, L, off_host(t, from, to, L), wire) + m.at(L).alpha;
}

double node_estimate(const Topology& t, const CostModel& m, const std::vector<const Schedule*>& s,
                     const std::vector<int>& ranks) {
  size_t rounds = 0;
  for (const Schedule* x : s) rounds = std::max(rounds, x->rounds.size());
  double total = 0;
  for (size_t k = 0; k < rounds; ++k) {
    double slowest = 0, out_bytes = 0, in_bytes = 0, net_alpha = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (k >= s[i]->rounds.size()) continue;
      const RoundCost c = round_cost(t, m, *s[i], s[i]->rounds[k], ranks[i]);
      out_bytes += c.out_net;
      in_bytes += c.in_net;
      net_alpha = std::max(net_alpha, c.net_alpha);
      slowest = std::max(slowest, c.tx + c.alpha + (c.comm ? m.round_overhead : 0.0) + c.local);
    }
    // The node's link carries what all its ranks send off the node in the round.
    const double link = std::max(out_bytes, in_bytes) * m.node_link_beta(ranks.front()) + net_alpha + m.round_overhead;
    total += std::max(slowest, link);
  }
  return total;
}

namespace {

// Sorts keys ascending: a radix sort by bytes (only the bytes in which the
// keys differ) for the long lists of a lock-step instant, where a
// comparison sort would cost log n passes.
void sort_keys(std::vector<uint64_t>& v, std::vector<uint64_t>& tmp) {
  const size_t n = v.size();
  if (n < 128) {
    std::sort(v.begin(), v.end());
    return;
  }
  uint64_t all_or = 0, all_and = ~uint64_t{0};
  for (const uint64_t k : v) {
    all_or |= k;
    all_and &= k;
  }
  const uint64_t differ = all_or ^ all_and;
  tmp.resize(n);
  for (int shift = 0; shift < 64 && (differ >> shift); shift += 8) {
    if (((differ >> shift) & 0xff) == 0) continue;
    size_t count[257] = {};
    for (const uint64_t k : v) count[((k >> shift) & 0xff) + 1]++;
    for (int b = 0; b < 256; ++b) count[b + 1] += count[b];
    for (const uint64_t k : v) tmp[count[(k >> shift) & 0xff]++] = k;
    v.swap(tmp);
  }
}

// The replay's events: the rounds that begin, by instant. Rounds of many
// ranks often begin at one instant (lock-step schedules): a push at a time
// goes to that instant's heap entry and list of keys, found in a small table
// of the pending instants by time (where two times share a slot, a time may
// get a second entry). An instant is taken whole (every entry at its time),
// its keys in order, as from a heap of events.
class Instants {
 public:
  bool empty() const { return heap_.empty(); }
  double next() const { return time_of(heap_.top().key); }
  void push(double at, uint64_t key) {
    if (last_ == kNone || at != last_at_) {
      // A pending instant at this time, if the table of recent ones has it
      // (else a second heap entry for the time: merged when taken).
      Recent& c = recent_[slot(at)];
      if (c.id != kNone && lists_[c.id].at == at && lists_[c.id].live) {
        last_ = c.id;
      } else {
        uint32_t id;
        if (free_.empty()) {
          id = static_cast<uint32_t>(lists_.size());
          lists_.emplace_back();
        } else {
          id = free_.back();
          free_.pop_back();
        }
        lists_[id].at = at;
        lists_[id].live = true;
        heap_.push(Entry{key_of(at), id});
        c.id = id;
        last_ = id;
      }
      last_at_ = at;
    }
    lists_[last_].keys.push_back(key);
  }
  // The keys of the earliest instant, in order, into `out` (replaced).
  void pop(std::vector<uint64_t>& out) {
    out.clear();
    const uint64_t at = heap_.top().key;
    while (!heap_.empty() && heap_.top().key == at) {
      const uint32_t id = heap_.top().id;
      heap_.pop();
      List& l = lists_[id];
      if (out.empty()) out.swap(l.keys);
      else out.insert(out.end(), l.keys.begin(), l.keys.end());
      l.keys.clear();
      l.live = false;
      free_.push_back(id);
      if (id == last_) last_ = kNone;
    }
    if (!std::is_sorted(out.begin(), out.end())) sort_keys(out, tmp_);
  }

 private:
  static constexpr uint32_t kNone = ~0u;
  static constexpr size_t kRecent = 256;
  // A time as an integer of the same order (the sign bit flipped, and the
  // other bits too for a negative time; -0 taken as +0): the heap compares
  // integers.
  static uint64_t key_of(double x) {
    x += 0.0;
    uint64_t b;
    std::memcpy(&b, &x, sizeof b);
    return (b >> 63) ? ~b : b | (uint64_t{1} << 63);
  }
  static double time_of(uint64_t k) {
    const uint64_t b = (k >> 63) ? k & ~(uint64_t{1} << 63) : ~k;
    double x;
    std::memcpy(&x, &b, sizeof x);
    return x;
  }
  struct Entry {
    uint64_t key;
    uint32_t id;
    bool operator>(const Entry& o) const { return key > o.key; }
  };
  struct List {
    std::vector<uint64_t> keys;
    double at = 0;
    bool live = false;
  };
  struct Recent {
    uint32_t id = kNone;
  };
  static size_t slot(double x) {
    uint64_t b;
    std::memcpy(&b, &x, sizeof b);
    return static_cast<size_t>((b * 0x9e3779b97f4a7c15ULL) >> 56) % kRecent;
  }
  std::priority_queue<Entry, std::vector<Entry>, std::greater<Entry>> heap_;
  std::vector<List> lists_;
  std::vector<uint32_t> free_;
  std::vector<uint64_t> tmp_;
  Recent recent_[kRecent];
  uint32_t last_ = kNone;
  double last_at_ = 0;
};

}  // namespace

SimResult simulate(const Topology& t, const CostModel& m, const std::vector<std::vector<SimLane>>& lanes, int window,
                   SimData* data, double limit, const Symmetry& sym) {
  const int p = t.size();
  const int n = sym.active() ? sym.period : p;  // the ranks replayed
  if (static_cast<int>(lanes.size()) != n || (sym.active() && data))
    throw InvalidArgument("simulate: " + std::to_string(lanes.size()) + " ranks of lanes for " + std::to_string(n) +
                          " replayed ranks" + (data ? " (no data with a symmetry)" : ""));
  SimResult res;
  res.finish.assign(n, 0.0);
  std::vector<size_t> bytes_sent(n, 0), msgs_sent(n, 0);
  // Each rank's segments, rank after rank (proc(r, seg)), and with data
  // their scratch buffers.
  std::vector<size_t> pbase(n + 1, 0);
  for (int r = 0; r < n; ++r) pbase[r + 1] = pbase[r] + lanes[r].size();
  std::vector<Proc> procv(pbase[n]);
  auto proc = [&](int r, size_t seg) -> Proc& { return procv[pbase[r] + seg]; };
  std::vector<std::vector<std::vector<char>>> scratch(data ? pbase[n] : 0);
  // cpu: when each rank's CPU is free (shared-memory copies, reductions, local
  // copies); inj: when its network injection is free; nic_*: each node's links.
  std::vector<double> cpu(n, 0.0), inj(n, 0.0), nic_out(t.num_nodes(), 0.0), nic_in(t.num_nodes(), 0.0);
  // Device buffers (m.dev.on): when each rank's device is free (reductions,
  // device-to-device copies) and its copy engines to and from pinned memory.
  const bool dev = m.dev.on;
  std::vector<double> gpu(dev ? n : 0, 0.0), d2h_eng(dev ? n : 0, 0.0), h2d_eng(dev ? n : 0, 0.0);
  auto route = [&](int r, int peer, int L, size_t bytes) {
    return dev && bytes ? m.device_route(bytes, L, near(t, r, peer)) : DeviceRoute::direct;
  };
  // up_*[l][g]: the uplink of level-l group g (l >= 1: a switch's or rack's link
  // to the level above), shared by every message that leaves or enters the group.
  std::vector<std::vector<double>> up_out(t.levels()), up_in(t.levels());
  for (int l = 1; l < t.levels(); ++l) {
    up_out[l].assign(t.num_groups(l), 0.0);
    up_in[l].assign(t.num_groups(l), 0.0);
  }
  const size_t nseg_max = [&] {
    size_t k = 1;
    for (const auto& l : lanes) k = std::max(k, l.size());
    return k;
  }();
  // Events at one instant run in the order of the rank's place in its block
  // (then rank, then segment), the same order with or without a symmetry,
  // so that folding the blocks replays every tie the way the full replay
  // does (a rank's block place is kept by every move of a Symmetry).
  const int place = sym.active() ? sym.period : block_period(t);
  // Event and completion order keys: (place, rank, segment) and (rank,
  // segment) in one integer each, a field of bits each (read back without
  // a division).
  auto bits = [](uint64_t x) {  // of x - 1, the largest value
    int b = 0;
    while (b < 64 && (uint64_t{1} << b) < x) ++b;
    return b;
  };
  const int seg_bits = bits(nseg_max), rank_bits = bits(static_cast<uint64_t>(n));
  if (bits(static_cast<uint64_t>(place)) + rank_bits + seg_bits > 64)
    throw InvalidArgument("simulate: " + std::to_string(n) + " ranks of " + std::to_string(nseg_max) +
                          " segments are more than the replay can order");
  const uint64_t seg_mask = (uint64_t{1} << seg_bits) - 1, rank_mask = (uint64_t{1} << rank_bits) - 1;

  // The schedules compiled, once per rank and distinct schedule. The
  // channels (sender, receiver) are numbered receiver by receiver: rank r's
  // are inbase[r] on, in the order its receives first name their senders
  // (insrc: each channel's sender), so that a rank's queues lie together
  // and a receive finds its channel among its own rank's few. A send's
  // channel is looked up in its receiver's list once every rank is
  // compiled; a send that no receive names gets a channel after them all.
  // A message's queue is its channel's for its segment. A message sent by a
  // representative to rank q lands in the queue of its mirror image, from
  // pull(r, q) to rep(q).
  //
  // With a limit, on host buffers, the replay also stops as soon as one
  // rank is known to finish after it: a round that begins at `now` leaves
  // its lane at least the least time of its remaining rounds, and its rank
  // at least the CPU and injection time of every round not yet begun, after
  // what its CPU, its injection and its node's link out already hold (each
  // takes work in order).
  // Margin: a relative 1e-9 over the limit, for the rounding of these sums.
  const bool bounding = limit < std::numeric_limits<double>::infinity() && !m.dev.on && !data;
  const double cut_at = limit + std::fabs(limit) * 1e-9;
  std::vector<Prog> progs;
  std::vector<PRound> prounds;
  std::vector<PBound> pbounds;  // with a limit
  std::vector<PComm> comms;
  std::vector<double> lcost;  // the CPU time of each local operation (host buffers)
  std::vector<int> insrc;                   // each channel's sender, receiver by receiver
  std::vector<uint32_t> inbase(n + 1, 0);   // rank r's channels: inbase[r] .. inbase[r + 1]
  // A rank with more than kScan senders finds them by rank (stamp: the
  // receiver that last named the rank as a sender, loc: the channel).
  constexpr uint32_t kScan = 16;
  std::vector<int> stamp;
  std::vector<uint32_t> loc;
  auto in_channel = [&](int src, int r) -> uint32_t {
    const uint32_t b = inbase[r], c = static_cast<uint32_t>(insrc.size()) - b;
    if (c > kScan) {
      if (stamp[src] == r) return loc[src];
    } else {
      for (uint32_t i = 0; i < c; ++i)
        if (insrc[b + i] == src) return b + i;
    }
    const uint32_t id = static_cast<uint32_t>(insrc.size());
    insrc.push_back(src);
    if (c + 1 > kScan) {
      if (stamp.empty()) {
        stamp.assign(p, -1);
        loc.assign(p, 0);
      }
      for (uint32_t i = c == kScan ? b : id; i <= id; ++i) {
        stamp[insrc[i]] = r;
        loc[insrc[i]] = i;
      }
    }
    return id;
  };
  std::vector<size_t> prog0(n + 1, 0);  // rank r's programs: prog0[r] .. prog0[r + 1]
  {
    size_t rounds_all = 0;
    for (int r = 0; r < n; ++r)
      for (size_t sg = 0; sg < lanes[r].size(); ++sg)
        if (sg == 0 || lanes[r][sg].schedule != lanes[r][sg - 1].schedule) rounds_all += lanes[r][sg].schedule->rounds.size();
    prounds.reserve(rounds_all);
    if (bounding) pbounds.reserve(rounds_all);
    comms.reserve(2 * rounds_all);
  }
  for (int r = 0; r < n; ++r) {
    // The last peer's channel of each kind: most rounds talk to the
    // previous round's peers.
    int last_from = -1, last_to = -1;
    uint32_t from_chan = 0;
    inbase[r] = static_cast<uint32_t>(insrc.size());
    uint64_t from_hi = 0, to_hi = 0;  // the link level and host bits of that peer
    const size_t first = progs.size();
    prog0[r] = first;
    for (size_t sg = 0; sg < lanes[r].size(); ++sg) {
      const Schedule* sch = lanes[r][sg].schedule;
      uint32_t id = static_cast<uint32_t>(progs.size());
      for (size_t j = first; j < progs.size(); ++j)  // a rank's lanes share one or two schedules
        if (progs[j].schedule == sch) id = static_cast<uint32_t>(j);
      proc(r, sg).prog = id;
      if (id != progs.size()) continue;
      progs.push_back(Prog{sch, prounds.size(), comms.size(), lcost.size()});
      const size_t es = sch->elem_size;
      auto hi_bits = [&](int peer) {
        const int L = t.link_level(r, peer);
        return (static_cast<uint64_t>(L) << 48) | (static_cast<uint64_t>(off_host(t, r, peer, L)) << 56);
      };
      auto comm = [&](const Op& op, uint32_t ch, uint64_t hi) {
        const size_t bytes = op.count * es;
        if (bytes >> 48) throw InvalidArgument("simulate: a message of " + std::to_string(bytes) + " bytes");
        comms.push_back(PComm{op.peer, ch, static_cast<uint64_t>(bytes) | hi});
      };
      for (const Round& round : sch->rounds) {
        PRound pr;
        PBound pb;
        double longest = 0;  // the round's longest send on its sender's side
        for (const Op& op : round.ops)
          if (op.kind == OpKind::recv) {
            if (op.peer != last_from) {
              last_from = op.peer;
              from_chan = in_channel(op.peer, r);
              from_hi = hi_bits(op.peer);
            }
            comm(op, from_chan, from_hi);
            pr.nrecv++;
          }
        for (const Op& op : round.ops)
          if (op.kind == OpKind::send) {
            if (op.peer != last_to) {
              last_to = op.peer;
              to_hi = hi_bits(op.peer);
            }
            comm(op, 0, to_hi);  // its channel: below, once every rank is compiled
            pr.nsend++;
            if (bounding) {
              const double bytes = static_cast<double>(op.count * es);
              if ((to_hi >> 56) & 1) {  // off the host: the sender's link
                const double x = bytes * m.node_link_beta(r);
                pb.inj += x;
                longest = std::max(longest, x);
              } else {  // a copy by the sender's CPU
                const double x = bytes * m.at(static_cast<int>((to_hi >> 48) & 0xff)).beta;
                pb.cpu += x;
                longest = std::max(longest, x);
              }
            }
          }
        double local = 0;
        for (const Op& op : round.ops) {
          const double bytes = static_cast<double>(op.count * es);
          if (op.kind == OpKind::reduce) lcost.push_back(bytes * m.gamma);
          else if (op.kind == OpKind::copy) lcost.push_back(bytes * m.copy);
          else continue;
          local += lcost.back();
          pr.nlocal++;
        }
        if (bounding) {
          pb.cpu += local;
          pb.least = longest + (pr.nrecv + pr.nsend ? m.round_overhead : 0.0) + local;
        }
        // The same as the previous round: counted there.
        if (prounds.size() > progs.back().round0) {
          PRound& last = prounds.back();
          const size_t nc = pr.nrecv + pr.nsend, nl = pr.nlocal;
          auto alike = [&] {
            const PComm* a = comms.data() + comms.size() - 2 * nc;
            for (size_t i = 0; i < nc; ++i)
              if (a[i].peer != a[i + nc].peer || a[i].chan != a[i + nc].chan || a[i].word != a[i + nc].word)
                return false;
            const double* x = lcost.data() + lcost.size() - 2 * nl;
            for (size_t i = 0; i < nl; ++i)
              if (x[i] != x[i + nl]) return false;
            return true;
          };
          if (last.nrecv == pr.nrecv && last.nsend == pr.nsend && last.nlocal == nl && last.repeat < UINT32_MAX &&
              alike()) {
            last.repeat++;
            comms.resize(comms.size() - nc);
            lcost.resize(lcost.size() - nl);
            continue;
          }
        }
        prounds.push_back(pr);
        if (bounding) pbounds.push_back(pb);
      }
      if (bounding) {
        Prog& g = progs.back();
        double after = 0;
        for (size_t i = prounds.size(); i-- > g.round0;) {
          PBound& e = pbounds[i];
          const double k = static_cast<double>(prounds[i].repeat);
          e.after = after;
          after += k * e.least;
          g.cpu += k * e.cpu;
          g.inj += k * e.inj;
        }
      }
    }
  }
  inbase[n] = static_cast<uint32_t>(insrc.size());
  prog0[n] = progs.size();
  // The sends' channels: their sender among their receiver's (by scanning a
  // short list, else by a binary search of the receiver's senders sorted).
  uint32_t nchan = inbase[n];
  std::vector<std::pair<int, int>> unnamed;  // the channels no receive names: sender and receiver
  {
    std::vector<std::pair<int, uint32_t>> sorted;  // long lists: (sender, channel), sorted by receiver
    std::vector<uint32_t> sorted0(n + 1, 0);
    for (int d = 0; d < n; ++d) {
      sorted0[d] = static_cast<uint32_t>(sorted.size());
      if (inbase[d + 1] - inbase[d] <= kScan) continue;
      for (uint32_t i = inbase[d]; i < inbase[d + 1]; ++i) sorted.emplace_back(insrc[i], i);
      std::sort(sorted.begin() + sorted0[d], sorted.end());
    }
    sorted0[n] = static_cast<uint32_t>(sorted.size());
    std::unordered_map<uint64_t, uint32_t> extra;
    auto find = [&](int src, int dst) {
      const uint32_t b = inbase[dst], e = inbase[dst + 1];
      if (e - b <= kScan) {
        for (uint32_t i = b; i < e; ++i)
          if (insrc[i] == src) return i;
      } else {
        const auto lo = sorted.begin() + sorted0[dst], hi = sorted.begin() + sorted0[dst + 1];
        const auto it = std::lower_bound(lo, hi, std::make_pair(src, uint32_t{0}));
        if (it != hi && it->first == src) return it->second;
      }
      const uint64_t key = static_cast<uint64_t>(src) * static_cast<uint64_t>(p) + static_cast<uint64_t>(dst);
      const auto [it, fresh] = extra.try_emplace(key, nchan);
      if (fresh) {
        unnamed.emplace_back(src, dst);
        ++nchan;
      }
      return it->second;
    };
    // Each rank's sends, program by program (the compiled arrays in order).
    for (int r = 0; r < n; ++r) {
      int last = -1;
      uint32_t id = 0;
      for (size_t j = prog0[r]; j < prog0[r + 1]; ++j) {
        const size_t end = j + 1 < progs.size() ? progs[j + 1].round0 : prounds.size();
        PComm* c = comms.data() + progs[j].comm0;
        for (size_t i = progs[j].round0; i < end; ++i) {
          c += prounds[i].nrecv;
          for (uint32_t k = 0; k < prounds[i].nsend; ++k, ++c) {
            if (c->peer != last) {
              last = c->peer;
              id = find(sym.pull(r, c->peer), sym.rep(c->peer));
            }
            c->chan = id;
          }
        }
      }
    }
  }
  // With a limit: each rank's CPU and injection time of the rounds not yet
  // begun, and each node's (its link out carries its ranks' messages off
  // the host one after another; a node's ranks are replayed together, as
  // blocks and folds are whole nodes).
  std::vector<double> rem_cpu(bounding ? n : 0, 0.0), rem_inj(bounding ? n : 0, 0.0);
  std::vector<double> rem_node(bounding ? t.num_nodes() : 0, 0.0);
  if (bounding)
    for (int r = 0; r < n; ++r)
      for (size_t sg = 0; sg < lanes[r].size(); ++sg) {
        rem_cpu[r] += progs[proc(r, sg).prog].cpu;
        rem_inj[r] += progs[proc(r, sg).prog].inj;
        rem_node[t.node_of(r)] += progs[proc(r, sg).prog].inj;
      }
  std::vector<Queue> queues(static_cast<size_t>(nchan) * nseg_max);
  std::vector<std::vector<std::vector<char>>> payloads(data ? queues.size() : 0);  // with data: each queue's messages
  auto queue_index = [&](uint32_t chan, size_t seg) { return static_cast<uint32_t>(chan * nseg_max + seg); };

  Instants events;

  auto ptr = [&](int r, size_t seg, const Ref& ref) -> char* {
    const SimLane& l = lanes[r][seg];
    const size_t es = l.schedule->elem_size;
    if (ref.buf == kIn) return data->in[r].data() + (ref.off + l.in_shift) * es;
    if (ref.buf == kOut) return data->out[r].data() + (ref.off + l.out_shift) * es;
    return scratch[pbase[r] + seg][ref.buf - kScratch].data() + ref.off * es;
  };

  auto start = [&](int r, size_t seg, double at) {
    events.push(at, (((static_cast<uint64_t>(r % place) << rank_bits) | static_cast<uint64_t>(r)) << seg_bits) | seg);
  };
  for (int r = 0; r < n; ++r)
    for (size_t s = 0; s < lanes[r].size() && s < static_cast<size_t>(window); ++s) start(r, s, 0.0);

  // Completes the current round of (r, seg) if every receive has its message
  // (pr.matched: the round's receives matched so far, in order).
  auto try_complete = [&](int r, size_t seg) {
    Proc& pr = proc(r, seg);
    if (pr.unsent) {  // a send still waits for its receive
      pr.blocked = true;
      return;
    }
    const Prog& g = progs[pr.prog];
    const Schedule& s = *g.schedule;
    const PRound& pround = prounds[g.round0 + pr.run];
    const PComm* rc = comms.data() + pr.comm;
    for (size_t k = pr.matched; k < pround.nrecv; ++k) {
      Queue& q = queues[queue_index(rc[k].chan, seg)];
      if (q.empty()) {
        pr.blocked = true;
        pr.matched = k;
        return;
      }
      const size_t at = q.head++;
      const size_t want = rc[k].bytes();
      const Queue::Slot got = q.at(at);
      if (got.bytes != want && res.error.empty() && !sym.loose) {
        std::ostringstream e;
        e << "size mismatch: rank " << r << " segment " << seg << " round " << pr.round << " expects " << want
          << " bytes from rank " << rc[k].peer << ", which sent " << got.bytes;
        res.error = e.str();
      }
      pr.max_arrive = std::max(pr.max_arrive, got.arrive);
      if (data && got.bytes == want && want) {
        auto& payload = payloads[queue_index(rc[k].chan, seg)];
        std::memcpy(ptr(r, seg, nth_op(s.rounds[pr.round], OpKind::recv, k).dst), payload[at].data(), want);
        std::vector<char>().swap(payload[at]);
      }
      if (q.drop_matched() && data) payloads[queue_index(rc[k].chan, seg)].clear();
    }
    pr.blocked = false;
    pr.matched = 0;
    double done = std::max({pr.round_start, pr.send_end, pr.max_arrive});
    if (pround.nrecv + pround.nsend) done += m.round_overhead;
    bool local = pround.nlocal > 0;
    if (dev || data) {
      const Round& round = s.rounds[pr.round];
      if (dev) {
        // Staged receives are copied onto the device (one engine), IPC
        // receives out of the peers' buffers; the local operations follow on
        // the device, and the host sees them done a latency later.
        double h2d_end = done, copied = done;
        bool work = local;
        for (size_t k = 0; k < pround.nrecv; ++k) {
          const size_t b = rc[k].bytes();
          const DeviceRoute rt = route(r, rc[k].peer, rc[k].level(), b);
          if (rt == DeviceRoute::staged) {
            h2d_end = std::max(h2d_end, h2d_eng[r]) + static_cast<double>(b) * m.dev.h2d;
            h2d_eng[r] = h2d_end;
            work = true;
          } else if (rt == DeviceRoute::ipc) {
            copied = std::max(copied, gpu[r]) + static_cast<double>(b) * std::max(m.dev.copy, m.dev.peer);
            gpu[r] = copied;
            work = true;
          }
        }
        done = std::max(h2d_end, copied);
        if (local) done = std::max(done, gpu[r]);
        for (const Op& op : round.ops) {
          const double bytes = static_cast<double>(op.count * s.elem_size);
          if (op.kind == OpKind::reduce) {
            done += bytes * m.dev.gamma;
            if (data && op.count) data->reduction(ptr(r, seg, op.dst), ptr(r, seg, op.a), ptr(r, seg, op.b), op.count);
          } else if (op.kind == OpKind::copy) {
            char* d = data ? ptr(r, seg, op.dst) : nullptr;
            const char* a = data ? ptr(r, seg, op.a) : nullptr;
            if (d != a || !data) done += bytes * m.dev.copy;
            if (data && d != a && op.count) std::memmove(d, a, op.count * s.elem_size);
          }
        }
        if (work) {
          gpu[r] = done;
          done += m.dev.latency;
        }
        local = false;  // priced
      }
      if (local) done = std::max(done, cpu[r]);
      for (const Op& op : round.ops) {
        if (!local) break;
        const double bytes = static_cast<double>(op.count * s.elem_size);
        if (op.kind == OpKind::reduce) {
          done += bytes * m.gamma;
          if (data && op.count) data->reduction(ptr(r, seg, op.dst), ptr(r, seg, op.a), ptr(r, seg, op.b), op.count);
        } else if (op.kind == OpKind::copy) {
          char* d = data ? ptr(r, seg, op.dst) : nullptr;
          const char* a = data ? ptr(r, seg, op.a) : nullptr;
          if (d != a || !data) done += bytes * m.copy;
          if (data && d != a && op.count) std::memmove(d, a, op.count * s.elem_size);
        }
      }
      if (local) cpu[r] = done;
    } else if (local) {
      done = std::max(done, cpu[r]);
      const double* lc = lcost.data() + pr.local;
      for (uint32_t k = 0; k < pround.nlocal; ++k) done += lc[k];
      cpu[r] = done;
    }
    if (++pr.repeated == pround.repeat) {
      pr.repeated = 0;
      pr.run++;
      pr.comm += pround.nrecv + pround.nsend;
      pr.local += pround.nlocal;
    }
    pr.round++;
    if (pr.round < s.rounds.size()) {
      start(r, seg, done);
    } else {
      pr.done = true;
      if (data) scratch[pbase[r] + seg].clear();
      res.finish[r] = std::max(res.finish[r], done);
      if (seg + window < lanes[r].size()) start(r, seg + window, done);
    }
  };

  // The messages sent at one instant. A message's arrival is settled once
  // every round starting at that instant has posted its sends: where several
  // reach one node link (or uplink) at that instant, the link takes them in
  // the order of their start, and those that start together and are as large
  // arrive together, when the last of them is through. Nothing then depends
  // on the order in which the replay visits the ranks of an instant, so a
  // folded replay (Symmetry) gives what the full one gives.
  struct Msg {
    int from, to, L;  // sender (a replayed rank), receiving rank (actual), link level
    size_t seg, bytes;
    size_t wire;  // bytes on the wire: the payload's, or an IPC descriptor's
    double begin, end, in_tx, arrive;  // arrive: so far (the sender's side, or the whole for a copy)
    double ready = 0;  // device buffers: when the copies that precede it are done
    double first = 0;  // a node fold: when the first of its images went out by the switch uplink
    double extra = 0, floor_beta = 0;  // CUDA-aware MPI: latency added, the least s/byte
    uint32_t nth = 0;  // its place among its round's sends
    bool net;
  };
  std::vector<Msg> batch;
  std::vector<uint64_t> touched, sort_tmp;  // (rank, segment): to complete if they can, each once
  auto touch = [&](int r, size_t seg) {
    Proc& pr = proc(r, seg);
    if (pr.listed) return;
    pr.listed = true;
    touched.push_back((static_cast<uint64_t>(r) << seg_bits) | seg);
  };
  // A message's use of a receiving link at this instant: the link (level in
  // the high half, 0: a node's link in; else that level's group uplink), when
  // the message may start on it, its time on it, and the message.
  struct Use {
    uint64_t link;
    double begin, tx;
    size_t msg;
    bool operator<(const Use& o) const {
      return link != o.link ? link < o.link : begin != o.begin ? begin < o.begin : tx != o.tx ? tx < o.tx : msg < o.msg;
    }
  };
  std::vector<Use> uses;

  // Rendezvous: a message off the host larger than m.rndv_bytes starts once
  // its receiver has posted the matching receive (MPI sends it only then; a
  // round posts all its receives when it starts). Until then it waits in its
  // queue unsettled, and its sender's round cannot complete.
  auto rendezvous = [&](const Msg& msg) { return msg.net && msg.wire > m.rndv_bytes; };
  // The sender's side of a message leaving at `now`: its time on the wire,
  // its sender's link and the uplinks it leaves by.
  auto launch = [&](Msg& msg, double now) {
    now = std::max(now, msg.ready);
    const int r = msg.from;
    const size_t bytes = msg.wire;
    const int L = msg.L;
    if (!msg.net) {
      const double tx = static_cast<double>(bytes) * m.at(L).beta;
      msg.begin = std::max(now, cpu[r]);
      msg.end = msg.begin + tx;
      cpu[r] = msg.end;
      msg.arrive = msg.end;
      return;
    }
    // Hops: the sender's node link out and the receiver's node link in
    // (each node's own rate: level 1's unless the model gives the node
    // one), then for a message that leaves its level-l group (l = 1 ..
    // L-1) that group's uplink (level l+1 rate). Each hop is busy for the
    // message at its own rate; the message takes the slowest hop's time.
    const int na = t.node_of(r);
    const double out_tx = static_cast<double>(bytes) * m.node_link_beta(r);
    msg.in_tx = static_cast<double>(bytes) * m.node_link_beta(msg.to);
    double begin = std::max({now, inj[r], nic_out[na]});
    double slow = std::max({out_tx, msg.in_tx, static_cast<double>(bytes) * msg.floor_beta}), up = 0;
    for (int l = 1; l < L; ++l) {
      begin = std::max(begin, up_out[l][t.group(l, r)]);
      up = std::max(up, static_cast<double>(bytes) * m.at(l + 1).beta);
    }
    slow = std::max(slow, up);
    // A node fold: the message goes out by its switch's uplink last of the
    // `share` alike that its images send at this instant.
    msg.first = begin;
    if (L > 1) begin += static_cast<double>(sym.share - 1) * up;
    // The sender's link is free again once the message has left it at the
    // link's own rate; a slower hop further on (the receiver's link, an
    // uplink) delays the message's arrival but not the sender's next
    // message to someone else (flows interleave on a real link).
    inj[r] = begin + out_tx;
    nic_out[na] = begin + out_tx;
    for (int l = 1; l < L; ++l) up_out[l][t.group(l, r)] = begin + static_cast<double>(bytes) * m.at(l + 1).beta;
    msg.begin = begin;
    msg.end = begin + slow;
    msg.arrive = msg.end;
  };
  // Messages waiting for their receive: by queue, the queue's index of each.
  std::unordered_map<uint32_t, std::vector<std::pair<size_t, Msg>>> waiting;
  std::vector<std::pair<uint32_t, size_t>> released;  // (queue, index) whose receive was posted now
  std::vector<std::pair<int, size_t>> begun;           // (rank, segment) whose round began now
  std::vector<std::pair<uint32_t, size_t>> slot;       // per message of `batch`: its queue and index

  std::vector<uint64_t> keys;  // the rounds that begin at this instant
  while (!events.empty()) {
    const double now = events.next();
    if (now > limit) {  // every pending round starts later: no rank left finishes by the limit
      res.cut = true;
      res.time = now;
      return res;
    }
    batch.clear();
    touched.clear();
    released.clear();
    begun.clear();
    slot.clear();
    // 1. The rounds that begin now post their receives.
    // (A lane whose schedule is empty starts its next segment at this
    // instant: taken with it, after the rest.)
    while (!events.empty() && events.next() == now) {
      events.pop(keys);
      for (const uint64_t key : keys) {
        const size_t seg = static_cast<size_t>(key & seg_mask);
        const int r = static_cast<int>((key >> seg_bits) & rank_mask);
        Proc& pr = proc(r, seg);
        const Prog& g = progs[pr.prog];
        const Schedule& s = *g.schedule;
        if (!pr.started) {
          pr.started = true;
          pr.comm = g.comm0;
          pr.local = g.local0;
          if (data)
            for (size_t c : s.scratch) scratch[pbase[r] + seg].emplace_back(c * s.elem_size);
          if (s.rounds.empty()) {
            pr.done = true;
            res.finish[r] = std::max(res.finish[r], now);
            if (seg + window < lanes[r].size()) start(r, seg + window, now);
            continue;
          }
        }
        if (bounding) {
          const PBound& e = pbounds[g.round0 + pr.run];
          const int na = t.node_of(r);
          const double k = static_cast<double>(prounds[g.round0 + pr.run].repeat - pr.repeated);
          const double least = std::max({now + k * e.least + e.after,
                                         std::max(now, cpu[r]) + rem_cpu[r], std::max(now, inj[r]) + rem_inj[r],
                                         std::max(now, nic_out[na]) + rem_node[na]});
          rem_cpu[r] -= e.cpu;
          rem_inj[r] -= e.inj;
          rem_node[na] -= e.inj;
          if (least > cut_at) {  // rank r finishes after the limit
            res.cut = true;
            res.time = least;
            return res;
          }
        }
        pr.round_start = now;
        pr.send_end = now;
        pr.max_arrive = now;
        pr.matched = 0;
        pr.fresh = true;
        touch(r, seg);
        begun.emplace_back(r, seg);
        const PRound& pround = prounds[g.round0 + pr.run];
        const PComm* rc = comms.data() + pr.comm;
        // The next round's entries, for when this one completes.
        __builtin_prefetch(rc + pround.nrecv + pround.nsend);
        __builtin_prefetch(&pround + 1);
        // The queues its sends go to, for step 2 (each most often another
        // rank's, far from this one's in memory).
        for (uint32_t k = 0; k < pround.nsend; ++k) __builtin_prefetch(&queues[queue_index(rc[pround.nrecv + k].chan, seg)]);
        for (uint32_t k = 0; k < pround.nrecv; ++k) {
          const uint32_t qi = queue_index(rc[k].chan, seg);
          Queue& q = queues[qi];
          const uint32_t at = q.posted++;
          if (at < q.n && std::isinf(q.at(at).arrive)) released.emplace_back(qi, at);
        }
      }
    }
    // 2. Their sends, in the order the rounds were taken.
    for (const auto& [r, seg] : begun) {
      Proc& pr = proc(r, seg);
      const Schedule& s = *progs[pr.prog].schedule;
      const PRound& pround = prounds[progs[pr.prog].round0 + pr.run];
      const PComm* sc = comms.data() + pr.comm + pround.nrecv;
      // Device buffers: the round's staged payloads are copied to pinned
      // memory (one engine), its IPC payloads into the exported buffer (on
      // the device), and its messages go once the host has seen both done.
      double ready = 0;
      if (dev) {
        double d2h_end = now, copied = now;
        for (uint32_t k = 0; k < pround.nsend; ++k) {
          const size_t b = sc[k].bytes();
          const DeviceRoute rt = route(r, sc[k].peer, sc[k].level(), b);
          if (rt == DeviceRoute::staged) {
            d2h_end = std::max(d2h_end, d2h_eng[r]) + static_cast<double>(b) * m.dev.d2h;
            d2h_eng[r] = d2h_end;
          } else if (rt == DeviceRoute::ipc) {
            copied = std::max(copied, gpu[r]) + static_cast<double>(b) * m.dev.copy;
            gpu[r] = copied;
          }
        }
        if (d2h_end > now || copied > now) ready = std::max(d2h_end, copied) + m.dev.latency;
      }
      for (uint32_t k = 0; k < pround.nsend; ++k) {
        const PComm& c = sc[k];
        Msg msg;
        msg.from = r;
        msg.to = c.peer;
        msg.L = c.level();
        msg.seg = seg;
        msg.bytes = c.bytes();
        msg.wire = msg.bytes;
        msg.net = c.net();
        msg.ready = ready;
        msg.nth = k;
        if (dev) {
          const DeviceRoute rt = route(r, c.peer, msg.L, msg.bytes);
          if (rt == DeviceRoute::ipc) msg.wire = 128;
          if (rt == DeviceRoute::direct) {
            msg.extra = m.dev.aware_alpha;
            msg.floor_beta = msg.net ? m.dev.aware_beta : 0.0;
          }
        }
        const uint32_t qi = queue_index(c.chan, seg);
        Queue& q = queues[qi];
        const uint32_t at = q.n;
        q.push(std::numeric_limits<double>::infinity(), msg.bytes);  // settled below (or once received)
        if (data) {
          const char* src = msg.bytes ? ptr(r, seg, nth_op(s.rounds[pr.round], OpKind::send, k).a) : nullptr;
          payloads[qi].emplace_back(src, src + msg.bytes);
        }
        bytes_sent[r] += msg.bytes;
        msgs_sent[r] += 1;
        if (rendezvous(msg) && at >= q.posted) {
          pr.unsent++;
          waiting[qi].emplace_back(at, msg);
          continue;
        }
        launch(msg, now);
        pr.send_end = std::max(pr.send_end, msg.end);
        batch.push_back(msg);
        slot.emplace_back(qi, at);
      }
    }
    // 3. Messages that waited for a receive posted now, in the order of their
    // sender's place in its block, sender, segment and the order of the
    // round's sends (as the sender posted them).
    if (!released.empty()) {
      std::vector<std::tuple<int, int, size_t, uint32_t, uint32_t, size_t>> order;
      for (const auto& [qi, k] : released) {
        auto& w = waiting[qi];
        for (const auto& [idx, msg] : w)
          if (idx == k) order.emplace_back(msg.from % place, msg.from, msg.seg, msg.nth, qi, k);
      }
      std::sort(order.begin(), order.end());
      for (const auto& [pl_, from, seg, nth_, qi, k] : order) {
        (void)pl_;
        (void)nth_;
        auto& w = waiting[qi];
        auto it = std::find_if(w.begin(), w.end(), [&, k = k](const auto& e) { return e.first == k; });
        Msg msg = it->second;
        w.erase(it);
        launch(msg, now);
        Proc& pr = proc(from, seg);
        pr.unsent--;
        pr.send_end = std::max(pr.send_end, msg.end);
        touch(from, seg);
        batch.push_back(msg);
        slot.emplace_back(qi, k);
      }
    }
    // The receiving links: each node's link in, then each group's uplink in.
    // A link takes the instant's messages in the order of their start; those
    // that start together and are as large arrive together.
    uses.clear();
    for (size_t i = 0; i < batch.size(); ++i) {
      const Msg& msg = batch[i];
      if (!msg.net) continue;
      const int to = sym.rep(msg.to);
      uses.push_back(Use{static_cast<uint64_t>(t.node_of(to)), msg.begin, msg.in_tx, i});
      // A node fold: its images come through the receiving switch's uplink
      // with it, one after another from the first's start.
      for (int l = 1; l < msg.L; ++l)
        uses.push_back(Use{(static_cast<uint64_t>(l) << 32) | static_cast<uint64_t>(t.group(l, to)), msg.first,
                           static_cast<double>(msg.wire) * m.at(l + 1).beta * sym.share, i});
    }
    if (!std::is_sorted(uses.begin(), uses.end())) std::sort(uses.begin(), uses.end());
    for (size_t i = 0; i < uses.size();) {
      const Use& u = uses[i];
      const int l = static_cast<int>(u.link >> 32), g = static_cast<int>(u.link & 0xffffffffu);
      double& link = l == 0 ? nic_in[g] : up_in[l][g];
      size_t j = i + 1;
      while (j < uses.size() && uses[j].link == u.link && uses[j].begin == u.begin && uses[j].tx == u.tx) ++j;
      link = std::max(link, u.begin) + static_cast<double>(j - i) * u.tx;
      for (size_t k = i; k < j; ++k) batch[uses[k].msg].arrive = std::max(batch[uses[k].msg].arrive, link);
      i = j;
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      const Msg& msg = batch[i];
      const int to = sym.rep(msg.to);
      Queue& q = queues[slot[i].first];
      q.at(slot[i].second).arrive = msg.arrive + m.at(msg.L).alpha + msg.extra;
      if (to < n && msg.seg < lanes[to].size())
        touch(to, msg.seg);
    }
    // Rounds complete in (rank, segment) order: the senders of the instant,
    // and the receivers that were waiting for these messages.
    if (!std::is_sorted(touched.begin(), touched.end())) sort_keys(touched, sort_tmp);
    for (const uint64_t key : touched) {
      const int r = static_cast<int>(key >> seg_bits);
      const size_t seg = static_cast<size_t>(key & seg_mask);
      Proc& pr = proc(r, seg);
      pr.listed = false;
      if (pr.fresh || pr.blocked) {
        pr.fresh = false;
        try_complete(r, seg);
      }
    }
  }

  for (int r = 0; r < n; ++r) {
    res.time = std::max(res.time, res.finish[r]);
    res.max_bytes_sent = std::max(res.max_bytes_sent, bytes_sent[r]);
    res.max_messages = std::max(res.max_messages, msgs_sent[r]);
    res.total_bytes += bytes_sent[r];
    for (size_t s = 0; s < lanes[r].size(); ++s)
      if (!proc(r, s).done && res.error.empty()) {
        std::ostringstream e;
        e << "deadlock: rank " << r << " segment " << s << " waits in round " << proc(r, s).round << " of "
          << lanes[r][s].schedule->rounds.size();
        res.error = e.str();
      }
  }
  res.total_bytes *= static_cast<size_t>(p / n);  // every block sends what the representatives send
  for (size_t i = 0; i < queues.size(); ++i)
    if (!queues[i].empty() && res.error.empty()) {
      std::ostringstream e;
      const uint32_t ch = static_cast<uint32_t>(i / nseg_max);
      int src, dst;
      if (ch < inbase[n]) {
        src = insrc[ch];
        dst = static_cast<int>(std::upper_bound(inbase.begin(), inbase.end(), ch) - inbase.begin()) - 1;
      } else {
        std::tie(src, dst) = unnamed[ch - inbase[n]];
      }
      e << "unreceived message: rank " << src << " -> rank " << dst << " segment " << i % nseg_max;
      res.error = e.str();
    }
  return res;
}

}  // namespace baobab

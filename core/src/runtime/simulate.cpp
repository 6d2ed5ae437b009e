#include "baobab/simulate.hpp"

#include "baobab/error.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <cstring>
#include <queue>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>

namespace baobab {

namespace {

// The messages in flight from one rank to another for one segment, in MPI
// order (a FIFO: `head` is the next to match).
struct Queue {
  int src = 0, dst = 0;
  size_t seg = 0;
  std::vector<double> arrive;
  std::vector<size_t> bytes;
  std::vector<std::vector<char>> payload;  // with data only
  size_t head = 0;
  size_t posted = 0;  // receives posted for these messages (in order) so far
  // No message to match next, or the next has not arrived (+inf: waiting
  // for its receive to be posted, under the rendezvous rule).
  bool empty() const { return head == arrive.size() || std::isinf(arrive[head]); }
};

struct Proc {  // one segment of one rank
  size_t round = 0;
  bool started = false, done = false, blocked = false;
  bool fresh = false;  // its round started at this instant and has not tried to complete yet
  double round_start = 0, send_end = 0, max_arrive = 0;
  size_t matched = 0;
  size_t unsent = 0;  // sends of the round still waiting for their receive (rendezvous)
  std::vector<uint32_t> recv_q;  // the queue of each receive of the round, in order (found when posted)
  std::vector<std::vector<char>> scratch;
};

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
  std::unordered_map<std::string, int> id;
  std::vector<int> hid(p);
  for (int r = 0; r < p; ++r) hid[r] = id.try_emplace(t.host(r), static_cast<int>(id.size())).first->second;
  for (int k = 0; k < s.generators(); ++k) {
    std::vector<int> f(id.size(), -1), finv(id.size(), -1);  // host id -> its image, and back
    for (int r = 0; r < p; ++r) {
      const int g = s.move(r, k);
      if (m.node_link_beta(r) != m.node_link_beta(g)) return false;
      const int a = hid[r], b = hid[g];
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

bool off_host(const Topology& t, int r, int peer, int L) { return !(L == 0 || t.host(r) == t.host(peer)); }

}  // namespace

namespace {

bool near(const Topology& t, int r, int peer) {
  return t.node_of(r) == t.node_of(peer) && t.host(r) == t.host(peer);
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
  std::vector<std::vector<Proc>> procs(n);
  for (int r = 0; r < n; ++r) procs[r].resize(lanes[r].size());
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
  // (src, dst, segment) -> its queue, found by one hash lookup per message.
  std::vector<Queue> queues;
  std::unordered_map<uint64_t, uint32_t> queue_of;
  queue_of.reserve(static_cast<size_t>(p) * 4);
  const uint64_t nseg_max = [&] {
    size_t n = 1;
    for (const auto& l : lanes) n = std::max(n, l.size());
    return static_cast<uint64_t>(n);
  }();
  auto queue_id = [&](int src, int dst, size_t seg) -> uint32_t {
    const uint64_t key = (static_cast<uint64_t>(src) * static_cast<uint64_t>(p) + static_cast<uint64_t>(dst)) * nseg_max + seg;
    auto [it, fresh] = queue_of.try_emplace(key, static_cast<uint32_t>(queues.size()));
    if (fresh) {
      Queue& q = queues.emplace_back();
      q.src = src;
      q.dst = dst;
      q.seg = seg;
    }
    return it->second;
  };
  // Events at one instant run in the order of the rank's place in its block
  // (then rank, then segment), the same order with or without a symmetry,
  // so that folding the blocks replays every tie the way the full replay
  // does (a rank's block place is kept by every move of a Symmetry).
  const int place = sym.active() ? sym.period : block_period(t);
  using Event = std::tuple<double, int, int, size_t>;  // time, place in the block, rank, segment
  std::priority_queue<Event, std::vector<Event>, std::greater<Event>> events;

  auto elem = [&](int r, size_t seg) { return lanes[r][seg].schedule->elem_size; };
  auto ptr = [&](int r, size_t seg, const Ref& ref) -> char* {
    const SimLane& l = lanes[r][seg];
    const size_t es = l.schedule->elem_size;
    if (ref.buf == kIn) return data->in[r].data() + (ref.off + l.in_shift) * es;
    if (ref.buf == kOut) return data->out[r].data() + (ref.off + l.out_shift) * es;
    return procs[r][seg].scratch[ref.buf - kScratch].data() + ref.off * es;
  };

  auto start = [&](int r, size_t seg, double at) { events.emplace(at, r % place, r, seg); };
  for (int r = 0; r < n; ++r)
    for (size_t s = 0; s < lanes[r].size() && s < static_cast<size_t>(window); ++s) start(r, s, 0.0);

  // Completes the current round of (r, seg) if every receive has its message
  // (pr.matched: the round's receives matched so far, in order).
  auto try_complete = [&](int r, size_t seg) {
    Proc& pr = procs[r][seg];
    if (pr.unsent) {  // a send still waits for its receive
      pr.blocked = true;
      return;
    }
    const Schedule& s = *lanes[r][seg].schedule;
    const Round& round = s.rounds[pr.round];
    size_t k = 0;
    for (const Op& op : round.ops) {
      if (op.kind != OpKind::recv) continue;
      if (k++ < pr.matched) continue;
      Queue& q = queues[pr.recv_q[k - 1]];
      if (q.empty()) {
        pr.blocked = true;
        pr.matched = k - 1;
        return;
      }
      const size_t at = q.head++;
      const size_t want = op.count * s.elem_size;
      if (q.bytes[at] != want && res.error.empty() && !sym.loose) {
        std::ostringstream e;
        e << "size mismatch: rank " << r << " segment " << seg << " round " << pr.round << " expects " << want
          << " bytes from rank " << op.peer << ", which sent " << q.bytes[at];
        res.error = e.str();
      }
      pr.max_arrive = std::max(pr.max_arrive, q.arrive[at]);
      if (data && q.bytes[at] == want && want) {
        std::memcpy(ptr(r, seg, op.dst), q.payload[at].data(), want);
        std::vector<char>().swap(q.payload[at]);
      }
    }
    pr.blocked = false;
    pr.matched = 0;
    double done = std::max({pr.round_start, pr.send_end, pr.max_arrive});
    if (round.has_comm()) done += m.round_overhead;
    bool local = false;
    for (const Op& op : round.ops) local = local || op.kind == OpKind::reduce || op.kind == OpKind::copy;
    if (dev) {
      // Staged receives are copied onto the device (one engine), IPC
      // receives out of the peers' buffers; the local operations follow on
      // the device, and the host sees them done a latency later.
      double h2d_end = done, copied = done;
      bool work = local;
      for (const Op& op : round.ops) {
        if (op.kind != OpKind::recv) continue;
        const size_t b = op.count * s.elem_size;
        const DeviceRoute rt = route(r, op.peer, t.link_level(r, op.peer), b);
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
    pr.round++;
    if (pr.round < s.rounds.size()) {
      start(r, seg, done);
    } else {
      pr.done = true;
      pr.scratch.clear();
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
    bool net;
  };
  std::vector<Msg> batch;
  std::vector<std::pair<int, size_t>> touched;  // (rank, segment): to complete if they can
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

  while (!events.empty()) {
    const double now = std::get<0>(events.top());
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
    while (!events.empty() && std::get<0>(events.top()) == now) {
      const auto [t_, place_, r, seg] = events.top();
      (void)t_;
      (void)place_;
      events.pop();
      Proc& pr = procs[r][seg];
      const Schedule& s = *lanes[r][seg].schedule;
      if (!pr.started) {
        pr.started = true;
        if (data)
          for (size_t c : s.scratch) pr.scratch.emplace_back(c * s.elem_size);
        if (s.rounds.empty()) {
          pr.done = true;
          res.finish[r] = std::max(res.finish[r], now);
          if (seg + window < lanes[r].size()) start(r, seg + window, now);
          continue;
        }
      }
      pr.round_start = now;
      pr.send_end = now;
      pr.max_arrive = now;
      pr.matched = 0;
      pr.fresh = true;
      touched.emplace_back(r, seg);
      begun.emplace_back(r, seg);
      pr.recv_q.clear();
      for (const Op& op : s.rounds[pr.round].ops) {
        if (op.kind != OpKind::recv) continue;
        const uint32_t qi = queue_id(op.peer, r, seg);
        pr.recv_q.push_back(qi);
        Queue& q = queues[qi];
        const size_t k = q.posted++;
        if (k < q.arrive.size() && std::isinf(q.arrive[k])) released.emplace_back(qi, k);
      }
    }
    // 2. Their sends, in the order the rounds were taken.
    for (const auto& [r, seg] : begun) {
      Proc& pr = procs[r][seg];
      const Schedule& s = *lanes[r][seg].schedule;
      // Device buffers: the round's staged payloads are copied to pinned
      // memory (one engine), its IPC payloads into the exported buffer (on
      // the device), and its messages go once the host has seen both done.
      double ready = 0;
      if (dev) {
        double d2h_end = now, copied = now;
        for (const Op& op : s.rounds[pr.round].ops) {
          if (op.kind != OpKind::send) continue;
          const size_t b = op.count * elem(r, seg);
          const DeviceRoute rt = route(r, op.peer, t.link_level(r, op.peer), b);
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
      for (const Op& op : s.rounds[pr.round].ops) {
        if (op.kind != OpKind::send) continue;
        Msg msg;
        msg.from = r;
        msg.to = op.peer;
        msg.L = t.link_level(r, op.peer);
        msg.seg = seg;
        msg.bytes = op.count * elem(r, seg);
        msg.wire = msg.bytes;
        msg.net = off_host(t, r, op.peer, msg.L);
        msg.ready = ready;
        if (dev) {
          const DeviceRoute rt = route(r, op.peer, msg.L, msg.bytes);
          if (rt == DeviceRoute::ipc) msg.wire = 128;
          if (rt == DeviceRoute::direct) {
            msg.extra = m.dev.aware_alpha;
            msg.floor_beta = msg.net ? m.dev.aware_beta : 0.0;
          }
        }
        const int to = sym.rep(msg.to);
        const uint32_t qi = queue_id(sym.pull(msg.from, msg.to), to, seg);
        Queue& q = queues[qi];
        const size_t k = q.arrive.size();
        q.arrive.push_back(std::numeric_limits<double>::infinity());  // settled below (or once received)
        q.bytes.push_back(msg.bytes);
        if (data) {
          const char* src = msg.bytes ? ptr(r, seg, op.a) : nullptr;
          q.payload.emplace_back(src, src + msg.bytes);
        }
        bytes_sent[r] += msg.bytes;
        msgs_sent[r] += 1;
        if (rendezvous(msg) && k >= q.posted) {
          pr.unsent++;
          waiting[qi].emplace_back(k, msg);
          continue;
        }
        launch(msg, now);
        pr.send_end = std::max(pr.send_end, msg.end);
        batch.push_back(msg);
        slot.emplace_back(qi, k);
      }
    }
    // 3. Messages that waited for a receive posted now, in the order of their
    // sender's place in its block, sender, segment and queue order.
    if (!released.empty()) {
      std::vector<std::tuple<int, int, size_t, uint32_t, size_t>> order;
      for (const auto& [qi, k] : released) {
        auto& w = waiting[qi];
        for (const auto& [idx, msg] : w)
          if (idx == k) order.emplace_back(msg.from % place, msg.from, msg.seg, qi, k);
      }
      std::sort(order.begin(), order.end());
      for (const auto& [pl_, from, seg, qi, k] : order) {
        (void)pl_;
        auto& w = waiting[qi];
        auto it = std::find_if(w.begin(), w.end(), [&, k = k](const auto& e) { return e.first == k; });
        Msg msg = it->second;
        w.erase(it);
        launch(msg, now);
        Proc& pr = procs[from][seg];
        pr.unsent--;
        pr.send_end = std::max(pr.send_end, msg.end);
        touched.emplace_back(from, seg);
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
    if (uses.size() > 1) std::sort(uses.begin(), uses.end());
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
      queues[slot[i].first].arrive[slot[i].second] = msg.arrive + m.at(msg.L).alpha + msg.extra;
      if (static_cast<size_t>(to) < procs.size() && msg.seg < procs[to].size()) touched.emplace_back(to, msg.seg);
    }
    // Rounds complete in (rank, segment) order: the senders of the instant,
    // and the receivers that were waiting for these messages.
    std::sort(touched.begin(), touched.end());
    touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
    for (const auto& [r, seg] : touched) {
      Proc& pr = procs[r][seg];
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
    for (size_t s = 0; s < procs[r].size(); ++s)
      if (!procs[r][s].done && res.error.empty()) {
        std::ostringstream e;
        e << "deadlock: rank " << r << " segment " << s << " waits in round " << procs[r][s].round << " of "
          << lanes[r][s].schedule->rounds.size();
        res.error = e.str();
      }
  }
  res.total_bytes *= static_cast<size_t>(p / n);  // every block sends what the representatives send
  for (const Queue& q : queues)
    if (!q.empty() && res.error.empty()) {
      std::ostringstream e;
      e << "unreceived message: rank " << q.src << " -> rank " << q.dst << " segment " << q.seg;
      res.error = e.str();
    }
  return res;
}

}  // namespace baobab

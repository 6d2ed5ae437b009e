// The schedule executor: runs a collective's schedule over MPI, lane by lane
// (a lane is one segment; up to `window` lanes are in flight), round by round.
// Each round posts its sends and receives at once; lane 0 of a checked
// collective carries the signature (WireHeader) with its messages (inline with
// payloads up to kInline bytes), and every header received is compared with
// this rank's at once. A rank whose part only sends waits for its receivers'
// acknowledgements. Local copies and reductions run when a round's messages
// have completed. Everything here polls: nothing blocks inside MPI.
#include "executor.hpp"

#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include "baobab/error.hpp"
#include "control.hpp"
#include "diagnosis.hpp"
#include "transport.hpp"

namespace baobab::runtime {

namespace {

char* resolve(Execution& e, Lane& l, const Ref& r) {
  if (r.buf == kIn) return const_cast<char*>(e.in) + (r.off + l.shift) * e.es;
  if (r.buf == kOut) return e.out + (r.off + l.shift) * e.es;
  if (l.dev) return l.dscratch[r.buf - kScratch].data() + r.off * e.es;
  return l.scratch[r.buf - kScratch].data() + r.off * e.es;
}

// ---- device lanes ------------------------------------------------------------------
// A lane on device buffers runs the same rounds as a host lane, with three
// differences (baobab/device.hpp has the transports):
//  * before a round's messages are posted, the payloads that travel through
//    pinned memory are copied there on the lane's stream, after everything the
//    lane queued before (the previous round's local operations, and at first
//    the caller's stream up to the start, through an event); the messages are
//    posted once an event recorded behind those copies has been reached, so
//    that MPI never reads a buffer the device is still writing;
//  * when the round's messages have completed, staged receives are copied to
//    the device and the local copies and reductions are queued on the stream
//    (reductions by the device kernels), without waiting for them;
//  * the lane is done once an event behind its last operation is reached.
// Between ranks of one node and host, the IPC transport replaces a payload by
// a descriptor of where it sits in the sender's exported device buffer; the
// receiver copies it out device-to-device and acknowledges, and the sender
// waits for the acknowledgements before it writes that buffer again (at its
// next round, or before the lane ends). Descriptors and acknowledgements share
// the lane's IPC tag: a lane sends those it owes before its next descriptors,
// and posts the receives of those it awaits after the round's own receives,
// so that MPI's ordering of one sender's messages matches each to its receive.

constexpr size_t kNoSlot = static_cast<size_t>(-1);

size_t align64(size_t b) { return (b + 63) / 64 * 64; }
size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// A lane's tag: 64 per operation, the lane's index modulo the window (at most
// 32) in the lower half; the upper half (ipc_tag) carries the IPC transport's
// descriptors and acknowledgements, so that a peer that disagrees on the
// transport never has a payload matched with a descriptor's receive (MPI
// libraries differ in what a truncated receive writes) but is found out by
// the signature.
int lane_tag(const CommState& s, const Execution& e, const Lane& l) {
  const int per_op = 64;
  const uint64_t nseq = static_cast<uint64_t>(s.tag_ub + 1) / per_op;
  return static_cast<int>((e.seq % nseq) * per_op + l.index % static_cast<size_t>(e.window));
}
int ipc_tag(const CommState& s, const Execution& e, const Lane& l) { return lane_tag(s, e, l) + 32; }

// How a message's bytes travel on a device lane.
enum Route : uint8_t {
  kDirect = 0,  // MPI reads / writes the buffer itself (host lanes; CUDA-aware MPI; inline receives)
  kStaged = 1,  // through the lane's pinned staging slot
  kIpc = 2,     // a descriptor through the staging slot, the payload through exported device memory
};

bool same_host_node(const CommState& s, int peer) {
  return s.topo.node_of(peer) == s.topo.node_of(s.rank) && s.topo.host(peer) == s.topo.host(s.rank);
}

// Payloads sent inline with a signature are staged (copied into the header's
// message); the rest take the route the cost model gives them
// (CostModel::device_route): IPC between ranks of one node and host where
// the IPC transport is on and it costs no more than staging, else staged or
// handed to MPI as device pointers as the path allows and the model prefers.
// Both ends of a message decide IPC alike: they see the same size, peer,
// model and IPC switch (the signature's IPC bit makes a disagreement on the
// last a MismatchError); staged and direct are alike on the wire.
Route route_of(const CommState& s, const Execution& e, const Lane& l, const Op& op) {
  const size_t b = op.count * e.es;
  if (b == 0) return kDirect;
  if (e.check && l.index == 0 && b <= kInline) return op.kind == OpKind::send ? kStaged : kDirect;
  switch (e.model->device_route(b, s.topo.link_level(s.rank, op.peer), same_host_node(s, op.peer))) {
    case DeviceRoute::ipc: return kIpc;
    case DeviceRoute::staged: return kStaged;
    case DeviceRoute::direct: break;
  }
  return kDirect;
}

size_t slot_bytes(Route r, size_t b) { return r == kStaged ? align64(b) : r == kIpc ? sizeof(IpcDesc) : 0; }

void dev_lane_start(CommState& s, Execution& e, Lane& l) {
  DevicePool& pool = *e.dpool;
  l.dev = true;
  for (size_t c : l.s->scratch) l.dscratch.push_back(pool.device(c * e.es));
  size_t most = 0, exported = 0;
  for (const Round& r : l.s->rounds) {
    size_t n = 0, x = 0;
    for (const Op& op : r.ops) {
      if (op.kind != OpKind::send && op.kind != OpKind::recv) continue;
      const Route rt = route_of(s, e, l, op);
      n += slot_bytes(rt, op.count * e.es);
      if (rt == kIpc && op.kind == OpKind::send) x += align256(op.count * e.es);
    }
    most = std::max(most, n);
    exported = std::max(exported, x);
  }
  if (most) l.stage = pool.host(most);
  if (exported) l.xbuf = pool.ipc(exported);
  l.stream = pool.stream();
  l.ev = pool.event();
  pool.ops->wait_event(l.stream, e.start_ev);
}

// Sends the acknowledgements this lane owes once its copies out of the peers'
// buffers are done; then whether every acknowledgement of this lane's own IPC
// sends has arrived (1), not yet (0), or the communicator failed (-1).
int dev_ipc_acks(CommState& s, Execution& e, Lane& l) {
  if (!l.ipc_owe.empty() && e.dpool->ops->query(l.ack_ev)) {
    for (int peer : l.ipc_owe) {
      auto h = std::make_unique<WireHeader>(e.hdr);
      h->magic = kMagicIpcAck;
      MPI_Request r;
      check_mpi(MPI_Isend(h.get(), sizeof(WireHeader), MPI_BYTE, peer, ipc_tag(s, e, l), s.data, &r),
                "MPI_Isend (IPC acknowledgement)");
      s.acks_out.emplace_back(r, std::move(h));
    }
    l.ipc_owe.clear();
  }
  if (l.ipc_ack_reqs.empty()) return 1;
  int done = 0;
  std::vector<MPI_Status> sts(l.ipc_ack_reqs.size());
  const int rc = MPI_Testall(static_cast<int>(l.ipc_ack_reqs.size()), l.ipc_ack_reqs.data(), &done, sts.data());
  if (rc != MPI_SUCCESS) {
    fail_comm(s, kMPIFail, "MPI_Testall (IPC acknowledgements): " + mpi_error_string(rc), e.seq, coll_name(e.coll),
              {}, true);
    return -1;
  }
  if (!done) return 0;
  for (size_t k = 0; k < l.ipc_ack_reqs.size(); ++k) {
    int got = 0;
    MPI_Get_count(&sts[k], MPI_BYTE, &got);
    if (got != static_cast<int>(sizeof(WireHeader)) || l.ipc_ack_buf[k].magic != kMagicIpcAck) {
      mismatch(s, e, l.ipc_ack_peer[k], nullptr,
               "rank " + std::to_string(l.ipc_ack_peer[k]) +
                   " sent something else where the acknowledgement of a device-to-device copy was expected");
      return -1;
    }
  }
  l.ipc_ack_reqs.clear();
  l.ipc_ack_peer.clear();
  return 1;
}

// Assigns the round's staging slots and queues the copies that must precede
// its messages: device-to-host for staged sends, into the exported buffer for
// IPC sends (whose descriptors are written into their slots now).
void dev_stage_round(CommState& s, Execution& e, Lane& l) {
  const Round& round = l.s->rounds[l.round];
  DeviceOps& ops = *e.dpool->ops;
  l.slot.assign(round.ops.size(), kNoSlot);
  l.route.assign(round.ops.size(), kDirect);
  l.xoff.assign(round.ops.size(), 0);
  size_t at = 0, xat = 0;
  for (size_t i = 0; i < round.ops.size(); ++i) {
    const Op& op = round.ops[i];
    if (op.kind != OpKind::send && op.kind != OpKind::recv) continue;
    const Route rt = route_of(s, e, l, op);
    l.route[i] = rt;
    if (rt == kDirect) continue;
    const size_t b = op.count * e.es;
    l.slot[i] = at;
    at += slot_bytes(rt, b);
    if (op.kind != OpKind::send) continue;
    if (rt == kStaged) {
      ops.copy(l.stage.data() + l.slot[i], resolve(e, l, op.a), b, l.stream);
    } else {
      ops.copy(l.xbuf.data() + xat, resolve(e, l, op.a), b, l.stream);
      IpcDesc d;
      d.id = l.xbuf.id;
      d.cap = l.xbuf.cap;
      d.offset = xat;
      d.bytes = b;
      d.handle = l.xbuf.handle;
      std::memcpy(l.stage.data() + l.slot[i], &d, sizeof d);
      xat += align256(b);
    }
  }
}

// The round's messages have completed: staged receives are copied to the
// device, IPC receives out of the peer's exported buffer (acknowledged once
// those copies are done). Returns false (communicator failed) on a descriptor
// that does not fit.
bool dev_unstage_round(CommState& s, Execution& e, Lane& l) {
  const Round& round = l.s->rounds[l.round];
  DeviceOps& ops = *e.dpool->ops;
  bool ipc = false;
  for (size_t i = 0; i < round.ops.size(); ++i) {
    const Op& op = round.ops[i];
    if (op.kind != OpKind::recv || l.slot.empty() || l.slot[i] == kNoSlot) continue;
    const size_t b = op.count * e.es;
    if (l.route[i] == kStaged) {
      ops.copy(resolve(e, l, op.dst), l.stage.data() + l.slot[i], b, l.stream);
      continue;
    }
    IpcDesc d;
    std::memcpy(&d, l.stage.data() + l.slot[i], sizeof d);
    if (d.magic != kMagicIpc || d.bytes != b || d.offset + b > d.cap) {
      mismatch(s, e, op.peer, nullptr,
               "rank " + std::to_string(op.peer) + " sent " +
                   (d.magic == kMagicIpc ? std::to_string(d.bytes) + " bytes by IPC" : std::string("no IPC descriptor")) +
                   " where " + std::to_string(b) + " bytes were expected: the ranks disagree on the count");
      return false;
    }
    IpcRef ref{d.id, d.cap, &d.handle};
    const char* src = e.dpool->peer(op.peer, ref) + d.offset;
    const int32_t reader = l.direct ? (*l.direct)[l.round][i] : -1;
    if (reader >= 0) {  // the reduction reads it where it is; acknowledged after the local ops
      if (l.sub_a.empty()) {
        l.sub_a.assign(round.ops.size(), nullptr);
        l.sub_b.assign(round.ops.size(), nullptr);
      }
      (reader & 1 ? l.sub_b : l.sub_a)[static_cast<size_t>(reader >> 1)] = src;
      l.ack_after_local = true;
    } else {
      ops.copy(resolve(e, l, op.dst), src, b, l.stream);
    }
    l.ipc_owe.push_back(op.peer);
    ipc = true;
  }
  if (ipc && !l.ack_after_local) {
    if (!l.ack_ev) l.ack_ev = e.dpool->event();
    ops.record(l.ack_ev, l.stream);
  }
  return true;
}

// Posted at the end of a round's posts (after the signature acknowledgements):
// the acknowledgement of each IPC send, awaited before its buffer is reused.
void dev_post_ipc_acks(CommState& s, Execution& e, Lane& l, int tag) {
  const Round& round = l.s->rounds[l.round];
  size_t n = 0;
  for (size_t i = 0; i < round.ops.size(); ++i) n += round.ops[i].kind == OpKind::send && l.route[i] == kIpc;
  if (!n) return;
  l.ipc_ack_buf.assign(n, WireHeader{});
  l.ipc_ack_reqs.assign(n, MPI_REQUEST_NULL);
  l.ipc_ack_peer.clear();
  size_t k = 0;
  for (size_t i = 0; i < round.ops.size(); ++i) {
    const Op& op = round.ops[i];
    if (op.kind != OpKind::send || l.route[i] != kIpc) continue;
    check_mpi(MPI_Irecv(&l.ipc_ack_buf[k], sizeof(WireHeader), MPI_BYTE, op.peer, tag, s.data, &l.ipc_ack_reqs[k]),
              "MPI_Irecv (IPC acknowledgement)");
    l.ipc_ack_peer.push_back(op.peer);
    ++k;
  }
}

void dev_run_local(Execution& e, Lane& l) {
  DeviceOps& ops = *e.dpool->ops;
  const Round& round = l.s->rounds[l.round];
  for (const Op& op : round.ops) {
    if (op.count == 0) continue;
    const size_t b = op.count * e.es;
    if (op.kind == OpKind::copy) {
      char* d = resolve(e, l, op.dst);
      const char* a = resolve(e, l, op.a);
      if (d == a) continue;
      if (d < a + b && a < d + b) {  // overlapping ranges: through a temporary (kept until the lane ends)
        DeviceBuf& t = l.dscratch.emplace_back(e.dpool->device(b));
        ops.copy(t.data(), a, b, l.stream);
        ops.copy(d, t.data(), b, l.stream);
      } else {
        ops.copy(d, a, b, l.stream);
      }
    } else if (op.kind == OpKind::reduce) {
      const size_t j = static_cast<size_t>(&op - round.ops.data());
      const char* a = !l.sub_a.empty() && l.sub_a[j] ? l.sub_a[j] : resolve(e, l, op.a);
      const char* b = !l.sub_b.empty() && l.sub_b[j] ? l.sub_b[j] : resolve(e, l, op.b);
      if (e.red.op == kLseMergeOp) {
        const bool dbl = static_cast<DType>(e.red.dtype) == DType::f64;
        const auto d = static_cast<int64_t>(e.es / (dbl ? 8 : 4)) - 1;
        ops.merge_rows(resolve(e, l, op.dst), a, b, op.count, d, dbl, l.stream);
        continue;
      }
      ops.reduce(static_cast<DType>(e.red.dtype), static_cast<RedOp>(e.red.op), resolve(e, l, op.dst), a, b, op.count,
                 l.stream);
    }
  }
  if (l.ack_after_local) {  // behind the reductions that read the peers' buffers
    if (!l.ack_ev) l.ack_ev = e.dpool->event();
    ops.record(l.ack_ev, l.stream);
    l.ack_after_local = false;
  }
  l.sub_a.clear();
  l.sub_b.clear();
}

void dev_lane_release(Execution& e, Lane& l) {
  DevicePool& pool = *e.dpool;
  for (auto& b : l.dscratch) pool.put_device(b);
  l.dscratch.clear();
  pool.put_host(l.stage);
  l.stage = DeviceBuf{};
  pool.put_ipc(l.xbuf);
  l.xbuf = IpcBuf{};
  if (l.stream) pool.put_stream(l.stream);
  pool.put_event(l.ev);
  pool.put_event(l.ack_ev);
  l.stream = l.ev = l.ack_ev = nullptr;
}

void post_round(CommState& s, Execution& e, Lane& l) {
  const Round& round = l.s->rounds[l.round];
  const bool hdr = e.check && l.index == 0;
  const int tag = lane_tag(s, e, l);
  // Staging sizes first, so that pointers into the arena stay valid.
  size_t arena = 0;
  for (const Op& op : round.ops) {
    if (!hdr || (op.kind != OpKind::send && op.kind != OpKind::recv)) continue;
    const size_t b = op.count * e.es;
    arena += b <= kInline ? sizeof(WireHeader) + b : (op.kind == OpKind::recv ? sizeof(WireHeader) : 0);
  }
  l.arena.resize(arena);
  l.reqs.clear();
  l.posts.clear();
  // Where a message's bytes are: the lane's pinned staging (device lanes), or the buffer itself.
  auto staged = [&](size_t i) { return l.dev && l.slot[i] != kNoSlot; };
  auto send_src = [&](size_t i, const Op& op) -> const char* {
    return staged(i) ? l.stage.data() + l.slot[i] : resolve(e, l, op.a);
  };
  auto recv_dst = [&](size_t i, const Op& op) -> char* {
    return staged(i) ? l.stage.data() + l.slot[i] : resolve(e, l, op.dst);
  };
  size_t at = 0;
  for (size_t i = 0; i < round.ops.size(); ++i) {
    const Op& op = round.ops[i];
    if (op.kind != OpKind::send && op.kind != OpKind::recv) continue;
    const size_t b = op.count * e.es;
    const bool ipc = l.dev && l.route[i] == kIpc;
    const size_t wb = ipc ? sizeof(IpcDesc) : b;  // what travels: the payload, or its descriptor (on the IPC tag)
    const size_t before = l.reqs.size();
    if (op.kind == OpKind::send) {
      s.stats.messages_sent++;
      s.stats.bytes_sent += b;
      if (hdr && b <= kInline) {
        char* st = l.arena.data() + at;
        at += sizeof(WireHeader) + b;
        std::memcpy(st, &e.hdr, sizeof(WireHeader));
        if (b) std::memcpy(st + sizeof(WireHeader), send_src(i, op), b);
        post_send(s.data, st, sizeof(WireHeader) + b, op.peer, tag, l.reqs);
        l.posts.push_back({Posted::inl_send, static_cast<int>(i), op.peer, b, st, l.reqs.size() - before});
        continue;
      }
      if (hdr) {
        post_send(s.data, &e.hdr, sizeof(WireHeader), op.peer, tag, l.reqs);
        l.posts.push_back({Posted::hdr_send, static_cast<int>(i), op.peer, 0, nullptr, 1});
      }
      const size_t b0 = l.reqs.size();
      post_send(s.data, send_src(i, op), wb, op.peer, ipc ? ipc_tag(s, e, l) : tag, l.reqs);
      l.posts.push_back({Posted::send, static_cast<int>(i), op.peer, wb, nullptr, l.reqs.size() - b0});
    } else {
      if (hdr && b <= kInline) {
        char* st = l.arena.data() + at;
        at += sizeof(WireHeader) + b;
        post_recv(s.data, st, sizeof(WireHeader) + b, op.peer, tag, l.reqs);
        l.posts.push_back({Posted::inl_recv, static_cast<int>(i), op.peer, b, st, l.reqs.size() - before});
        continue;
      }
      if (hdr) {
        char* st = l.arena.data() + at;
        at += sizeof(WireHeader);
        post_recv(s.data, st, sizeof(WireHeader), op.peer, tag, l.reqs);
        l.posts.push_back({Posted::hdr_recv, static_cast<int>(i), op.peer, 0, st, 1});
      }
      const size_t b0 = l.reqs.size();
      post_recv(s.data, recv_dst(i, op), wb, op.peer, ipc ? ipc_tag(s, e, l) : tag, l.reqs);
      l.posts.push_back({Posted::recv, static_cast<int>(i), op.peer, wb, nullptr, l.reqs.size() - b0});
    }
  }
  if (l.wants_ack)
    for (const Op& op : round.ops) {
      if (op.kind != OpKind::send || l.ack_posted >= l.ack_reqs.size()) continue;
      const size_t k = l.ack_posted++;
      l.ack_peer[k] = op.peer;
      check_mpi(MPI_Irecv(&l.ack_buf[k], sizeof(WireHeader), MPI_BYTE, op.peer, tag, s.data, &l.ack_reqs[k]),
                "MPI_Irecv (acknowledgement)");
      l.ack_pending++;
    }
  if (l.dev) dev_post_ipc_acks(s, e, l, ipc_tag(s, e, l));
  const size_t n = l.reqs.size();
  l.statuses.resize(n);
  l.req_err.assign(n, MPI_SUCCESS);
  l.req_post.resize(n);
  l.idx.resize(n);
  l.sts.resize(n);
  for (size_t k = 0, pi = 0; pi < l.posts.size(); ++pi)
    for (size_t c = 0; c < l.posts[pi].nreq; ++c) l.req_post[k++] = static_cast<int>(pi);
  l.remaining = n;
  l.posted = true;
}

int error_class(int err) {
  int cls = MPI_SUCCESS;
  if (err != MPI_SUCCESS) MPI_Error_class(err, &cls);
  return cls;
}

// Answers a sending-only peer with this rank's own header (see kMagicAck).
void send_ack(CommState& s, const Execution& e, int peer, int tag) {
  auto h = std::make_unique<WireHeader>(e.hdr);
  h->magic = kMagic;
  MPI_Request r;
  check_mpi(MPI_Isend(h.get(), sizeof(WireHeader), MPI_BYTE, peer, tag, s.data, &r), "MPI_Isend (acknowledgement)");
  s.acks_out.emplace_back(r, std::move(h));
}

// A header (alone or with an inline payload) has arrived: compare it with ours
// at once, so that a disagreement is reported even when the rest of the round's
// messages will never come. Returns false (communicator failed) on mismatch.
bool check_header(CommState& s, Execution& e, const Posted& p, const MPI_Status& st, int err, int tag) {
  const int cls = error_class(err);
  if (cls != MPI_SUCCESS && cls != MPI_ERR_TRUNCATE) {
    fail_comm(s, kMPIFail, "receive from rank " + std::to_string(p.peer) + " failed: " + mpi_error_string(err), e.seq,
              coll_name(e.coll), {}, true);
    return false;
  }
  int got = 0;
  MPI_Get_count(&st, MPI_BYTE, &got);
  WireHeader theirs;
  const bool have = got >= static_cast<int>(sizeof(WireHeader)) || cls == MPI_ERR_TRUNCATE;
  if (have) std::memcpy(&theirs, p.staging, sizeof theirs);
  const bool valid = have && header_magic(theirs.magic);
  if (valid) {
    std::string diff = peer_header_diff(s, p.peer, e.hdr, theirs);
    if (!diff.empty()) {
      mismatch(s, e, p.peer, &theirs, diff + " differs");
      return false;
    }
  }
  const size_t want = sizeof(WireHeader) + (p.kind == Posted::inl_recv ? p.bytes : 0);
  if (!valid || cls == MPI_ERR_TRUNCATE || static_cast<size_t>(got) != want) {
    std::ostringstream m;
    m << "rank " << p.peer << " sent a message of unexpected size: expected " << p.bytes << " bytes of data";
    if (cls == MPI_ERR_TRUNCATE) m << ", received more";
    m << "; the ranks disagree on the count or the collective";
    mismatch(s, e, p.peer, nullptr, m.str());
    return false;
  }
  if (theirs.magic == kMagicAck) send_ack(s, e, p.peer, tag);
  return true;
}

// The acknowledgements a sending-only lane waits for. Returns false if the
// communicator failed (a receiver disagreed, or sent something else).
bool progress_acks(CommState& s, Execution& e, Lane& l) {
  while (l.ack_pending > 0) {
    const int n = static_cast<int>(l.ack_posted);
    std::vector<int> idx(static_cast<size_t>(n));
    std::vector<MPI_Status> sts(static_cast<size_t>(n));
    int outcount = 0;
    const int rc = MPI_Testsome(n, l.ack_reqs.data(), &outcount, idx.data(), sts.data());
    if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) {
      fail_comm(s, kMPIFail, "MPI_Testsome: " + mpi_error_string(rc), e.seq, coll_name(e.coll), {}, true);
      return false;
    }
    if (outcount == 0 || outcount == MPI_UNDEFINED) return true;
    for (int j = 0; j < outcount; ++j) {
      const int k = idx[static_cast<size_t>(j)];
      const int peer = l.ack_peer[static_cast<size_t>(k)];
      const int err = rc == MPI_ERR_IN_STATUS ? sts[static_cast<size_t>(j)].MPI_ERROR : MPI_SUCCESS;
      const int cls = error_class(err);
      if (cls != MPI_SUCCESS && cls != MPI_ERR_TRUNCATE) {
        fail_comm(s, kMPIFail, "receive from rank " + std::to_string(peer) + " failed: " + mpi_error_string(err),
                  e.seq, coll_name(e.coll), {}, true);
        return false;
      }
      int got = 0;
      MPI_Get_count(&sts[static_cast<size_t>(j)], MPI_BYTE, &got);
      const WireHeader& theirs = l.ack_buf[static_cast<size_t>(k)];
      const bool have = got >= static_cast<int>(sizeof(WireHeader)) || cls == MPI_ERR_TRUNCATE;
      if (have && header_magic(theirs.magic)) {
        std::string diff = peer_header_diff(s, peer, e.hdr, theirs);
        if (!diff.empty()) {
          mismatch(s, e, peer, &theirs, diff + " differs");
          return false;
        }
      }
      if (!have || !header_magic(theirs.magic) || cls == MPI_ERR_TRUNCATE) {
        mismatch(s, e, peer, nullptr,
                 "rank " + std::to_string(peer) + " sent data where an acknowledgement was expected; the ranks "
                 "disagree on the root or the collective");
        return false;
      }
    }
    l.ack_pending -= static_cast<size_t>(outcount);
  }
  return true;
}

// Every request of the round completed: verify payload sizes, unpack inline
// payloads. Returns false (communicator failed) on a mismatch or error.
bool finish_round_comm(CommState& s, Execution& e, Lane& l) {
  size_t k = 0;
  const Round& round = l.s->rounds[l.round];
  for (const Posted& p : l.posts) {
    if (p.kind == Posted::inl_recv) {
      if (p.bytes && l.dev)
        e.dpool->ops->copy(resolve(e, l, round.ops[p.op].dst), p.staging + sizeof(WireHeader), p.bytes, l.stream);
      else if (p.bytes)
        std::memcpy(resolve(e, l, round.ops[p.op].dst), p.staging + sizeof(WireHeader), p.bytes);
    } else if (p.kind == Posted::recv) {
      size_t total = 0;
      for (size_t c = 0; c < p.nreq; ++c) {
        const int err = l.req_err[k + c];
        const int cls = error_class(err);
        if (cls == MPI_ERR_TRUNCATE) {
          mismatch(s, e, p.peer, nullptr,
                   "rank " + std::to_string(p.peer) + " sent more than the expected " + std::to_string(p.bytes) +
                       " bytes: the ranks disagree on the count");
          return false;
        }
        if (err != MPI_SUCCESS) {
          fail_comm(s, kMPIFail, "receive from rank " + std::to_string(p.peer) + " failed: " + mpi_error_string(err),
                    e.seq, coll_name(e.coll), {}, true);
          return false;
        }
        int got = 0;
        MPI_Get_count(&l.statuses[k + c], MPI_BYTE, &got);
        total += static_cast<size_t>(got);
      }
      if (total != p.bytes) {
        mismatch(s, e, p.peer, nullptr,
                 "rank " + std::to_string(p.peer) + " sent " + std::to_string(total) + " bytes where " +
                     std::to_string(p.bytes) + " were expected: the ranks disagree on the count");
        return false;
      }
    } else if (p.kind == Posted::send || p.kind == Posted::inl_send || p.kind == Posted::hdr_send) {
      for (size_t c = 0; c < p.nreq; ++c)
        if (l.req_err[k + c] != MPI_SUCCESS) {
          fail_comm(s, kMPIFail,
                    "send to rank " + std::to_string(p.peer) + " failed: " + mpi_error_string(l.req_err[k + c]), e.seq,
                    coll_name(e.coll), {}, true);
          return false;
        }
    }
    k += p.nreq;
  }
  return true;
}

void run_local(Execution& e, Lane& l) {
  const Round& round = l.s->rounds[l.round];
  for (const Op& op : round.ops) {
    if (op.count == 0) continue;
    if (op.kind == OpKind::copy) {
      char* d = resolve(e, l, op.dst);
      const char* a = resolve(e, l, op.a);
      if (d != a) std::memmove(d, a, op.count * e.es);
    } else if (op.kind == OpKind::reduce) {
      e.red(resolve(e, l, op.dst), resolve(e, l, op.a), resolve(e, l, op.b), op.count);
    }
  }
}

// Advances one lane as far as it can without blocking. Returns false if the
// communicator failed.
bool step_lane(CommState& s, Execution& e, Lane& l) {
  if (!l.started) {
    l.started = true;
    if (e.on_device) dev_lane_start(s, e, l);
    else
      for (size_t c : l.s->scratch) l.scratch.push_back(s.pool.get(c * e.es));
    if (l.wants_ack) {
      size_t sends = 0;
      for (const Round& r : l.s->rounds)
        for (const Op& op : r.ops) sends += op.kind == OpKind::send;
      l.ack_reqs.assign(sends, MPI_REQUEST_NULL);
      l.ack_peer.assign(sends, -1);
      l.ack_buf.reset(new WireHeader[sends ? sends : 1]);
    }
  }
  while (l.round < l.s->rounds.size()) {
    if (!l.posted && l.dev) {
      // The round's sends must be in place (staged, exported, or written by
      // the previous round's device work) before MPI sees them; an exported
      // buffer is reused only once the peers acknowledged the last round.
      if (l.dphase == 0) {
        // The acknowledgements this lane owes go out before its next messages
        // (they share the tag: MPI keeps one sender's messages in order).
        const int acks = dev_ipc_acks(s, e, l);
        if (acks < 0) return false;
        if (acks == 0 || !l.ipc_owe.empty()) return true;
        dev_stage_round(s, e, l);
        e.dpool->ops->record(l.ev, l.stream);
        l.dphase = 1;
      }
      if (!e.dpool->ops->query(l.ev)) return true;
      l.dphase = 0;
    }
    if (!l.posted) post_round(s, e, l);
    while (l.remaining > 0) {
      int outcount = 0;
      const int n = static_cast<int>(l.reqs.size());
      const int rc = MPI_Testsome(n, l.reqs.data(), &outcount, l.idx.data(), l.sts.data());
      if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS) {
        fail_comm(s, kMPIFail, "MPI_Testsome: " + mpi_error_string(rc), e.seq, coll_name(e.coll), {}, true);
        return false;
      }
      if (outcount == 0 || outcount == MPI_UNDEFINED) return true;
      // Headers first: they explain any other failure of the round.
      for (int pass = 0; pass < 2; ++pass)
        for (int j = 0; j < outcount; ++j) {
          const int k = l.idx[j];
          const Posted& p = l.posts[l.req_post[k]];
          const bool header = p.kind == Posted::hdr_recv || p.kind == Posted::inl_recv;
          if (header != (pass == 0)) continue;
          l.statuses[k] = l.sts[j];
          l.req_err[k] = rc == MPI_ERR_IN_STATUS ? l.sts[j].MPI_ERROR : MPI_SUCCESS;
          if (header && !check_header(s, e, p, l.sts[j], l.req_err[k], lane_tag(s, e, l))) return false;
        }
      l.remaining -= static_cast<size_t>(outcount);
    }
    if (!l.reqs.empty() && !finish_round_comm(s, e, l)) return false;
    if (l.dev) {
      if (!dev_unstage_round(s, e, l)) return false;
      dev_run_local(e, l);
    } else {
      run_local(e, l);
    }
    l.round++;
    l.posted = false;
    l.reqs.clear();
    l.posts.clear();
    if (l.ack_pending && !progress_acks(s, e, l)) return false;
  }
  if (l.ack_pending) {
    if (!progress_acks(s, e, l)) return false;
    if (l.ack_pending) return true;
  }
  if (l.dev) {  // done once the device has run everything queued and the IPC peers acknowledged
    const int acks = dev_ipc_acks(s, e, l);
    if (acks < 0) return false;
    if (!l.dfinal) {
      e.dpool->ops->record(l.ev, l.stream);
      l.dfinal = true;
    }
    if (acks == 0 || !l.ipc_owe.empty() || !e.dpool->ops->query(l.ev)) return true;
    dev_lane_release(e, l);
  }
  l.done = true;
  for (auto& b : l.scratch) s.pool.put(std::move(b));
  l.scratch.clear();
  l.arena.clear();
  return true;
}

void progress_state(CommState& s) {
  if (s.freed || s.fail_kind != kNone) return;
  for (auto it = s.active.begin(); it != s.active.end();) {
    auto e = *it;  // keep alive
    if (!progress_exec(s, *e)) return;  // failed: the list was cleared
    if (e->complete) it = s.active.erase(it);
    else ++it;
  }
}

}  // namespace

// Advances an execution; false if the communicator failed. Segment j starts once
// segment j - window has finished (they share a tag).
bool progress_exec(CommState& s, Execution& e) {
  if (e.complete) return true;
  const size_t w = static_cast<size_t>(e.window);
  bool all = true;
  for (size_t i = 0; i < e.lanes.size(); ++i) {
    if (i >= e.next) {
      if (i >= w && !e.lanes[i - w].done) break;
      e.next = i + 1;
    }
    Lane& l = e.lanes[i];
    if (l.done) continue;
    if (e.on_device) {
      // A device error (a failed copy or kernel launch) fails the
      // communicator on every rank, as an MPI error does.
      try {
        if (!step_lane(s, e, l)) return false;
      } catch (const CUDAError& err) {
        fail_comm(s, kOther, "rank " + std::to_string(s.rank) + ": device error in " + coll_name(e.coll) + ": " +
                  err.what(), e.seq, coll_name(e.coll), {}, true);
        return false;
      }
    } else if (!step_lane(s, e, l)) {
      return false;
    }
    if (!l.done) all = false;
  }
  if (all && e.next == e.lanes.size()) {
    e.complete = true;
    if (e.on_device && e.start_ev) {
      e.dpool->put_event(e.start_ev);
      e.start_ev = nullptr;
    }
  }
  return true;
}

void progress_all_locked() {
  for (auto& w : g_states)
    if (auto s = w.lock()) progress_state(*s);
}

// Waiting: poll flat out for a while (the fastest wake-up when every rank has
// a core), then yield the CPU, then sleep briefly. When the node's ranks
// outnumber its usable cores, yield from the first poll: a spinning rank would
// keep the rank it waits for off the CPU.
void backoff(int& spins, Clock::time_point since, int spin_limit) {
  ++spins;
  if (spins < spin_limit) return;
  const double waited = seconds_since(since);
  if (waited < 1e-3) {
    sched_yield();
  } else {
    struct timespec ts {0, waited < 0.1 ? 20000 : 200000};
    nanosleep(&ts, nullptr);
  }
}

void wait_exec(const std::shared_ptr<CommState>& sp, const std::shared_ptr<Execution>& ep, double deadline_s) {
  CommState& s = *sp;
  Execution& e = *ep;
  int spins = 0;
  const auto since = Clock::now();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      if (e.complete) {
        if (e.cancelled) throw_failure(s);  // the communicator failed while it was in flight
        return;
      }
      if (s.fail_kind != kNone) throw_failure(s);
      s.waiting_seq = e.seq;
      progress_all_locked();
      if ((spins & 63) == 63 || s.fail_kind != kNone) service_control(s);
      // Completed by its messages: a failure reported for this operation or
      // an earlier one makes the result suspect, one for a later operation
      // (a rank that went on and then gave up) does not.
      if (e.complete && !e.cancelled) {
        s.waiting_seq = 0;
        if (seconds_since(s.last_service) > 50e-6) service_control(s);
        if (s.fail_kind != kNone && s.fail_seq <= e.seq) throw_failure(s);
        return;
      }
      if (s.fail_kind != kNone) {
        s.waiting_seq = 0;
        throw_failure(s);
      }
      // Compared as seconds, so that an infinite deadline (no BAOBAB_TIMEOUT) never expires.
      if (const double waited = seconds_since(e.start); waited > deadline_s) timeout(s, e, waited);
      // A stalled operation: ask where everyone is; a disagreement that no
      // message revealed (different roots) becomes a MismatchError early.
      if (!e.stall_checked && !s.diagnosing && seconds_since(e.start) > std::min(10.0, 0.5 * s.cfg.timeout)) {
        e.stall_checked = true;
        start_query(s, e);
      }
      // A sending-only rank whose acknowledgements are late asks just those
      // receivers for their signature: two ranks that both believe they are
      // the root never send to each other, and only this reveals it early.
      if (!e.acks_checked && !s.diagnosing && seconds_since(e.start) > std::min(0.1, 0.05 * s.cfg.timeout)) {
        e.acks_checked = true;
        const std::set<int> late = late_ackers(e);
        if (!late.empty()) start_query(s, e, &late);
      }
      if (s.diagnosing && s.diag_seq == e.seq && query_finished(s)) {
        s.diagnosing = false;
        if (signatures_disagree(s, e)) throw_failure(s);
      }
    }
    backoff(spins, since, s.spin_limit);
  }
}

}  // namespace baobab::runtime

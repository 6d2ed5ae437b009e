// The control channel and failure handling. Each communicator has a second
// duplicated MPI communicator on which every rank keeps one receive posted
// (any source, any tag): queries ("where are you?"), their answers, and abort
// notices travel there, never mixed with data. A failure (a mismatch found in
// a header, a timeout, an MPI error) fails the communicator on this rank:
// everything in flight is cancelled, the data communicator is drained, and a
// notice goes to every other rank, whose next poll fails it there too.
#include "control.hpp"

#include <sched.h>

#include <sstream>

#include "baobab/error.hpp"
#include "transport.hpp"

namespace baobab::runtime {

namespace {

void reap_ctrl_sends(CommState& s) {
  for (auto it = s.ctrl_out.begin(); it != s.ctrl_out.end();) {
    int flag = 0;
    MPI_Test(&it->first, &flag, MPI_STATUS_IGNORE);
    if (flag) it = s.ctrl_out.erase(it);
    else ++it;
  }
  for (auto it = s.acks_out.begin(); it != s.acks_out.end();) {
    int flag = 0;
    MPI_Test(&it->first, &flag, MPI_STATUS_IGNORE);
    if (flag) it = s.acks_out.erase(it);
    else ++it;
  }
}

std::string op_label(const CommState& s, uint64_t seq) {
  for (const auto& e : s.active)
    if (e->seq == seq) return std::string(coll_name(e->coll)) + " #" + std::to_string(seq);
  return "#" + std::to_string(seq);
}

void handle_ctrl(CommState& s, const CtrlMsg& m, int source) {
  // A notice sent to an earlier communicator whose context MPI gave to this
  // one (it was freed before the notice arrived) is not for this one.
  if (m.magic != kMagic || m.comm_id != s.comm_id) return;
  if (m.type == kQuery) {
    CtrlMsg a;
    a.type = kAnswer;
    a.seq = s.started;
    a.from = s.rank;
    a.extra = m.seq;
    std::string what = s.waiting_seq ? "waiting in " + op_label(s, s.waiting_seq) : "inside baobab";
    set_text(a, what);
    for (const auto& h : s.recent)
      if (h.seq == static_cast<uint32_t>(m.seq)) {
        a.hdr = h;
        a.has_hdr = 1;
      }
    send_ctrl(s, source, a);
  } else if (m.type == kAnswer) {
    if (s.diagnosing && m.extra == s.diag_seq && source >= 0 && source < s.size) {
      s.answered[source] = 1;
      s.answer_started[source] = m.seq;
      s.answer_text[source] = m.text;
      s.answer_hdr[source] = m.hdr;
      s.answer_has_hdr[source] = static_cast<int>(m.has_hdr);
    }
  } else if (m.type == kAbort) {
    std::string text(m.text);
    std::vector<int> missing;
    std::string op;
    auto nl = text.find('\n');
    if (nl != std::string::npos) {
      std::string rest = text.substr(nl + 1);
      text.resize(nl);
      auto nl2 = rest.find('\n');
      std::string list = rest.substr(0, nl2);
      if (nl2 != std::string::npos) op = rest.substr(nl2 + 1);
      std::istringstream in(list);
      std::string tok;
      while (std::getline(in, tok, ','))
        if (!tok.empty()) missing.push_back(std::stoi(tok));
    }
    // Mismatches and aborts name their ranks already.
    std::string prefix =
        m.kind == kMismatch || m.kind == kAborted ? "" : "reported by rank " + std::to_string(m.from) + ": ";
    fail_comm(s, m.kind, prefix + text, m.seq, op, missing, false);
  }
}

}  // namespace

void flush_ctrl(CommState& s, double seconds) {
  const auto t0 = Clock::now();
  while (!s.ctrl_out.empty()) {
    for (auto it = s.ctrl_out.begin(); it != s.ctrl_out.end();) {
      int flag = 0;
      MPI_Test(&it->first, &flag, MPI_STATUS_IGNORE);
      if (flag) it = s.ctrl_out.erase(it);
      else ++it;
    }
    if (s.ctrl_out.empty() || seconds_since(t0) > seconds) break;
    sched_yield();
  }
}

void post_ctrl_recv(CommState& s) {
  check_mpi(MPI_Irecv(&s.ctrl_in, sizeof(CtrlMsg), MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, s.ctrl, &s.ctrl_req),
            "MPI_Irecv (control)");
}

void send_ctrl(CommState& s, int dest, const CtrlMsg& m) {
  auto copy = std::make_unique<CtrlMsg>(m);
  copy->comm_id = s.comm_id;
  MPI_Request r;
  check_mpi(MPI_Isend(copy.get(), sizeof(CtrlMsg), MPI_BYTE, dest, static_cast<int>(m.type), s.ctrl, &r),
            "MPI_Isend (control)");
  s.ctrl_out.emplace_back(r, std::move(copy));
}

void cancel_execution(CommState& s, Execution& e) {
  for (auto& l : e.lanes) {
    size_t k = 0;
    for (const auto& p : l.posts) {
      for (size_t c = 0; c < p.nreq && k < l.reqs.size(); ++c, ++k) {
        MPI_Request& r = l.reqs[k];
        if (r == MPI_REQUEST_NULL) continue;
        if (p.kind == Posted::recv || p.kind == Posted::inl_recv || p.kind == Posted::hdr_recv) {
          MPI_Cancel(&r);
          MPI_Wait(&r, MPI_STATUS_IGNORE);
        } else {
          s.orphan_sends.push_back(r);
          r = MPI_REQUEST_NULL;
        }
      }
    }
    l.reqs.clear();
    l.posts.clear();
    for (size_t k = 0; k < l.ack_posted; ++k)
      if (l.ack_reqs[k] != MPI_REQUEST_NULL) {
        MPI_Cancel(&l.ack_reqs[k]);
        MPI_Wait(&l.ack_reqs[k], MPI_STATUS_IGNORE);
      }
    l.ack_pending = 0;
    if (!l.arena.empty()) s.graveyard.push_back(std::move(l.arena));
    for (auto& sc : l.scratch) s.scratch_graveyard.push_back(std::move(sc));
    l.scratch.clear();
    for (auto& r : l.ipc_ack_reqs)
      if (r != MPI_REQUEST_NULL) {
        MPI_Cancel(&r);
        MPI_Wait(&r, MPI_STATUS_IGNORE);
      }
    l.ipc_ack_reqs.clear();
    l.ipc_owe.clear();
    if (l.dev && e.dpool) {  // copies may still be queued and sends may still read the staging
      // A peer may still copy out of the exported buffer: it is not reused (the pool frees it at the end).
      l.xbuf = IpcBuf{};
      for (auto& b : l.dscratch) e.dpool->bury_device(b);
      e.dpool->bury_host(l.stage);
      l.dscratch.clear();
      l.stage = DeviceBuf{};
      if (l.stream) e.dpool->put_stream(l.stream);
      e.dpool->put_event(l.ev);
      e.dpool->put_event(l.ack_ev);
      l.stream = l.ev = l.ack_ev = nullptr;
    }
  }
  if (e.on_device && e.dpool && e.start_ev) {
    e.dpool->put_event(e.start_ev);
    e.start_ev = nullptr;
  }
  e.complete = true;
  e.cancelled = true;
}

// After a failure every rank that is still inside baobab drains the data
// communicator: it receives and discards whatever was sent to it, so that its
// peers' sends complete, and waits (up to `seconds`) for its own sends of the
// failed operations to complete. MPI has no way to abort a communicator, and
// sends left in flight at MPI_Finalize can break the MPI library. Stops once its
// sends are done and nothing has arrived for 50 ms.
void drain(CommState& s, double seconds) {
  if (s.freed) return;
  const auto t0 = Clock::now();
  auto quiet = Clock::now();
  std::vector<char> sink;
  while (seconds_since(t0) < seconds) {
    int flag = 0;
    MPI_Message msg;
    MPI_Status st;
    if (MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, s.data, &flag, &msg, &st) != MPI_SUCCESS) break;
    if (flag) {
      int n = 0;
      MPI_Get_count(&st, MPI_BYTE, &n);
      sink.resize(static_cast<size_t>(std::max(n, 1)));
      MPI_Mrecv(sink.data(), n, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
      quiet = Clock::now();
      continue;
    }
    int done = 1;
    if (!s.orphan_sends.empty())
      MPI_Testall(static_cast<int>(s.orphan_sends.size()), s.orphan_sends.data(), &done, MPI_STATUSES_IGNORE);
    if (done && seconds_since(quiet) > 0.05) break;
    sched_yield();
  }
  for (auto& r : s.orphan_sends)
    if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
  s.orphan_sends.clear();
}

void fail_comm(CommState& s, int32_t kind, const std::string& msg, uint64_t seq, const std::string& op,
               std::vector<int> missing, bool broadcast) {
  if (s.fail_kind != kNone) return;
  s.fail_kind = kind;
  s.fail_msg = msg;
  s.fail_seq = seq;
  s.fail_op = op;
  s.fail_missing = std::move(missing);
  if (broadcast && !s.freed) {
    CtrlMsg m;
    m.type = kAbort;
    m.seq = seq;
    m.from = s.rank;
    m.kind = kind;
    std::string text = msg;
    std::string tail = "\n";
    for (int r : s.fail_missing) tail += std::to_string(r) + ",";
    tail += "\n" + op;
    if (text.size() + tail.size() >= sizeof m.text) text.resize(sizeof m.text - tail.size() - 1);
    set_text(m, text + tail);
    for (int r = 0; r < s.size; ++r)
      if (r != s.rank) {
        try {
          send_ctrl(s, r, m);
        } catch (const Error&) {
        }
      }
    flush_ctrl(s, 0.2);
  }
  for (auto& e : s.active) cancel_execution(s, *e);
  s.active.clear();
  drain(s, 1.0);
}

[[noreturn]] void throw_failure(const CommState& s) {
  switch (s.fail_kind) {
    case kMismatch: throw MismatchError(s.fail_msg);
    case kTimeout: throw TimeoutError(s.fail_msg, s.fail_op, s.fail_seq, s.fail_missing);
    case kMPIFail: throw MPIError(s.fail_msg, 0);
    default: throw Error(s.fail_msg);
  }
}

void service_control(CommState& s) {
  if (s.freed) return;
  s.last_service = Clock::now();
  for (int guard = 0; guard < 64; ++guard) {
    int flag = 0;
    MPI_Status st;
    check_mpi(MPI_Test(&s.ctrl_req, &flag, &st), "MPI_Test (control)");
    if (!flag) break;
    CtrlMsg m = s.ctrl_in;
    post_ctrl_recv(s);
    handle_ctrl(s, m, st.MPI_SOURCE);
  }
  if (!s.ctrl_out.empty() || !s.acks_out.empty()) reap_ctrl_sends(s);
}

std::string peer_header_diff(const CommState& s, int peer, WireHeader mine, WireHeader theirs) {
  const bool near = peer >= 0 && peer < s.size && s.topo.node_of(peer) == s.topo.node_of(s.rank) &&
                    s.topo.host(peer) == s.topo.host(s.rank);
  if (!near) {
    mine.coll &= static_cast<uint8_t>(~kCollIpcBit);
    theirs.coll &= static_cast<uint8_t>(~kCollIpcBit);
  }
  return header_diff(mine, theirs);
}

void mismatch(CommState& s, Execution& e, int peer, const WireHeader* theirs, const std::string& what) {
  std::ostringstream m;
  m << "ranks disagree on a collective: rank " << s.rank << " called " << describe_header(e.hdr);
  if (theirs) m << " but rank " << peer << " called " << describe_header(*theirs);
  m << " (" << what << ")";
  fail_comm(s, kMismatch, m.str(), e.seq, coll_name(e.coll), {}, true);
}

void abort_comm(CommState& s, const std::string& reason) {
  if (s.freed || s.fail_kind != kNone) return;
  // The first operation this rank has not started: the others' operations
  // from there on cannot complete and raise; an earlier one that completes by
  // its messages (this rank did its part) keeps its result.
  fail_comm(s, kAborted, "rank " + std::to_string(s.rank) + " gave up (" + reason + ")", s.started + 1, "", {},
            true);
}

}  // namespace baobab::runtime

// The executor and the communicator: runs schedules over MPI with deadlines,
// signature checks and a control channel for diagnosis.
#include "baobab/communicator.hpp"

#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <list>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <cmath>
#include <unordered_map>

#include "baobab/error.hpp"
#include "transport.hpp"

namespace baobab {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ---- wire formats -------------------------------------------------------------

constexpr uint32_t kMagic = 0x42414f42;     // "BOAB"
// The same header, from a rank whose part of the collective only sends (a
// bcast root, a reduce leaf): each receiver answers with its own header, so
// that the sender, too, learns of a disagreement (a different root, another
// collective) from the messages themselves instead of returning normally.
constexpr uint32_t kMagicAck = 0x42414f41;  // "AOAB"
bool header_magic(uint32_t m) { return m == kMagic || m == kMagicAck; }
constexpr size_t kInline = 8192;          // payloads up to this size travel with their header

struct WireHeader {
  uint32_t magic = kMagic;
  uint32_t seq = 0;
  uint8_t coll = 0, dtype = 0, op = 0, algo = 0;
  int32_t root = 0;
  uint64_t count = 0;
  uint64_t counts_hash = 0;
};
static_assert(sizeof(WireHeader) == 32, "header must be 32 bytes");

enum CtrlType : uint32_t { kQuery = 1, kAnswer = 2, kAbort = 3 };
enum FailKind : int32_t { kNone = 0, kMismatch = 1, kTimeout = 2, kMPIFail = 3, kOther = 4 };

struct CtrlMsg {
  uint32_t magic = kMagic;
  uint32_t type = 0;
  uint64_t seq = 0;       // query/abort: the operation; answer: operations started
  int32_t from = -1;
  int32_t kind = 0;       // abort: FailKind
  uint64_t extra = 0;
  WireHeader hdr;          // answer: the signature of the queried operation, if known
  uint32_t has_hdr = 0;
  uint32_t pad = 0;
  char text[440] = {0};
};
static_assert(sizeof(CtrlMsg) == 512, "control message must be 512 bytes");

void set_text(CtrlMsg& m, const std::string& s) {
  std::snprintf(m.text, sizeof m.text, "%s", s.c_str());
}

// ---- plans --------------------------------------------------------------------

struct PlanKey {
  uint8_t coll;
  size_t count, elem_size;
  int root;
  uint64_t counts_hash;
  std::string algo;
  bool operator==(const PlanKey& o) const {
    return coll == o.coll && count == o.count && elem_size == o.elem_size && root == o.root &&
           counts_hash == o.counts_hash && algo == o.algo;
  }
};
struct PlanKeyHash {
  size_t operator()(const PlanKey& k) const {
    size_t h = std::hash<size_t>()(k.count) ^ (std::hash<uint64_t>()(k.counts_hash) << 1);
    h ^= (static_cast<size_t>(k.coll) << 3) ^ (k.elem_size << 7) ^ (static_cast<size_t>(k.root) << 11);
    return h ^ std::hash<std::string>()(k.algo);
  }
};

struct CachedPlan {
  Plan plan;
  uint8_t algo_id = 0;
  size_t seg_sends = 0;   // send operations of this rank in `seg`
  bool seg_recvs = false;  // whether `seg` receives anything
  Schedule seg;   // the schedule of one segment (or of the whole call)
  Schedule last;  // the last, shorter segment when segmented
};

uint8_t algo_index(const Algorithm* a) {
  const auto& all = algorithms();
  return static_cast<uint8_t>(a - all.data());
}

}  // namespace

// ---- execution ----------------------------------------------------------------

struct Posted {
  enum Kind : uint8_t { send, recv, inl_send, inl_recv, hdr_send, hdr_recv } kind;
  int op = -1;        // index in the round
  int peer = -1;
  size_t bytes = 0;   // payload bytes
  char* staging = nullptr;
  size_t nreq = 1;    // requests this entry owns (chunks)
};

// Scratch memory, reused across operations: large vectors would otherwise pay
// page faults on fresh memory at every call.
struct PoolBuf {
  std::unique_ptr<char[]> p;
  size_t cap = 0;
  char* data() { return p.get(); }
};

class Pool {
 public:
  PoolBuf get(size_t bytes) {
    size_t best = free_.size();
    for (size_t i = 0; i < free_.size(); ++i)
      if (free_[i].cap >= bytes && (best == free_.size() || free_[i].cap < free_[best].cap)) best = i;
    if (best < free_.size()) {
      PoolBuf b = std::move(free_[best]);
      free_.erase(free_.begin() + static_cast<long>(best));
      held_ -= b.cap;
      return b;
    }
    PoolBuf b;
    b.cap = std::max<size_t>(bytes, 64);
    b.p.reset(new char[b.cap]);
    return b;
  }
  void put(PoolBuf b) {
    if (!b.p) return;
    held_ += b.cap;
    free_.push_back(std::move(b));
    // Keep at most kLimit bytes: drop the smallest buffers first.
    while (held_ > kLimit && !free_.empty()) {
      auto it = std::min_element(free_.begin(), free_.end(),
                                 [](const PoolBuf& a, const PoolBuf& c) { return a.cap < c.cap; });
      held_ -= it->cap;
      free_.erase(it);
    }
  }

 private:
  static constexpr size_t kLimit = size_t{1} << 30;
  std::vector<PoolBuf> free_;
  size_t held_ = 0;
};

struct Lane {
  const Schedule* s = nullptr;
  size_t shift = 0;  // elements, applied to in and out
  size_t index = 0;
  size_t round = 0;
  bool started = false, posted = false, done = false;
  std::vector<MPI_Request> reqs;
  std::vector<MPI_Status> statuses;  // per request, valid once it completed
  std::vector<int> req_err;          // per request: its MPI error code
  std::vector<int> req_post;         // per request: index into posts
  std::vector<int> idx;              // scratch for MPI_Testsome
  std::vector<MPI_Status> sts;       // scratch for MPI_Testsome
  size_t remaining = 0;              // requests not yet completed
  std::vector<Posted> posts;
  std::vector<char> arena;
  std::vector<PoolBuf> scratch;
  // Acknowledgements awaited (lane 0 of a sending-only rank, signatures
  // checked): one per message sent, each the receiver's own header. The lane
  // is done once all have arrived and agree.
  bool wants_ack = false;
  std::vector<MPI_Request> ack_reqs;
  std::vector<int> ack_peer;
  std::unique_ptr<WireHeader[]> ack_buf;  // stable addresses for the receives
  size_t ack_posted = 0, ack_pending = 0;
};

struct Execution {
  uint64_t seq = 0;
  Coll coll = Coll::allreduce;
  std::string algo;
  WireHeader hdr;
  const char* in = nullptr;
  char* out = nullptr;
  size_t es = 1;
  Reduction red;
  std::vector<Lane> lanes;
  size_t next = 0;  // lanes [0, next) have been started
  int window = 1;
  Clock::time_point start;
  bool complete = false;
  bool check = true;
  bool stall_checked = false;
  bool acks_checked = false;  // the ranks whose acknowledgement is late were asked for their signature
  std::shared_ptr<CachedPlan> plan;  // keeps the schedules alive
};

struct CommState {
  MPI_Comm data = MPI_COMM_NULL, ctrl = MPI_COMM_NULL;
  bool freed = false;
  int rank = 0, size = 1;
  int tag_ub = 32767;
  Topology topo;
  Config cfg;
  CostModel model;
  std::unordered_map<PlanKey, std::shared_ptr<CachedPlan>, PlanKeyHash> plans;
  // The algorithm chosen per size class (see get_plan): a new size in a class
  // already costed builds its schedule without simulating every candidate again.
  std::unordered_map<PlanKey, Plan, PlanKeyHash> choices;
  uint64_t started = 0;
  std::list<std::shared_ptr<Execution>> active;
  Stats stats;
  // failure
  int32_t fail_kind = kNone;
  std::string fail_msg;
  uint64_t fail_seq = 0;
  std::string fail_op;
  std::vector<int> fail_missing;
  // control channel
  CtrlMsg ctrl_in;
  MPI_Request ctrl_req = MPI_REQUEST_NULL;
  std::list<std::pair<MPI_Request, std::unique_ptr<CtrlMsg>>> ctrl_out;
  std::vector<std::vector<char>> graveyard;  // staging of abandoned sends
  std::vector<PoolBuf> scratch_graveyard;
  std::vector<MPI_Request> orphan_sends;  // sends of failed operations, completed by drain()
  std::list<std::pair<MPI_Request, std::unique_ptr<WireHeader>>> acks_out;  // acknowledgements in flight
  std::thread::id owner;                 // the thread that may start operations (see bind_thread)
  Pool pool;
  // diagnosis in progress
  bool diagnosing = false;
  uint64_t diag_seq = 0;
  std::vector<int> answered;        // per rank: -1 none, else 1
  std::vector<uint64_t> answer_started;
  std::vector<std::string> answer_text;
  std::vector<WireHeader> answer_hdr;
  std::vector<int> answer_has_hdr;
  Clock::time_point diag_start;
  uint64_t waiting_seq = 0;         // the operation this rank is blocked in (for answers)
  int spin_limit = 200;             // polls before yielding (0 when ranks outnumber cores)
  std::deque<WireHeader> recent;    // signatures of the latest operations started here
};

namespace {

std::mutex g_mutex;
std::list<std::weak_ptr<CommState>> g_states;
int g_keyval = MPI_KEYVAL_INVALID;

// Completes pending control sends for up to `seconds` (abort notices must get
// out before this rank finalizes or exits).
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

void release_mpi(CommState& s) {
  if (s.freed) return;
  s.freed = true;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  if (s.ctrl_req != MPI_REQUEST_NULL) {
    MPI_Cancel(&s.ctrl_req);
    MPI_Wait(&s.ctrl_req, MPI_STATUS_IGNORE);
  }
  for (auto& e : s.active)
    for (auto& l : e->lanes)
      for (size_t i = 0; i < l.reqs.size(); ++i)
        if (l.reqs[i] != MPI_REQUEST_NULL) MPI_Request_free(&l.reqs[i]);
  flush_ctrl(s, 1.0);
  for (auto& [r, m] : s.ctrl_out)
    if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
  s.ctrl_out.clear();
  for (auto& [r, h] : s.acks_out) {
    int done = 0;
    if (r != MPI_REQUEST_NULL) MPI_Test(&r, &done, MPI_STATUS_IGNORE);
    if (!done && r != MPI_REQUEST_NULL) {
      MPI_Request_free(&r);
      h.release();  // MPI may still read it
    }
  }
  s.acks_out.clear();
  if (s.data != MPI_COMM_NULL) MPI_Comm_free(&s.data);
  if (s.ctrl != MPI_COMM_NULL) MPI_Comm_free(&s.ctrl);
}

// Called by MPI_Finalize (attributes of MPI_COMM_SELF are deleted first).
int on_finalize(MPI_Comm, int, void*, void*) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (auto& w : g_states)
    if (auto s = w.lock()) release_mpi(*s);
  g_states.clear();
  return MPI_SUCCESS;
}

void register_state(const std::shared_ptr<CommState>& s) {
  if (g_keyval == MPI_KEYVAL_INVALID) {
    MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, on_finalize, &g_keyval, nullptr);
    MPI_Comm_set_attr(MPI_COMM_SELF, g_keyval, nullptr);
  }
  g_states.remove_if([](const std::weak_ptr<CommState>& w) { return w.expired(); });
  g_states.push_back(s);
}

// ---- control channel ------------------------------------------------------------

void post_ctrl_recv(CommState& s) {
  check_mpi(MPI_Irecv(&s.ctrl_in, sizeof(CtrlMsg), MPI_BYTE, MPI_ANY_SOURCE, MPI_ANY_TAG, s.ctrl, &s.ctrl_req),
            "MPI_Irecv (control)");
}

void send_ctrl(CommState& s, int dest, const CtrlMsg& m) {
  auto copy = std::make_unique<CtrlMsg>(m);
  MPI_Request r;
  check_mpi(MPI_Isend(copy.get(), sizeof(CtrlMsg), MPI_BYTE, dest, static_cast<int>(m.type), s.ctrl, &r),
            "MPI_Isend (control)");
  s.ctrl_out.emplace_back(r, std::move(copy));
}

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
  }
  e.complete = true;
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

// Marks the communicator failed; cancels everything in flight; optionally tells
// every other rank.
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

void handle_ctrl(CommState& s, const CtrlMsg& m, int source) {
  if (m.magic != kMagic) return;
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
    std::string prefix = m.kind == kMismatch ? "" : "reported by rank " + std::to_string(m.from) + ": ";
    fail_comm(s, m.kind, prefix + text, m.seq, op, missing, false);
  }
}

void service_control(CommState& s) {
  if (s.freed) return;
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

// ---- running schedules ------------------------------------------------------------

std::string describe_header(const WireHeader& h) {
  std::ostringstream o;
  const bool per_rank = h.coll == static_cast<uint8_t>(Coll::allgather) ||
                        h.coll == static_cast<uint8_t>(Coll::reduce_scatter) ||
                        h.coll == static_cast<uint8_t>(Coll::alltoall);
  o << coll_name(static_cast<Coll>(h.coll)) << " #" << h.seq << (per_rank ? " (total=" : " (count=") << h.count;
  if (h.dtype != 255) o << ", dtype=" << dtype_name(static_cast<DType>(h.dtype));
  if (h.op == kLseMergeOp) o << ", op=lse_merge";
  else if (h.op != 255) o << ", op=" << redop_name(static_cast<RedOp>(h.op));
  if (h.coll == static_cast<uint8_t>(Coll::bcast) || h.coll == static_cast<uint8_t>(Coll::reduce))
    o << ", root=" << h.root;
  if (h.algo < algorithms().size()) o << ", algo=" << algorithms()[h.algo].name;
  o << ")";
  return o.str();
}

// Compares a peer's header with ours; returns a description of the difference.
std::string header_diff(const WireHeader& mine, const WireHeader& theirs) {
  std::vector<std::string> d;
  if (!header_magic(theirs.magic)) return "a message that is not a baobab collective header";
  if (mine.seq != theirs.seq)
    d.push_back("collective sequence number (a rank skipped or repeated a collective)");
  if (mine.coll != theirs.coll) d.push_back("collective");
  if (mine.count != theirs.count) d.push_back("count");
  if (mine.dtype != theirs.dtype) d.push_back("dtype");
  if (mine.op != theirs.op) d.push_back("op");
  if (mine.root != theirs.root) d.push_back("root");
  if (mine.counts_hash != theirs.counts_hash) d.push_back("per-rank counts");
  if (mine.algo != theirs.algo) d.push_back("algorithm");
  std::string out;
  for (const auto& s : d) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void mismatch(CommState& s, Execution& e, int peer, const WireHeader* theirs, const std::string& what) {
  std::ostringstream m;
  m << "ranks disagree on a collective: rank " << s.rank << " called " << describe_header(e.hdr);
  if (theirs) m << " but rank " << peer << " called " << describe_header(*theirs);
  m << " (" << what << ")";
  fail_comm(s, kMismatch, m.str(), e.seq, coll_name(e.coll), {}, true);
}

char* resolve(Execution& e, Lane& l, const Ref& r) {
  if (r.buf == kIn) return const_cast<char*>(e.in) + (r.off + l.shift) * e.es;
  if (r.buf == kOut) return e.out + (r.off + l.shift) * e.es;
  return l.scratch[r.buf - kScratch].data() + r.off * e.es;
}

int lane_tag(const CommState& s, const Execution& e, const Lane& l) {
  const int lanes = 32;
  const uint64_t nseq = static_cast<uint64_t>(s.tag_ub + 1) / lanes;
  return static_cast<int>((e.seq % nseq) * lanes + l.index % static_cast<size_t>(e.window));
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
  size_t at = 0;
  for (size_t i = 0; i < round.ops.size(); ++i) {
    const Op& op = round.ops[i];
    if (op.kind != OpKind::send && op.kind != OpKind::recv) continue;
    const size_t b = op.count * e.es;
    const size_t before = l.reqs.size();
    if (op.kind == OpKind::send) {
      s.stats.messages_sent++;
      s.stats.bytes_sent += b;
      if (hdr && b <= kInline) {
        char* st = l.arena.data() + at;
        at += sizeof(WireHeader) + b;
        std::memcpy(st, &e.hdr, sizeof(WireHeader));
        if (b) std::memcpy(st + sizeof(WireHeader), resolve(e, l, op.a), b);
        post_send(s.data, st, sizeof(WireHeader) + b, op.peer, tag, l.reqs);
        l.posts.push_back({Posted::inl_send, static_cast<int>(i), op.peer, b, st, l.reqs.size() - before});
        continue;
      }
      if (hdr) {
        post_send(s.data, &e.hdr, sizeof(WireHeader), op.peer, tag, l.reqs);
        l.posts.push_back({Posted::hdr_send, static_cast<int>(i), op.peer, 0, nullptr, 1});
      }
      const size_t b0 = l.reqs.size();
      post_send(s.data, resolve(e, l, op.a), b, op.peer, tag, l.reqs);
      l.posts.push_back({Posted::send, static_cast<int>(i), op.peer, b, nullptr, l.reqs.size() - b0});
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
      post_recv(s.data, resolve(e, l, op.dst), b, op.peer, tag, l.reqs);
      l.posts.push_back({Posted::recv, static_cast<int>(i), op.peer, b, nullptr, l.reqs.size() - b0});
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

// A header (alone or with an inline payload) has arrived: compare it with ours
// at once, so that a disagreement is reported even when the rest of the round's
// messages will never come. Returns false (communicator failed) on mismatch.
void send_ack(CommState& s, const Execution& e, int peer, int tag) {
  auto h = std::make_unique<WireHeader>(e.hdr);
  h->magic = kMagic;
  MPI_Request r;
  check_mpi(MPI_Isend(h.get(), sizeof(WireHeader), MPI_BYTE, peer, tag, s.data, &r), "MPI_Isend (acknowledgement)");
  s.acks_out.emplace_back(r, std::move(h));
}

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
    std::string diff = header_diff(e.hdr, theirs);
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
        std::string diff = header_diff(e.hdr, theirs);
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
      if (p.bytes) std::memcpy(resolve(e, l, round.ops[p.op].dst), p.staging + sizeof(WireHeader), p.bytes);
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
    run_local(e, l);
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
  l.done = true;
  for (auto& b : l.scratch) s.pool.put(std::move(b));
  l.scratch.clear();
  l.arena.clear();
  return true;
}

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
    if (!step_lane(s, e, l)) return false;
    if (!l.done) all = false;
  }
  if (all && e.next == e.lanes.size()) e.complete = true;
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

// Asks every rank (or only the ranks in `only`) where it is: answers carry its
// count of operations started and the signature it recorded for operation e.seq.
void start_query(CommState& s, Execution& e, const std::set<int>* only = nullptr) {
  s.diagnosing = true;
  s.diag_seq = e.seq;
  s.diag_start = Clock::now();
  s.answered.assign(s.size, 0);
  s.answer_started.assign(s.size, 0);
  s.answer_text.assign(s.size, "");
  s.answer_hdr.assign(s.size, WireHeader{});
  s.answer_has_hdr.assign(s.size, 0);
  s.answered[s.rank] = 1;
  s.answer_started[s.rank] = s.started;
  if (only)
    for (int r = 0; r < s.size; ++r) s.answered[r] = s.answered[r] || !only->count(r);
  CtrlMsg q;
  q.type = kQuery;
  q.seq = e.seq;
  q.from = s.rank;
  for (int r = 0; r < s.size; ++r)
    if (!s.answered[r]) send_ctrl(s, r, q);
}

// Ranks whose acknowledgement this execution still waits for.
std::set<int> late_ackers(const Execution& e) {
  std::set<int> out;
  for (const auto& l : e.lanes)
    for (size_t k = 0; k < l.ack_posted; ++k)
      if (l.ack_reqs[k] != MPI_REQUEST_NULL) out.insert(l.ack_peer[k]);
  return out;
}

double query_grace(const CommState& s) { return std::clamp(0.1 * s.cfg.timeout, 0.05, 2.0); }

bool query_finished(const CommState& s) {
  return std::all_of(s.answered.begin(), s.answered.end(), [](int a) { return a != 0; }) ||
         seconds_since(s.diag_start) > query_grace(s);
}

// Ranks that answered with a different signature for the same operation: a
// disagreement no message exposed (a different root, say). Fails the
// communicator with MismatchError and returns true if one is found.
bool signatures_disagree(CommState& s, Execution& e) {
  for (int r = 0; r < s.size; ++r) {
    if (r == s.rank || !s.answer_has_hdr[r]) continue;
    std::string diff = header_diff(e.hdr, s.answer_hdr[r]);
    if (!diff.empty()) {
      s.diagnosing = false;
      mismatch(s, e, r, &s.answer_hdr[r], diff + " differs");
      return true;
    }
  }
  return false;
}

// Finds out which ranks have not arrived at operation e.seq, then fails the
// communicator with a TimeoutError that names them (or a MismatchError if the
// ranks are all there but disagree).
[[noreturn]] void timeout(CommState& s, Execution& e, double waited) {
  // Who this rank is waiting for directly.
  std::set<int> direct;
  for (auto& l : e.lanes) {
    if (!l.started || l.done) continue;
    for (size_t i = 0; i < l.posts.size(); ++i) {
      const Posted& p = l.posts[i];
      if (p.kind == Posted::recv || p.kind == Posted::inl_recv || p.kind == Posted::hdr_recv) direct.insert(p.peer);
    }
    for (size_t k = 0; k < l.ack_posted; ++k)
      if (l.ack_reqs[k] != MPI_REQUEST_NULL) direct.insert(l.ack_peer[k]);
  }
  start_query(s, e);
  while (!query_finished(s) && s.fail_kind == kNone) {
    service_control(s);
    struct timespec ts {0, 1000000};
    nanosleep(&ts, nullptr);
  }
  s.diagnosing = false;
  if (s.fail_kind != kNone) throw_failure(s);  // another rank diagnosed first
  if (signatures_disagree(s, e)) throw_failure(s);
  std::vector<int> missing, silent, behind;
  std::ostringstream behind_text;
  for (int r = 0; r < s.size; ++r) {
    if (!s.answered[r]) {
      silent.push_back(r);
      missing.push_back(r);
    } else if (s.answer_started[r] < e.seq) {
      behind.push_back(r);
      missing.push_back(r);
      behind_text << (behind.size() > 1 ? "; " : "") << "rank " << r << " has started " << s.answer_started[r]
                  << " collectives and is " << s.answer_text[r];
    }
  }
  auto list = [](const std::vector<int>& v) {
    std::string o = "[";
    for (size_t i = 0; i < v.size(); ++i) o += (i ? ", " : "") + std::to_string(v[i]);
    return o + "]";
  };
  std::ostringstream m;
  m.setf(std::ios::fixed);
  m.precision(2);
  m << coll_name(e.coll) << " #" << e.seq << " did not complete within " << waited << " s (BAOBAB_TIMEOUT="
    << s.cfg.timeout << ") on rank " << s.rank << "; ranks that did not arrive: " << list(missing);
  if (!silent.empty()) m << " (no answer, not inside a baobab call: " << list(silent) << ")";
  if (!behind.empty()) m << " (" << behind_text.str() << ")";
  std::vector<int> dv(direct.begin(), direct.end());
  m << "; this rank was waiting for messages from " << list(dv);
  fail_comm(s, kTimeout, m.str(), e.seq, coll_name(e.coll), missing, true);
  throw_failure(s);
}

void wait_exec(const std::shared_ptr<CommState>& sp, const std::shared_ptr<Execution>& ep, double deadline_s) {
  CommState& s = *sp;
  Execution& e = *ep;
  int spins = 0;
  const auto since = Clock::now();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      if (e.complete) return;
      if (s.fail_kind != kNone) throw_failure(s);
      s.waiting_seq = e.seq;
      progress_all_locked();
      if ((spins & 63) == 0 || s.fail_kind != kNone) service_control(s);
      if (s.fail_kind != kNone) {
        s.waiting_seq = 0;
        throw_failure(s);
      }
      if (e.complete) {
        s.waiting_seq = 0;
        service_control(s);
        if (s.fail_kind != kNone && s.fail_seq <= e.seq) throw_failure(s);
        return;
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

}  // namespace

// ---- Work ------------------------------------------------------------------------

Work::Work(std::shared_ptr<CommState> c, std::shared_ptr<Execution> e) : c_(std::move(c)), e_(std::move(e)) {}

Work::~Work() {
  // A Work dropped before completion is completed here: its buffers must not be
  // written after the caller has released them.
  if (e_ && !e_->complete) {
    try {
      wait();
    } catch (const std::exception&) {
    }
  }
}

bool Work::test() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (e_->complete) return true;
  progress_all_locked();
  service_control(*c_);
  if (!e_->complete && c_->fail_kind != kNone) throw_failure(*c_);
  return e_->complete;
}

void Work::wait(double timeout) {
  if (e_->complete) return;
  double d = timeout < 0 ? c_->cfg.timeout : seconds_since(e_->start) + timeout;
  wait_exec(c_, e_, d);
}

bool Work::done() const { return e_->complete; }
const std::string& Work::algorithm() const { return e_->algo; }
uint64_t Work::seq() const { return e_->seq; }

// ---- Communicator -------------------------------------------------------------------

namespace {

// The set-up's buffers: if a step times out, its non-blocking collective can
// be neither cancelled nor freed (MPI forbids both while it is pending), and a
// rank arriving later may still complete it into these buffers. They are then
// left allocated for the life of the process.
struct SetupState {
  static constexpr int kName = 256;
  MPI_Comm data = MPI_COMM_NULL, ctrl = MPI_COMM_NULL;
  long long len_ok[2] = {0, 1};
  std::string blob;
  char mine[2][kName] = {{0}, {0}};
  std::vector<char> all;
  MPI_Request req = MPI_REQUEST_NULL;
};

// Waits for one step of the set-up. `limit` counts from t0 (the start of the
// constructor). On expiry the step gets half a second more: a rank whose
// partner completed the step at the last moment must not raise while that
// partner goes on.
void setup_wait(SetupState& st, Clock::time_point t0, double limit, int size, const char* step) {
  int spins = 0;
  const auto since = Clock::now();
  for (;;) {
    int flag = 0;
    check_mpi(MPI_Test(&st.req, &flag, MPI_STATUS_IGNORE), step);
    if (flag) return;
    const double waited = seconds_since(t0);
    if (waited > limit + 0.5) {
      std::ostringstream m;
      m.setf(std::ios::fixed);
      m.precision(2);
      m << "Communicator(): not every rank of the MPI communicator (size " << size << ") arrived within " << limit
        << " s (BAOBAB_TIMEOUT) at " << step
        << "; a baobab communicator is created collectively: every rank must create it, in the same order "
           "relative to their other collectives on that communicator";
      throw TimeoutError(m.str(), "Communicator", 0, {});
    }
    backoff(spins, since, 0);
  }
}

double env_timeout_or_default() {
  const char* v = std::getenv("BAOBAB_TIMEOUT");
  if (!v || !*v) return Config{}.timeout;
  try {
    return parse_timeout("BAOBAB_TIMEOUT", v);
  } catch (const InvalidArgument&) {
    return Config{}.timeout;  // rank 0's configuration reports it
  }
}

}  // namespace

Communicator::Communicator(MPI_Comm comm, const std::function<Config()>& make_config, double setup_timeout)
    : s_(std::make_shared<CommState>()) {
  CommState& s = *s_;
  s.owner = std::this_thread::get_id();
  const auto t0 = Clock::now();
  const double limit = setup_timeout > 0 ? setup_timeout : env_timeout_or_default();
  int size = 0, rank = 0;
  check_mpi(MPI_Comm_size(comm, &size), "MPI_Comm_size");
  check_mpi(MPI_Comm_rank(comm, &rank), "MPI_Comm_rank");
  // Every step that waits for other ranks is non-blocking, with a deadline:
  // a rank that never comes (or comes after the others gave up) makes every
  // rank raise TimeoutError instead of waiting for ever.
  auto st = std::make_unique<SetupState>();
  auto step = [&](const char* what) {
    try {
      setup_wait(*st, t0, limit, size, what);
    } catch (...) {
      st.release();  // still in use by the pending collective
      throw;
    }
  };
  check_mpi(MPI_Comm_idup(comm, &st->data, &st->req), "MPI_Comm_idup");
  step("MPI_Comm_idup");
  check_mpi(MPI_Comm_idup(comm, &st->ctrl, &st->req), "MPI_Comm_idup");
  step("MPI_Comm_idup (control)");
  s.data = st->data;
  s.ctrl = st->ctrl;
  MPI_Comm_set_errhandler(s.data, MPI_ERRORS_RETURN);
  MPI_Comm_set_errhandler(s.ctrl, MPI_ERRORS_RETURN);
  s.rank = rank;
  s.size = size;
  void* ub = nullptr;
  int flag = 0;
  MPI_Comm_get_attr(s.data, MPI_TAG_UB, &ub, &flag);
  if (flag && ub) s.tag_ub = *static_cast<int*>(ub);
  auto give_up = [&]() {
    // Failed after the communicators exist: release them (on every rank alike).
    MPI_Comm_free(&s.data);
    MPI_Comm_free(&s.ctrl);
    s.freed = true;
  };

  // Everyone uses rank 0's configuration; rank 0's error is everyone's error.
  if (s.rank == 0) {
    try {
      st->blob = make_config().serialize();
    } catch (const std::exception& ex) {
      st->blob = ex.what();
      st->len_ok[1] = 0;
    }
    st->len_ok[0] = static_cast<long long>(st->blob.size());
  }
  check_mpi(MPI_Ibcast(st->len_ok, 2, MPI_LONG_LONG, 0, s.data, &st->req), "MPI_Ibcast");
  step("MPI_Ibcast (configuration)");
  st->blob.resize(static_cast<size_t>(st->len_ok[0]));
  check_mpi(MPI_Ibcast(st->blob.data(), static_cast<int>(st->len_ok[0]), MPI_CHAR, 0, s.data, &st->req),
            "MPI_Ibcast");
  step("MPI_Ibcast (configuration)");
  if (!st->len_ok[1]) {
    give_up();
    throw InvalidArgument(st->blob + " (configuration of rank 0)");
  }
  s.cfg = Config::deserialize(st->blob);

  // Host names and Slurm topology addresses.
  constexpr int kName = SetupState::kName;
  int nlen = 0;
  MPI_Get_processor_name(st->mine[0], &nlen);
  if (const char* a = std::getenv("SLURM_TOPOLOGY_ADDR")) std::snprintf(st->mine[1], kName, "%s", a);
  st->all.resize(static_cast<size_t>(s.size) * 2 * kName);
  check_mpi(MPI_Iallgather(st->mine, 2 * kName, MPI_CHAR, st->all.data(), 2 * kName, MPI_CHAR, s.data, &st->req),
            "MPI_Iallgather");
  step("MPI_Iallgather (host names)");
  std::vector<std::string> hosts(s.size), addrs(s.size);
  for (int r = 0; r < s.size; ++r) {
    hosts[r] = std::string(st->all.data() + r * 2 * kName);
    addrs[r] = std::string(st->all.data() + r * 2 * kName + kName);
  }
  // Shared-memory domains. Every rank has completed the steps above, so every
  // rank reaches this blocking split.
  MPI_Comm shm;
  check_mpi(MPI_Comm_split_type(s.data, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &shm), "MPI_Comm_split_type");
  int shm_rank = 0;
  MPI_Comm_rank(shm, &shm_rank);
  int key = shm_rank == 0 ? s.rank : 0;
  MPI_Allreduce(MPI_IN_PLACE, &key, 1, MPI_INT, MPI_MAX, shm);
  MPI_Comm_free(&shm);
  std::vector<int> keys(s.size);
  check_mpi(MPI_Allgather(&key, 1, MPI_INT, keys.data(), 1, MPI_INT, s.data), "MPI_Allgather");
  try {
    s.topo = make_topology(s.size, keys, hosts, addrs, s.cfg.topology);
  } catch (...) {
    give_up();
    throw;
  }
  // Oversubscribed: more ranks share this host than it has usable cores.
  cpu_set_t cpus;
  int ncpu = sched_getaffinity(0, sizeof cpus, &cpus) == 0 ? CPU_COUNT(&cpus) : 0;
  if (ncpu <= 0) ncpu = static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN));
  int same_host = 0;
  for (int r = 0; r < s.size; ++r) same_host += hosts[r] == hosts[s.rank];
  if (ncpu > 0 && same_host > ncpu) s.spin_limit = 0;
  if (const char* v = std::getenv("BAOBAB_SPIN"); v && *v) {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end != '\0' || n < 0 || n > 1000000000) {
      give_up();
      throw InvalidArgument(std::string("BAOBAB_SPIN='") + v + "': expected a whole number of polls, 0 or more");
    }
    s.spin_limit = static_cast<int>(n);
  }
  s.model = s.cfg.model(s.topo);

  post_ctrl_recv(s);
  std::lock_guard<std::mutex> lock(g_mutex);
  register_state(s_);
}

Communicator::~Communicator() { free(); }

void Communicator::free() {
  if (!s_) return;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (s_->freed) return;
  }
  // Let operations in flight finish before the communicators go.
  while (true) {
    std::shared_ptr<Execution> e;
    {
      std::lock_guard<std::mutex> lock(g_mutex);
      if (s_->active.empty() || s_->fail_kind != kNone) break;
      e = s_->active.front();
    }
    try {
      wait_exec(s_, e, s_->cfg.timeout);
    } catch (const std::exception&) {
      break;
    }
  }
  std::lock_guard<std::mutex> lock(g_mutex);
  release_mpi(*s_);
}

int Communicator::rank() const { return s_->rank; }
int Communicator::size() const { return s_->size; }
const Topology& Communicator::topology() const { return s_->topo; }
const Config& Communicator::config() const { return s_->cfg; }
const CostModel& Communicator::model() const { return s_->model; }
Stats Communicator::stats() const { return s_->stats; }
MPI_Comm Communicator::mpi_comm() const { return s_->data; }

namespace {

void validate(const CommState& s, const CollDesc& d, const Reduction& red) {
  const int p = s.size;
  auto need_counts = [&](size_t n) {
    if (d.counts.size() != n)
      throw InvalidArgument(std::string(coll_name(d.coll)) + " needs " + std::to_string(n) + " counts, got " +
                            std::to_string(d.counts.size()));
  };
  switch (d.coll) {
    case Coll::reduce_scatter:
    case Coll::allgather: need_counts(static_cast<size_t>(p)); break;
    case Coll::alltoall: need_counts(static_cast<size_t>(p) * p); break;
    default: break;
  }
  if ((d.coll == Coll::bcast || d.coll == Coll::reduce) && (d.root < 0 || d.root >= p))
    throw InvalidArgument("root " + std::to_string(d.root) + " is not a rank of this communicator (size " +
                          std::to_string(p) + ")");
  if (d.reduces() && !red) throw InvalidArgument(std::string(coll_name(d.coll)) + " needs a reduction operator");
  if (d.reduces() && red.elem_size != d.elem_size)
    throw InvalidArgument("the reduction works on elements of " + std::to_string(red.elem_size) +
                          " bytes, the buffer's are " + std::to_string(d.elem_size));
}

// Size class of a call: quarter octaves of its bytes (the whole buffer, or the
// sum of the counts), and for count lists whether they are all equal. Calls in
// one class reuse the algorithm chosen for the first of them. Every rank sees
// the same calls in the same order, so every rank reuses the same choice.
PlanKey size_class(const CollDesc& d, const std::string& algo) {
  size_t elems = d.count;
  bool uniform = true;
  for (size_t c : d.counts) {
    elems += c;
    uniform = uniform && c == d.counts.front();
  }
  const double bytes = static_cast<double>(elems) * static_cast<double>(d.elem_size);
  const size_t cls = bytes < 1 ? 0 : 1 + static_cast<size_t>(std::floor(4.0 * std::log2(bytes)));
  return PlanKey{static_cast<uint8_t>(d.coll), cls, d.elem_size, d.root, d.counts.empty() ? 0u : (uniform ? 1u : 2u),
                 algo};
}

Plan choose_cached(CommState& s, const CollDesc& d, const std::string& algo) {
  const PlanKey k = size_class(d, algo);
  auto it = s.choices.find(k);
  if (it != s.choices.end() && it->second.algo && it->second.algo->unsupported(s.topo, d).empty()) {
    Plan p;
    p.algo = it->second.algo;
    p.reason = it->second.reason;
    p.segments = 1;
    p.seg_count = d.count;
    if (it->second.segments > 1 && p.algo->segmentable) {
      auto [nseg, seg] = segmentation(s.cfg, d);
      if (nseg > 1) {
        p.segments = nseg;
        p.seg_count = seg;
      }
    }
    return p;
  }
  Plan p = choose(s.topo, s.cfg, s.model, d, algo);
  if (s.choices.size() > 4096) s.choices.clear();
  Plan keep;  // without the candidate list
  keep.algo = p.algo;
  keep.segments = p.segments;
  keep.seg_count = p.seg_count;
  keep.reason = p.reason;
  s.choices[k] = keep;
  return p;
}

std::shared_ptr<CachedPlan> get_plan(CommState& s, const CollDesc& d, const std::string& algo) {
  PlanKey k{static_cast<uint8_t>(d.coll), d.count, d.elem_size, d.root, d.counts_hash(), algo};
  auto it = s.plans.find(k);
  if (it != s.plans.end()) return it->second;
  auto cp = std::make_shared<CachedPlan>();
  cp->plan = choose_cached(s, d, algo);
  cp->algo_id = algo_index(cp->plan.algo);
  CollDesc sd = d;
  if (cp->plan.segments > 1) sd.count = cp->plan.seg_count;
  cp->seg = build_schedule(*cp->plan.algo, s.topo, sd, s.rank, s.model);
  for (const Round& r : cp->seg.rounds)
    for (const Op& op : r.ops) {
      cp->seg_sends += op.kind == OpKind::send;
      cp->seg_recvs = cp->seg_recvs || op.kind == OpKind::recv;
    }
  if (cp->plan.segments > 1) {
    CollDesc ld = d;
    ld.count = d.count - (cp->plan.segments - 1) * cp->plan.seg_count;
    cp->last = build_schedule(*cp->plan.algo, s.topo, ld, s.rank, s.model);
  }
  if (s.plans.size() > 1024) s.plans.clear();
  s.plans.emplace(k, cp);
  return cp;
}

}  // namespace

std::shared_ptr<Work> Communicator::start(const CollDesc& d, const void* in, void* out, DType dtype,
                                          const Reduction& reduction, const std::string& algo) {
  std::lock_guard<std::mutex> lock(g_mutex);
  CommState& s = *s_;
  if (s.freed) throw Error("communicator has been freed");
  if (std::this_thread::get_id() != s.owner)
    throw InvalidArgument(
        std::string(coll_name(d.coll)) +
        " called from a thread that does not own this communicator. Ranks match collectives by the order in which "
        "they start them, which two threads cannot keep: a communicator's collectives are started by one thread "
        "(the one that created it, or the last to call bind_thread()). Give each thread its own communicator, or "
        "hand this one over with bind_thread() once its owner has stopped using it");
  service_control(s);
  if (s.fail_kind != kNone) throw_failure(s);
  validate(s, d, reduction);
  auto cp = get_plan(s, d, algo);
  auto e = std::make_shared<Execution>();
  e->seq = ++s.started;
  s.stats.collectives++;
  e->coll = d.coll;
  e->algo = cp->plan.algo->name;
  e->plan = cp;
  e->in = static_cast<const char*>(in);
  e->out = static_cast<char*>(out);
  e->es = d.elem_size;
  e->red = reduction;
  e->check = s.cfg.check;
  e->window = cp->plan.segments > 1 ? std::min(32, s.cfg.window) : 1;
  e->start = Clock::now();
  e->hdr.seq = static_cast<uint32_t>(e->seq);
  e->hdr.coll = static_cast<uint8_t>(d.coll);
  e->hdr.dtype = static_cast<uint8_t>(dtype);
  e->hdr.op = d.reduces() ? reduction.op : 255;
  e->hdr.algo = cp->algo_id;
  e->hdr.root = (d.coll == Coll::bcast || d.coll == Coll::reduce) ? d.root : 0;
  e->hdr.count = d.total();  // the same on every rank; per-rank counts are compared by hash
  e->hdr.counts_hash = d.counts_hash();
  // A rank whose part only sends waits for its receivers' acknowledgements.
  const bool wants_ack = e->check && s.size > 1 && cp->seg_sends > 0 && !cp->seg_recvs;
  if (wants_ack) e->hdr.magic = kMagicAck;
  s.recent.push_back(e->hdr);
  if (s.recent.size() > 64) s.recent.pop_front();
  e->lanes.resize(cp->plan.segments);
  for (size_t i = 0; i < e->lanes.size(); ++i) {
    Lane& l = e->lanes[i];
    l.index = i;
    l.s = (cp->plan.segments > 1 && i + 1 == e->lanes.size()) ? &cp->last : &cp->seg;
    l.shift = i * cp->plan.seg_count;
  }
  e->lanes[0].wants_ack = wants_ack;
  s.active.push_back(e);
  // Make progress at once: small collectives often finish here.
  if (!progress_exec(s, *e)) throw_failure(s);
  if (e->complete) {
    s.active.remove(e);
    // A failure another rank reported for this or an earlier operation makes
    // this result suspect: report it now rather than at the next call.
    service_control(s);
    if (s.fail_kind != kNone && s.fail_seq <= e->seq) throw_failure(s);
  }
  return std::make_shared<Work>(s_, e);
}

void Communicator::run(const CollDesc& d, const void* in, void* out, DType dtype, const Reduction& reduction,
                       const std::string& algo) {
  auto w = start(d, in, out, dtype, reduction, algo);
  w->wait();
}

void Communicator::bind_thread() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!s_->active.empty())
    throw InvalidArgument("bind_thread(): " + std::to_string(s_->active.size()) +
                          " operation(s) of this communicator are still in flight; complete them (wait) first");
  s_->owner = std::this_thread::get_id();
}

Plan Communicator::plan(const CollDesc& d, const std::string& algo) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return get_plan(*s_, d, algo)->plan;
}

std::string Communicator::explain(const CollDesc& d, const std::string& algo) {
  return baobab::explain(s_->topo, s_->cfg, s_->model, d, algo);
}

std::string mpi_library_version() {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(v, &len);
  return std::string(v, len);
}

void progress_all() {
  std::lock_guard<std::mutex> lock(g_mutex);
  progress_all_locked();
}

}  // namespace baobab

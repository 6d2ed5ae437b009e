// The state behind a Communicator and its Work objects, shared by the pieces
// of the runtime: the executor (executor.cpp) runs an Execution's lanes, the
// control channel (control.cpp, diagnosis.cpp) fails a CommState and tells
// the other ranks, the set-up (setup.cpp) fills a CommState in, and the
// facade (communicator.cpp) starts Executions.
//
// Locking: one mutex (g_mutex) guards every CommState, because progressing
// one communicator may complete another's operations (progress_all) and Work
// objects may be waited for from any thread.
#pragma once
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "baobab/communicator.hpp"
#include "baobab/device.hpp"
#include "device_pool.hpp"
#include "plan_cache.hpp"
#include "pool.hpp"
#include "wire.hpp"

namespace baobab {

namespace runtime {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// One posted message of a round (a payload, a header, or both inline).
struct Posted {
  enum Kind : uint8_t { send, recv, inl_send, inl_recv, hdr_send, hdr_recv } kind;
  int op = -1;        // index in the round
  int peer = -1;
  size_t bytes = 0;   // payload bytes
  char* staging = nullptr;
  size_t nreq = 1;    // requests this entry owns (chunks)
};

// One segment of a collective: a schedule run round by round, applied at an
// offset of the buffers.
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
  // A lane on device buffers (see device_lane.cpp): its stream and event, its
  // scratch in device memory, its pinned staging and where each message of
  // the current round sits there (kNoSlot: not staged).
  bool dev = false;
  uint8_t dphase = 0;  // 0: the round's staging copies not queued yet; 1: queued, event recorded
  bool dfinal = false;  // the lane's last event recorded
  void* stream = nullptr;
  void* ev = nullptr;
  DeviceBuf stage;
  std::vector<DeviceBuf> dscratch;
  std::vector<size_t> slot;
  std::vector<uint8_t> route;  // per op of the current round: how its bytes travel (executor.cpp: Route)
  // The IPC transport: this lane's exported buffer and where each send of the
  // round sits in it; the acknowledgements this lane's IPC sends of the last
  // round await (the buffer is reused only after them); the peers this lane
  // owes an acknowledgement once ack_ev (behind its copies out of their
  // buffers) is reached.
  IpcBuf xbuf;
  std::vector<size_t> xoff;
  std::vector<MPI_Request> ipc_ack_reqs;
  std::vector<int> ipc_ack_peer;
  std::vector<WireHeader> ipc_ack_buf;
  void* ack_ev = nullptr;
  std::vector<int> ipc_owe;
  // Receives a reduction reads out of the peer's buffer (direct_reads of the
  // lane's schedule, set with the IPC transport), and for the current round
  // the peer addresses that replace operand a / b of its local ops.
  const std::vector<std::vector<int32_t>>* direct = nullptr;
  std::vector<const char*> sub_a, sub_b;
  bool ack_after_local = false;

  // Ready for another operation, keeping the vectors' memory (every request
  // has completed: a lane is reused only after its execution completed).
  void reset() {
    s = nullptr;
    shift = index = round = remaining = 0;
    started = posted = done = wants_ack = false;
    reqs.clear();
    statuses.clear();
    req_err.clear();
    req_post.clear();
    idx.clear();
    sts.clear();
    posts.clear();
    arena.clear();
    scratch.clear();
    ack_reqs.clear();
    ack_peer.clear();
    ack_posted = ack_pending = 0;
    dev = dfinal = false;
    dphase = 0;
    stream = ev = nullptr;
    stage = DeviceBuf{};
    dscratch.clear();
    slot.clear();
    route.clear();
    xbuf = IpcBuf{};
    xoff.clear();
    ipc_ack_reqs.clear();
    ipc_ack_peer.clear();
    ipc_ack_buf.clear();
    ack_ev = nullptr;
    ipc_owe.clear();
    direct = nullptr;
    sub_a.clear();
    sub_b.clear();
    ack_after_local = false;
  }
};

}  // namespace runtime

// One collective in flight.
struct Execution {
  uint64_t seq = 0;
  Coll coll = Coll::allreduce;
  const std::string* algo = nullptr;  // the algorithm's name, in the registry
  runtime::WireHeader hdr;
  const char* in = nullptr;
  char* out = nullptr;
  size_t es = 1;
  Reduction red;
  std::vector<runtime::Lane> lanes;
  size_t next = 0;  // lanes [0, next) have been started
  int window = 1;
  runtime::Clock::time_point start;
  bool complete = false;
  bool cancelled = false;  // completed by a failure of the communicator, not by its messages
  bool check = true;
  bool stall_checked = false;
  bool acks_checked = false;  // the ranks whose acknowledgement is late were asked for their signature
  std::shared_ptr<runtime::CachedPlan> plan;  // keeps the schedules alive
  // Buffers on a device: how (ops, transport, the caller's stream), the pool
  // the lanes draw from, and the event recorded on the caller's stream at start.
  bool on_device = false;
  DeviceCall dev;
  const CostModel* model = nullptr;  // the device call's (CommState::device_model): it routes each message
  runtime::DevicePool* dpool = nullptr;
  void* start_ev = nullptr;
  DType dtype = DType::byte;

  // Ready for another operation (see CommState::spare), keeping the lanes' memory.
  void reset() {
    seq = 0;
    algo = nullptr;
    hdr = runtime::WireHeader{};
    in = nullptr;
    out = nullptr;
    es = 1;
    red = Reduction{};
    for (auto& l : lanes) l.reset();
    next = 0;
    window = 1;
    complete = cancelled = stall_checked = acks_checked = false;
    check = true;
    plan.reset();
    on_device = false;
    dev = DeviceCall{};
    dpool = nullptr;
    start_ev = nullptr;
    dtype = DType::byte;
  }
};

struct CommState {
  MPI_Comm data = MPI_COMM_NULL, ctrl = MPI_COMM_NULL;
  bool freed = false;
  int rank = 0, size = 1;
  int tag_ub = 32767;
  uint64_t comm_id = 0;  // rank 0's random identity of this communicator (see CtrlMsg)
  Topology topo;
  Config cfg;
  CostModel model;
  // The model of collectives on device buffers, per transport (DevicePath x
  // IPC), made at the first such call.
  std::unique_ptr<CostModel> dev_models[6];
  const CostModel& device_model(const DeviceCall* dc) {
    if (!dc) return model;
    auto& m = dev_models[static_cast<size_t>(dc->path) * 2 + (dc->ipc ? 1 : 0)];
    if (!m) m = std::make_unique<CostModel>(model.for_device(dc->path, dc->ipc));
    return *m;
  }
  // The model a call's plan is chosen under: the device model, unless
  // BAOBAB_DEVICE_PLAN=host makes device calls take the host's plan.
  const CostModel& plan_model(const DeviceCall* dc) {
    return dc && !cfg.device_host_plan ? device_model(dc) : model;
  }
  runtime::PlanCache plans;
  uint64_t started = 0;
  std::list<std::shared_ptr<Execution>> active;
  Stats stats;
  // failure
  int32_t fail_kind = runtime::kNone;
  std::string fail_msg;
  uint64_t fail_seq = 0;
  std::string fail_op;
  std::vector<int> fail_missing;
  // control channel
  runtime::CtrlMsg ctrl_in;
  MPI_Request ctrl_req = MPI_REQUEST_NULL;
  std::list<std::pair<MPI_Request, std::unique_ptr<runtime::CtrlMsg>>> ctrl_out;
  std::vector<std::vector<char>> graveyard;  // staging of abandoned sends
  std::vector<runtime::PoolBuf> scratch_graveyard;
  std::vector<MPI_Request> orphan_sends;  // sends of failed operations, completed by drain()
  std::list<std::pair<MPI_Request, std::unique_ptr<runtime::WireHeader>>> acks_out;  // acknowledgements in flight
  std::thread::id owner;                 // the thread that may start operations (see bind_thread)
  runtime::Pool pool;
  // diagnosis in progress
  bool diagnosing = false;
  uint64_t diag_seq = 0;
  std::vector<int> answered;        // per rank: -1 none, else 1
  std::vector<uint64_t> answer_started;
  std::vector<std::string> answer_text;
  std::vector<runtime::WireHeader> answer_hdr;
  std::vector<int> answer_has_hdr;
  runtime::Clock::time_point diag_start;
  uint64_t waiting_seq = 0;         // the operation this rank is blocked in (for answers)
  int spin_limit = 200;             // polls before yielding (0 when ranks outnumber cores)
  std::deque<runtime::WireHeader> recent;    // signatures of the latest operations started here
  // The execution of the last blocking collective, kept for the next one: its
  // vectors keep their memory, so a small collective allocates nothing.
  std::shared_ptr<Execution> spare;
  runtime::Clock::time_point last_service{};  // when the control channel was last read
  // Streams, events, pinned and device memory of device collectives, one pool per backend.
  std::vector<std::unique_ptr<runtime::DevicePool>> dpools;
  runtime::DevicePool& dpool(DeviceOps& ops) {
    for (auto& p : dpools)
      if (p->ops == &ops) return *p;
    return *dpools.emplace_back(std::make_unique<runtime::DevicePool>(ops));
  }
};

namespace runtime {

// Guards every CommState (see the top of this file).
extern std::mutex g_mutex;
// Every live communicator of this process (setup.cpp registers them).
extern std::list<std::weak_ptr<CommState>> g_states;

}  // namespace runtime

}  // namespace baobab

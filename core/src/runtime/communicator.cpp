// The public facade: Communicator and Work. A collective is started here
// (argument checks, the plan from the cache, the signature, the lanes) and
// handed to the executor; everything else lives in its own file:
//   wire.hpp/.cpp         signatures (WireHeader) and control messages (CtrlMsg)
//   pool.hpp              scratch memory reused across operations
//   state.hpp             CommState, Execution, Lane: the state the pieces share
//   executor.hpp/.cpp     running schedules: posting rounds, header checks,
//                         acknowledgements, progress, waiting with deadlines
//   control.hpp/.cpp      the control channel and failure handling
//   diagnosis.hpp/.cpp    timeout diagnosis: who is missing, who disagrees
//   plan_cache.hpp/.cpp   size classes and cached schedules
//   setup.hpp/.cpp        collective set-up, topology discovery, release
#include "baobab/communicator.hpp"

#include <mutex>
#include <thread>

#include "baobab/error.hpp"
#include "control.hpp"
#include "executor.hpp"
#include "setup.hpp"
#include "state.hpp"

namespace baobab {

using namespace runtime;

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
  if (e_->complete) {
    if (e_->cancelled) throw_failure(*c_);  // the communicator failed while it was in flight
    return true;
  }
  progress_all_locked();
  service_control(*c_);
  if (!e_->complete && c_->fail_kind != kNone) throw_failure(*c_);
  return e_->complete;
}

void Work::wait(double timeout) {
  if (e_->complete && !e_->cancelled) return;
  double d = timeout < 0 ? c_->cfg.timeout : seconds_since(e_->start) + timeout;
  wait_exec(c_, e_, d);
}

bool Work::done() const { return e_->complete; }
const std::string& Work::algorithm() const { return *e_->algo; }
uint64_t Work::seq() const { return e_->seq; }

// ---- Communicator -------------------------------------------------------------------

Communicator::Communicator(MPI_Comm comm, const std::function<Config()>& make_config, double setup_timeout)
    : s_(std::make_shared<CommState>()) {
  s_->owner = std::this_thread::get_id();
  setup(*s_, comm, make_config, setup_timeout);
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

}  // namespace

namespace {

// The control channel is read at the start and the end of a call at most
// every 50 us: a failure reported by another rank is then found by the
// wait loop (every 64 polls) or by the next call, and a loop of tiny
// collectives does not pay for an MPI_Test of it twice per call.
void service_control_if_due(CommState& s) {
  if (seconds_since(s.last_service) > 50e-6) service_control(s);
}

// Starts a collective (see Communicator::start). `reuse`: take the spare
// execution of an earlier blocking call, if nobody holds it any more.
std::shared_ptr<Execution> start_exec(CommState& s, const CollDesc& d, const void* in, void* out, DType dtype,
                                      const Reduction& reduction, const std::string& algo, bool reuse,
                                      const DeviceCall* device) {
  if (s.freed) throw Error("communicator has been freed");
  if (std::this_thread::get_id() != s.owner)
    throw InvalidArgument(
        std::string(coll_name(d.coll)) +
        " called from a thread that does not own this communicator. Ranks match collectives by the order in which "
        "they start them, which two threads cannot keep: a communicator's collectives are started by one thread "
        "(the one that created it, or the last to call bind_thread()). Give each thread its own communicator, or "
        "hand this one over with bind_thread() once its owner has stopped using it");
  service_control_if_due(s);
  if (s.fail_kind != kNone) throw_failure(s);
  validate(s, d, reduction);
  if (device) {
    if (!device->ops) throw InvalidArgument("device collective without a device backend");
    if (d.reduces() && !reduction.kernel && reduction.op != kLseMergeOp)
      throw InvalidArgument(std::string(coll_name(d.coll)) +
                            " on device buffers needs a typed reduction (sum, prod, min or max of a numeric dtype) "
                            "or the attention merge");
  }
  const CostModel& model = s.device_model(device);  // routes each message of a device call
  auto cp = s.plans.get(s.topo, s.cfg, s.plan_model(device), s.rank, d, algo);
  std::shared_ptr<Execution> e;
  if (reuse && s.spare && s.spare.use_count() == 1) {
    e = std::move(s.spare);
    e->reset();
  } else {
    e = std::make_shared<Execution>();
  }
  e->seq = ++s.started;
  s.stats.collectives++;
  e->coll = d.coll;
  e->algo = &cp->plan.algo->name;
  e->plan = cp;
  e->in = static_cast<const char*>(in);
  e->out = static_cast<char*>(out);
  e->es = d.elem_size;
  e->red = reduction;
  e->check = s.cfg.check;
  e->window = cp->plan.segments > 1 ? std::min(32, s.cfg.window) : 1;
  e->start = Clock::now();
  e->dtype = dtype;
  if (device) {
    e->on_device = true;
    e->dev = *device;
    e->model = &model;
    e->dpool = &s.dpool(*device->ops);
    e->start_ev = e->dpool->event();
    e->dpool->ops->record(e->start_ev, device->stream);  // the lanes start after the caller's stream
  }
  e->hdr.seq = static_cast<uint32_t>(e->seq);
  e->hdr.coll = static_cast<uint8_t>(d.coll);
  e->hdr.dtype = static_cast<uint8_t>(dtype);
  e->hdr.op = d.reduces() ? reduction.op : 255;
  e->hdr.algo = cp->algo_id;
  e->hdr.root = (d.coll == Coll::bcast || d.coll == Coll::reduce) ? d.root : 0;
  e->hdr.count = d.total();  // the same on every rank; per-rank counts are compared by hash
  e->hdr.counts_hash = d.counts_hash();
  if (device && device->ipc) e->hdr.coll |= kCollIpcBit;
  if (device && !s.cfg.device_host_plan) e->hdr.coll |= kCollDevicePlanBit;
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
  if (device && device->ipc) {
    if (!cp->direct_ready) {
      cp->seg_direct = direct_reads(cp->seg);
      cp->last_direct = direct_reads(cp->last);
      cp->direct_ready = true;
    }
    for (Lane& l : e->lanes) l.direct = l.s == &cp->last ? &cp->last_direct : &cp->seg_direct;
  }
  e->lanes[0].wants_ack = wants_ack;
  s.active.push_back(e);
  // Make progress at once: small collectives often finish here.
  if (!progress_exec(s, *e)) throw_failure(s);
  if (e->complete) {
    s.active.remove(e);
    // A failure another rank reported for this or an earlier operation makes
    // this result suspect: report it now rather than at the next call.
    service_control_if_due(s);
    if (s.fail_kind != kNone && s.fail_seq <= e->seq) throw_failure(s);
  }
  return e;
}

}  // namespace

std::shared_ptr<Work> Communicator::start(const CollDesc& d, const void* in, void* out, DType dtype,
                                          const Reduction& reduction, const std::string& algo,
                                          const DeviceCall* device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return std::make_shared<Work>(s_, start_exec(*s_, d, in, out, dtype, reduction, algo, false, device));
}

void Communicator::run(const CollDesc& d, const void* in, void* out, DType dtype, const Reduction& reduction,
                       const std::string& algo, const DeviceCall* device) {
  std::shared_ptr<Execution> e;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    e = start_exec(*s_, d, in, out, dtype, reduction, algo, true, device);
  }
  if (!e->complete || e->cancelled) wait_exec(s_, e, s_->cfg.timeout);
  // Completed by its messages (wait_exec throws otherwise): keep it for the next call.
  std::lock_guard<std::mutex> lock(g_mutex);
  e->plan.reset();
  s_->spare = std::move(e);
}

void Communicator::abort(const std::string& reason) {
  std::lock_guard<std::mutex> lock(g_mutex);
  abort_comm(*s_, reason);
}

void Communicator::bind_thread() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!s_->active.empty())
    throw InvalidArgument("bind_thread(): " + std::to_string(s_->active.size()) +
                          " operation(s) of this communicator are still in flight; complete them (wait) first");
  s_->owner = std::this_thread::get_id();
}

Plan Communicator::plan(const CollDesc& d, const std::string& algo, const DeviceCall* device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  return s_->plans.get(s_->topo, s_->cfg, s_->plan_model(device), s_->rank, d, algo)->plan;
}

Plan Communicator::costs(const CollDesc& d, const DeviceCall* device) {
  const CostModel* m = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    m = &s_->plan_model(device);
  }
  return choose(s_->topo, s_->cfg, *m, d, "", true);
}

std::string Communicator::explain(const CollDesc& d, const std::string& algo, const DeviceCall* device) {
  const CostModel* m = nullptr;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    m = &s_->device_model(device);
  }
  std::string text = baobab::explain(s_->topo, s_->cfg, *m, d, algo);
  if (device && s_->cfg.device_host_plan)
    text += "device calls take the host buffers' plan (BAOBAB_DEVICE_PLAN=host): " +
            plan(d, algo, nullptr).algo->name + "\n";
  return text;
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

// Creating a communicator, and releasing it. The set-up is collective and
// every step that waits for other ranks is a non-blocking MPI collective
// polled against a deadline: two duplicates of the user's communicator (data
// and control), rank 0's configuration broadcast, and an allgather of host
// names and Slurm topology addresses. Then the shared-memory domains (MPI's
// split by shared memory) and the topology are found, and whether this host
// runs more ranks than it has cores (waits then yield at once). Rank 0 also
// draws the communicator's identity, which its control messages carry. A rank
// whose step times out once the data communicator exists names the ranks that
// are not waiting at that step too. Communicators are registered so that
// MPI_Finalize releases those still alive.
#include "setup.hpp"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <sstream>

#include "baobab/error.hpp"
#include "control.hpp"
#include "executor.hpp"
#include "transport.hpp"

namespace baobab::runtime {

std::mutex g_mutex;
std::list<std::weak_ptr<CommState>> g_states;

namespace {

int g_keyval = MPI_KEYVAL_INVALID;  // the attribute of MPI_COMM_SELF whose deletion runs on_finalize

// Called by MPI_Finalize (attributes of MPI_COMM_SELF are deleted first).
int on_finalize(MPI_Comm, int, void*, void*) {
  std::lock_guard<std::mutex> lock(g_mutex);
  for (auto& w : g_states)
    if (auto s = w.lock()) release_mpi(*s);
  g_states.clear();
  return MPI_SUCCESS;
}

// The set-up's buffers: if a step times out, its non-blocking collective can
// be neither cancelled nor freed (MPI forbids both while it is pending), and a
// rank arriving later may still complete it into these buffers. They are then
// left allocated for the life of the process.
struct SetupState {
  static constexpr int kName = 256;
  MPI_Comm data = MPI_COMM_NULL, ctrl = MPI_COMM_NULL;
  bool have_data = false;  // the data communicator's duplication completed
  int step = 0;            // steps waited for so far
  long long len_ok_id[3] = {0, 1, 0};  // rank 0's configuration: length, whether it is one, communicator identity
  std::string blob;
  char mine[2][kName] = {{0}, {0}};
  std::vector<char> all;
  MPI_Request req = MPI_REQUEST_NULL;
};

// The ranks missing from a set-up step that timed out once the data
// communicator exists (every rank joined its duplication, so a rank that
// comes to it late can tell who left): each rank giving up at this step says
// so to every other rank on it, and those not heard from within a short grace
// time are the missing ones. That communicator is never used again nor freed,
// so a message nobody receives stays harmless.
std::vector<int> missing_at_step(SetupState& st, int rank, int size, double limit) {
  constexpr int kTag = 1;
  for (int r = 0; r < size; ++r)
    if (r != rank) {
      MPI_Request req;
      if (MPI_Isend(&st.step, 1, MPI_INT, r, kTag, st.data, &req) == MPI_SUCCESS) MPI_Request_free(&req);
    }
  std::vector<bool> heard(static_cast<size_t>(size), false);
  heard[static_cast<size_t>(rank)] = true;
  const double grace = std::clamp(limit / 10, 0.2, 2.0);
  const auto since = Clock::now();
  int spins = 0;
  while (seconds_since(since) < grace && std::count(heard.begin(), heard.end(), false) > 0) {
    int flag = 0, their = 0;
    MPI_Status status;
    if (MPI_Iprobe(MPI_ANY_SOURCE, kTag, st.data, &flag, &status) != MPI_SUCCESS) break;
    if (flag) {
      MPI_Recv(&their, 1, MPI_INT, status.MPI_SOURCE, kTag, st.data, MPI_STATUS_IGNORE);
      if (their == st.step) heard[static_cast<size_t>(status.MPI_SOURCE)] = true;
      continue;
    }
    backoff(spins, since, 0);
  }
  std::vector<int> out;
  for (int r = 0; r < size; ++r)
    if (!heard[static_cast<size_t>(r)]) out.push_back(r);
  return out;
}

// Waits for one step of the set-up. `limit` counts from t0 (the start of the
// constructor). On expiry the step gets half a second more: a rank whose
// partner completed the step at the last moment must not raise while that
// partner goes on.
void setup_wait(SetupState& st, Clock::time_point t0, double limit, int rank, int size, const char* step) {
  ++st.step;
  int spins = 0;
  const auto since = Clock::now();
  for (;;) {
    int flag = 0;
    check_mpi(MPI_Test(&st.req, &flag, MPI_STATUS_IGNORE), step);
    if (flag) return;
    const double waited = seconds_since(t0);
    if (waited > limit + 0.5) {
      const std::vector<int> missing = st.have_data ? missing_at_step(st, rank, size, limit) : std::vector<int>{};
      std::ostringstream m;
      m.setf(std::ios::fixed);
      m.precision(2);
      m << "Communicator(): ";
      if (missing.empty()) {
        m << "not every rank of the MPI communicator (size " << size << ") arrived";
      } else {
        m << (missing.size() > 1 ? "ranks " : "rank ");
        for (size_t i = 0; i < missing.size(); ++i) m << (i ? ", " : "") << missing[i];
        m << " of the MPI communicator (size " << size << ") did not arrive";
      }
      m << " within " << limit << " s (BAOBAB_TIMEOUT) at " << step
        << "; a baobab communicator is created collectively: every rank must create it, in the same order "
           "relative to their other collectives on that communicator";
      throw TimeoutError(m.str(), "Communicator", 0, missing);
    }
    backoff(spins, since, 0);
  }
}

// A random identity for a new communicator (rank 0's is everyone's).
uint64_t new_comm_id() {
  std::random_device rd;
  const uint64_t t = static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  const uint64_t id = (static_cast<uint64_t>(rd()) << 32 | rd()) ^ t ^ (static_cast<uint64_t>(getpid()) << 17);
  return id ? id : 1;
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

void register_state(const std::shared_ptr<CommState>& s) {
  if (g_keyval == MPI_KEYVAL_INVALID) {
    MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, on_finalize, &g_keyval, nullptr);
    MPI_Comm_set_attr(MPI_COMM_SELF, g_keyval, nullptr);
  }
  g_states.remove_if([](const std::weak_ptr<CommState>& w) { return w.expired(); });
  g_states.push_back(s);
}

void setup(CommState& s, MPI_Comm comm, const std::function<Config()>& make_config, double setup_timeout) {
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
      setup_wait(*st, t0, limit, rank, size, what);
    } catch (...) {
      st.release();  // still in use by the pending collective
      throw;
    }
  };
  check_mpi(MPI_Comm_idup(comm, &st->data, &st->req), "MPI_Comm_idup");
  step("MPI_Comm_idup");
  st->have_data = true;
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
      st->len_ok_id[1] = 0;
    }
    st->len_ok_id[0] = static_cast<long long>(st->blob.size());
    st->len_ok_id[2] = static_cast<long long>(new_comm_id());
  }
  check_mpi(MPI_Ibcast(st->len_ok_id, 3, MPI_LONG_LONG, 0, s.data, &st->req), "MPI_Ibcast");
  step("MPI_Ibcast (configuration)");
  s.comm_id = static_cast<uint64_t>(st->len_ok_id[2]);
  st->blob.resize(static_cast<size_t>(st->len_ok_id[0]));
  check_mpi(MPI_Ibcast(st->blob.data(), static_cast<int>(st->len_ok_id[0]), MPI_CHAR, 0, s.data, &st->req),
            "MPI_Ibcast");
  step("MPI_Ibcast (configuration)");
  if (!st->len_ok_id[1]) {
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
}

}  // namespace baobab::runtime

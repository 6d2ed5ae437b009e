// A baobab communicator: a duplicated MPI communicator (user tags never collide
// with baobab's), the topology, the configuration every rank agreed on, the
// cached plans, and the operations in flight.
//
// Every collective is started as a Work; blocking calls start and wait. Waits
// poll with a deadline (BAOBAB_TIMEOUT): on expiry the ranks that never arrived
// are found over a control channel and named in a TimeoutError. Signatures of
// every collective (which collective, its sequence number, count, dtype, op,
// root, algorithm) travel with the first messages and are compared on receipt;
// a disagreement raises MismatchError on every rank. abort() gives up on the
// communicator on every rank at once.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "baobab/algorithms.hpp"
#include "baobab/config.hpp"
#include "baobab/device.hpp"
#include "baobab/dtype.hpp"
#include "baobab/reduce.hpp"
#include "baobab/select.hpp"
#include "baobab/topology.hpp"

namespace baobab {

struct CommState;
struct Execution;

struct Stats {
  uint64_t collectives = 0;
  uint64_t messages_sent = 0;
  uint64_t bytes_sent = 0;
};

class Work {
 public:
  Work(std::shared_ptr<CommState> c, std::shared_ptr<Execution> e);
  ~Work();
  bool test();                    // progresses; true once complete; throws if it failed
  void wait(double timeout = -1);  // seconds; < 0: the communicator's BAOBAB_TIMEOUT from the start
  bool done() const;
  const std::string& algorithm() const;
  uint64_t seq() const;
  // Held until the operation completes (the bindings keep arrays alive with it).
  std::shared_ptr<void> keepalive;

 private:
  std::shared_ptr<CommState> c_;
  std::shared_ptr<Execution> e_;
};

class Communicator {
 public:
  // Collective over `comm`. Only rank 0 calls make_config (normally
  // Config::from_env); every rank uses its result, and an exception it throws
  // is raised on every rank as InvalidArgument. Every step waits at most
  // `setup_timeout` seconds (< 0: this rank's BAOBAB_TIMEOUT) for the other
  // ranks; a rank missing then makes every rank raise TimeoutError.
  Communicator(MPI_Comm comm, const std::function<Config()>& make_config, double setup_timeout = -1);
  ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const;
  int size() const;
  const Topology& topology() const;
  const Config& config() const;
  const CostModel& model() const;
  Stats stats() const;
  MPI_Comm mpi_comm() const;  // the duplicated data communicator

  // Starts a collective. `in`/`out` are host pointers laid out as CollDesc says;
  // `reduction` is used by reducing collectives. Throws InvalidArgument,
  // MismatchError (a failed communicator), MPIError.
  // `device`, when given, says that in/out are device pointers and how their
  // bytes travel (baobab/device.hpp); the plan and the messages are those of
  // host buffers, so ranks with host and with device buffers interoperate.
  // On a device, reducing collectives need a typed reduction.
  std::shared_ptr<Work> start(const CollDesc& d, const void* in, void* out, DType dtype, const Reduction& reduction,
                              const std::string& algo = "", const DeviceCall* device = nullptr);
  // Start + wait.
  void run(const CollDesc& d, const void* in, void* out, DType dtype, const Reduction& reduction,
           const std::string& algo = "", const DeviceCall* device = nullptr);

  // Threading: a communicator belongs to one thread, which alone may start
  // its collectives (others get InvalidArgument before anything is sent);
  // Work objects may be waited for and tested from any thread. The owner is
  // the creating thread until another calls bind_thread() (refused while an
  // operation is in flight).
  void bind_thread();

  // Gives up on this communicator on every rank: it fails here, and a notice
  // goes to every other rank over the control channel, so that their
  // operations in flight and all later ones raise Error("rank R gave up
  // (reason)") instead of waiting for this rank, as after a mismatch or a
  // timeout (an operation this rank had completed may still complete on the
  // others, with its right result). Safe at any time, from any thread; does
  // nothing once the communicator has failed (the other ranks were told then)
  // or been freed.
  void abort(const std::string& reason);

  // `device` (its path and ipc only): the plan of a call on device buffers
  // with that transport, priced by the device model (CostModel::dev).
  Plan plan(const CollDesc& d, const std::string& algo = "", const DeviceCall* device = nullptr);
  // Every candidate replayed in full (what explain prints), not cached: the
  // runtime's plan() stops costing candidates that can no longer win.
  Plan costs(const CollDesc& d, const DeviceCall* device = nullptr);
  std::string explain(const CollDesc& d, const std::string& algo = "", const DeviceCall* device = nullptr);

  // Releases MPI resources now (also done by the destructor and at MPI_Finalize).
  void free();

 private:
  std::shared_ptr<CommState> s_;
};

// MPI_Get_library_version of the MPI this process runs with.
std::string mpi_library_version();
// The MPI this core was compiled against: "mpich", "openmpi" or "unknown", and
// its version from mpi.h.
std::string mpi_build_family();
std::string mpi_build_version();
// "compiled, N devices", "compiled, no device (reason)" or "not compiled".
std::string cuda_status();
// Progresses every operation in flight on every communicator.
void progress_all();

}  // namespace baobab

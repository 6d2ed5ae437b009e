// Run-time configuration: environment variables, the tuning file, and the
// cost-model parameters. A communicator broadcasts rank 0's configuration at
// creation so that every rank makes the same algorithm choices.
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "baobab/device.hpp"
#include "baobab/schedule.hpp"

namespace baobab {

class Topology;

// Cost of moving a message between two ranks whose lowest common level is L:
// alpha (s) + bytes * beta (s/byte). Link class 0 is within a node.
struct LinkParams {
  double alpha = 0;
  double beta = 0;
};

// How one message of a collective on device buffers travels
// (baobab/device.hpp): handed to MPI as it is (direct: a CUDA-aware MPI, or
// a host lane), through pinned host memory, or through exported device memory.
enum class DeviceRoute : uint8_t { direct = 0, staged = 1, ipc = 2 };
const char* device_route_name(DeviceRoute r);

// What a collective on device buffers costs beyond the host model: the
// copies between device and pinned host memory, device-to-device copies,
// the device's reductions, and the latency of work queued on a stream whose
// end the host waits for. Defaults are an H200's (measured: pinned copies
// 55 GB/s each way, device copies 2.08 TB/s, float32 x += y 4.1 TB/s of
// reads and writes); tuning keys device.d2h_GBps, device.h2d_GBps,
// device.copy_GBps, device.peer_GBps, device.reduce_GBps (bytes of the
// result per second), device.latency_us, device.aware_us and device.aware_GBps.
struct DeviceModel {
  bool on = false;  // the call's buffers are device memory
  DevicePath path = DevicePath::staged;  // what the call may use between ranks (automatic: either)
  bool ipc = false;  // same-node, same-host peers may use exported device memory
  double d2h = 1.0 / 50e9;      // s per byte, device to pinned host memory
  double h2d = 1.0 / 50e9;      // s per byte, pinned host memory to device
  double copy = 1.0 / 2.0e12;   // s per byte copied device to device
  // s per byte a copy out of a peer's exported memory takes at least (0: the
  // copy rate; ranks sharing a GPU): another GPU's memory over NVLink or PCIe.
  double peer = 0;
  double gamma = 1.0 / 1.3e12;  // s per byte of a reduction's result (two bytes read, one written)
  double latency = 5e-6;        // s: queued copies or kernels, until the host sees them done
  double aware_alpha = 0;       // s a CUDA-aware MPI adds to a message from device memory
  double aware_beta = 0;        // s per byte such a message takes at least (0: the link's rate)
};

// The alpha-beta-gamma model. Every constant the model uses lives here.
struct CostModel {
  std::vector<LinkParams> link;  // by link level: 0 = same node, 1 = across nodes, 2.. = coarser
  double gamma = 1.0 / 4e9;      // s per byte reduced
  double copy = 1.0 / 8e9;       // s per byte copied locally
  double round_overhead = 0.2e-6;  // s per round: posting, polling
  // Messages between hosts larger than this travel by rendezvous: they start
  // once the receiver has posted the receive (tuning key rendezvous_bytes).
  double rndv_bytes = 64 * 1024;
  // Per communicator rank: s/byte of the link between the rank's node and the
  // network, where nodes' links differ (tuning keys host.<name>.bw_GBps or
  // node.<id>.bw_GBps). Empty, or 0 for a rank: the level-1 rate.
  std::vector<double> node_beta;
  // Parameters for link level L (the last one repeats for deeper levels).
  const LinkParams& at(int L) const {
    const size_t i = L < 0 ? 0 : static_cast<size_t>(L);
    return link[i < link.size() ? i : link.size() - 1];
  }
  // s/byte of rank r's node link.
  double node_link_beta(int r) const {
    if (r >= 0 && static_cast<size_t>(r) < node_beta.size() && node_beta[r] > 0) return node_beta[r];
    return at(1).beta;
  }
  // True when the node links of these ranks differ by more than 10 %.
  bool uneven_links(const std::vector<int>& ranks) const;
  // Device buffers: off for host collectives.
  DeviceModel dev;
  // The route of a message of `bytes` between ranks whose link level is L
  // (near: on one node and host) on device buffers, as the executor takes it
  // and the simulator prices it, each route priced alone: IPC (if dev.ipc
  // and near) where it costs no more than staging; else the path's (a forced
  // path's one, or for automatic the cheaper of direct and staged).
  // Identical on both ends of a message: the model is the same everywhere.
  DeviceRoute device_route(size_t bytes, int L, bool near) const;
  // What a message of `bytes` costs alone on route `r` (the figure compared above).
  double device_route_cost(DeviceRoute r, size_t bytes, int L) const;
  // This model for a call on device buffers with this transport.
  CostModel for_device(DevicePath path, bool ipc) const;
  static CostModel defaults(int levels);
};

struct Config {
  double timeout = 300.0;           // BAOBAB_TIMEOUT, seconds; +inf: no deadline
  bool check = true;                // BAOBAB_CHECK: verify signatures of collectives
  std::string topology;             // BAOBAB_TOPOLOGY
  std::array<std::string, static_cast<size_t>(Coll::count_)> algo;  // BAOBAB_ALGO, per collective
  size_t segment_bytes = 1 << 20;   // BAOBAB_SEGMENT: pipelining segment for large messages
  int window = 4;                   // BAOBAB_WINDOW: segments in flight
  // BAOBAB_DEVICE_PLAN: collectives on device buffers choose their algorithm
  // and segments under the device model ("device", the default), or take the
  // host buffers' plan ("host": the same messages and bits as the host
  // collective, so that ranks passing host and device buffers may mix).
  bool device_host_plan = false;
  // The selector's budget of simulated schedule operations per candidate
  // (0: none). `baobab simulate` sets one, so that a job too large for the
  // full simulation is reported as such instead of taking hours.
  size_t sim_op_budget = 0;
  // Replay one block of ranks where the job and the schedules are symmetric
  // (simulate.hpp: Symmetry); false replays every rank (a check of the
  // former, in the tests).
  bool sim_symmetric = true;
  // Above this many ranks, a candidate whose schedules keep a symmetry in
  // their structure (the same rounds and peers) but whose counts differ from
  // rank to rank by the uneven split of a vector (a count the ranks do not
  // divide) is replayed folded too, with the representatives' counts: an
  // estimate (each message off by at most a block's remainder) instead of a
  // full replay that grows with the square of the job.
  int sim_exact_ranks = 256;
  // Above sim_exact_ranks, a candidate that cannot be folded at all is
  // replayed whole only if that replays at most this many schedule
  // operations (and the job has at most 16,384 ranks); otherwise it is
  // estimated round by round over the first and the last node's ranks
  // (node_estimate).
  size_t sim_full_ops = 4000000;
  std::string tuning_file;          // BAOBAB_TUNING (path); loaded values in `tuned`
  std::vector<std::pair<std::string, double>> tuned;  // key/value pairs read from the tuning file
  std::string tuning_error;         // why the tuning file could not be read, if it could not

  // load_tuning = false skips reading the tuning file (when the caller replaces it).
  static Config from_env(bool load_tuning = true);
  // Parses "allreduce=ring,bcast=binomial" into algo[]; throws InvalidArgument.
  void set_algos(const std::string& spec);
  std::string serialize() const;
  static Config deserialize(const std::string& s);
  // The cost model for a topology of `levels` grouping levels: defaults, then
  // the tuning file's values (keys "link.<L>.alpha_us", "link.<L>.bw_GBps",
  // "gamma_GBps", "copy_GBps").
  CostModel model(int levels) const;
  // The same for a topology, with per-node link rates: "host.<name>.bw_GBps"
  // for the nodes on host <name>, "node.<id>.bw_GBps" for node <id> (virtual
  // nodes declared by BAOBAB_TOPOLOGY); node keys win over host keys.
  CostModel model(const Topology& t) const;
};

// Deadlines. BAOBAB_TIMEOUT (and the timeout option) is a number of seconds
// in (0, kMaxTimeout], or no deadline at all: `inf`, `none` or `0` in the
// environment, +infinity as a number. NaN, negative and larger values are
// refused (a deadline past the clock's range would expire at once).
constexpr double kMaxTimeout = 1e9;
double parse_timeout(const std::string& name, const std::string& text);
// check_timeout is the one rule of every timeout, the variable's and each
// argument's (the Python layer calls it too); zero_ok admits 0 (a wait that
// only polls).
double check_timeout(const std::string& name, double seconds, bool zero_ok = false);
// 1/0, on/off, yes/no, true/false (any case); anything else: InvalidArgument naming `name`.
bool parse_flag(const std::string& name, const std::string& text);
// Checks every BAOBAB_* variable the core reads (the ones read elsewhere too:
// BAOBAB_SPIN, BAOBAB_PACK, BAOBAB_CUDA_AWARE, and every BAOBAB_*_ISA cap);
// throws InvalidArgument naming the first bad one. Config::from_env calls it.
void check_environment();

// Reads a tuning file: "key = value" lines, '#' comments.
std::vector<std::pair<std::string, double>> read_tuning_file(const std::string& path);
std::string default_tuning_path();

}  // namespace baobab

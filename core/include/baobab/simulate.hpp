// Replays the schedules of every rank on a modelled cluster.
//
// Timing: a discrete-event model of the alpha-beta-gamma costs. A message of b
// bytes between ranks whose link level is L takes b*beta_L to inject and
// alpha_L more to arrive. Inside a node the copy is done by a CPU: it occupies
// the sender's CPU timeline, which its reductions (gamma per byte) and local
// copies also occupy, so a rank's pipelined segments cannot overlap its own
// shared-memory traffic with its arithmetic. Ranks on one host always talk
// through memory, so a message between them is such a CPU copy whatever level
// the topology gives their link (virtual nodes: BAOBAB_TOPOLOGY on one host),
// priced with that level's alpha and beta. Between hosts the message occupies
// the node's up- and downlink, shared by all ranks of the node (as a NIC is),
// and not the CPU. A round ends when its messages are delivered; then
// its reductions and copies run on the CPU timeline.
//
// Checking: every receive is matched with the sender's message in MPI order and
// the sizes must agree; ranks left waiting are reported as a deadlock.
//
// Data: optionally every rank gets real buffers and the simulator moves and
// reduces real bytes, which makes it a reference executor for algorithm tests.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "baobab/config.hpp"
#include "baobab/reduce.hpp"
#include "baobab/schedule.hpp"
#include "baobab/topology.hpp"

namespace baobab {

struct SimLane {
  const Schedule* schedule = nullptr;
  size_t in_shift = 0, out_shift = 0;  // elements, for pipelined segments
};

struct SimData {
  std::vector<std::vector<char>> in, out;  // per rank
  Reduction reduction;
};

struct SimResult {
  double time = 0;               // when the last rank finished (s)
  std::vector<double> finish;    // per rank
  size_t max_bytes_sent = 0;     // per rank, the largest
  size_t max_messages = 0;       // per rank, the largest
  size_t total_bytes = 0;
  std::string error;             // size mismatch or deadlock; empty if none
  bool cut = false;              // stopped past `limit`: time is a lower bound of the finish
};

// A symmetry of a modelled job, used to replay one block of ranks instead of
// all of them. The ranks fall into blocks of `period` consecutive ranks;
// moving every rank by a multiple of `period` (translate: r + k period mod p;
// xor: r ^ (k period), period and p / period powers of two) maps the
// topology onto itself (groups at every level, hosts, link rates) and, where
// the schedules are equivariant (select.cpp checks), every rank's replay onto
// another's. Ranks [0, period) then stand for all: a message from a
// representative r to rank q is the mirror image of one from pull(r, q) to
// rep(q), and lands in that queue.
struct Symmetry {
  // translate: by `period` ranks (cyclically); xor_mask: r ^ (period << k);
  // rotate: the nodes of each block of `block` ranks one node (`period`
  // ranks) on, cyclically within the block, and the blocks by one block;
  // rotate_xor: the same rotation, and the blocks by xor (block b to b ^ 2^k).
  enum class Kind : uint8_t { none, translate, xor_mask, rotate, rotate_xor };
  Kind kind = Kind::none;
  int period = 0;
  int size = 0;  // the job's ranks
  // The ranks' counts may differ (an estimate, select.cpp): a receive takes
  // what its mirror image sent without comparing sizes.
  bool loose = false;
  int block = 0;  // rotate: the ranks of a block (a group of the level above nodes)
  // A fold by one node in a job whose nodes are grouped under switches
  // (job_symmetries: node_fold): `share` of the representatives' images sit
  // under each switch, and send and receive what they do at the same
  // instant. Each message through a switch's uplink is priced as the last
  // of `share` alike (an estimate: the full replay lets them pass one by
  // one in the order of their ranks).
  int share = 1;
  bool active() const { return kind != Kind::none; }
  int rep(int q) const { return active() ? q % period : q; }
  // h^-1(r), for the move h that takes rep(q) to q.
  int pull(int r, int q) const {
    if (!active()) return r;
    const int shift = q - q % period;
    if (kind == Kind::translate) return (r - shift + size) % size;
    if (kind == Kind::xor_mask) return r ^ shift;
    const int nb = size / block, up = q % block - q % period;  // q's block is q / block
    const int in = (r % block - up + block) % block;
    const int b = kind == Kind::rotate ? (r / block - q / block + nb) % nb : (r / block) ^ (q / block);
    return b * block + in;
  }
  // The k-th generator of the moves, applied to r (k < generators()).
  // rotate_xor moves whole blocks by xor of their index, whatever the
  // block's size (a power of two or not).
  int move(int r, int k) const {
    if (kind == Kind::translate) return (r + period) % size;
    if (kind == Kind::xor_mask) return r ^ (period << k);
    if (k == 0) return r - r % block + (r % block + period) % block;
    if (kind == Kind::rotate) return (r + block) % size;
    return ((r / block) ^ (1 << (k - 1))) * block + r % block;
  }
  int generators() const;
};
const char* symmetry_name(Symmetry::Kind k);

// The symmetries of the modelled job that the replay can use, translation
// first (none when its ranks form a single block): every level's groups are
// equal blocks of consecutive ranks, and the moves keep hosts (ranks on one
// host stay on one host) and node link rates. With node_fold, for a job of
// nodes under one level of switches (three link levels), the folds by one
// node come first: rotate, rotate_xor and xor where the blocks and nodes
// are powers of two in number and size, with `share` set (estimates).
std::vector<Symmetry> job_symmetries(const Topology& t, const CostModel& m, bool node_fold = false);
// The ranks of the largest level's group when every level's groups are
// equal blocks of consecutive ranks (the period of job_symmetries), else the
// job's size.
int block_period(const Topology& t);

// lanes[r] = the segments of rank r, run with at most `window` in flight.
// Stops as soon as the job is known to finish after `limit` seconds (the
// selector's best time so far): every pending round starts later, or, on
// host buffers, one rank's remaining work (its lane's least round times,
// its CPU's and its injection's work still to come) ends later. `cut` is
// then set and `time` is that lower bound of the finish.
// With an active `sym`, lanes holds the representatives' segments only
// (sym.period ranks) and the result stands for every rank (no data).
SimResult simulate(const Topology& t, const CostModel& m, const std::vector<std::vector<SimLane>>& lanes, int window,
                   SimData* data = nullptr, double limit = std::numeric_limits<double>::infinity(),
                   const Symmetry& sym = Symmetry{});
// A lower bound of a rank's finish time when it runs `s` alone (one lane):
// each round lasts at least its longest send's transmission (as the replay
// prices it), the per-round overhead and its local operations.
double finish_lower_bound(const Topology& t, const CostModel& m, const Schedule& s, int rank);
// How long the replay keeps rank r's CPU and its network injection busy
// for `s` on host buffers (no data): the CPU copies each message to a rank
// on its host and does the reductions and local copies; each message off the
// host occupies the injection at the node link's rate. A rank finishes no
// earlier than either total, whatever the number of lanes of its segments
// (add their totals). Zero on device buffers.
struct Busy {
  double cpu = 0, inj = 0;
};
Busy busy_time(const Topology& t, const CostModel& m, const Schedule& s, int rank);
// The least time from the start of the round that sends a message of `bytes`
// from rank `from` to its arrival at `to`, as the replay prices it: its time
// on the wire alone (on device buffers, no more than an IPC descriptor's)
// and its link's latency. Rendezvous, contention and device copies only
// delay it further.
double message_floor(const Topology& t, const CostModel& m, int from, int to, size_t bytes);
// The selector's estimate for a large job that it cannot fold: the ranks of
// one node together (s[i] is ranks[i]'s schedule), round by round, each round
// its slowest rank's (as above, plus the round's latency, the largest alpha
// of its messages' links), or the node's link carrying every byte its ranks
// send off the node (or receive) in the round, if that is longer.
double node_estimate(const Topology& t, const CostModel& m, const std::vector<const Schedule*>& s,
                     const std::vector<int>& ranks);

}  // namespace baobab

// Algorithm selection, the one place where algorithms are chosen: every
// applicable algorithm's schedule is built for every rank and replayed by the
// simulator under the cost model; the fastest wins. The inner algorithm of a
// composition is chosen the same way: each variant (split_rail(ring),
// leader(rabenseifner), ...) is a candidate of its own. Large messages of
// segmentable algorithms are also costed as pipelined segments. BAOBAB_ALGO /
// algo= force an algorithm, or a family (split_rail: the best of its
// variants). The result is identical on every rank because the inputs
// (topology, configuration, call) are.
#pragma once
#include <limits>
#include <string>
#include <vector>

#include "baobab/algorithms.hpp"
#include "baobab/config.hpp"
#include "baobab/simulate.hpp"

namespace baobab {

struct Candidate {
  std::string name;
  std::string unsupported;  // why it cannot run; empty if it can
  double predicted = 0;     // seconds
  size_t segments = 1;      // pipelined segments
  size_t seg_count = 0;     // elements per segment (the whole count when one)
  size_t bytes_sent = 0;    // largest per rank
  size_t messages = 0;      // largest per rank
  size_t rounds = 0;        // of the slowest rank's schedule
  std::string error;        // simulator error (a bug if ever non-empty)
  // The selector stopped costing it once it could no longer win (choose
  // without cost_all): `predicted` is then a lower bound of its time.
  bool beaten = false;
  // Ranks whose schedules were replayed: all of them, or one block of a
  // symmetric job (the kind of symmetry in `symmetry`).
  int replayed = 0;
  Symmetry::Kind symmetry = Symmetry::Kind::none;
  // Folded although the ranks' counts differ (Config::sim_exact_ranks): the
  // prediction is an estimate, not the full replay's time.
  bool estimate = false;
  // How the prediction was made when not by replaying every rank (explain,
  // baobab simulate): the fold or the estimate; empty for a full replay.
  std::string how;
};

struct Plan {
  const Algorithm* algo = nullptr;
  size_t segments = 1;
  size_t seg_count = 0;  // elements per segment (the last may be shorter)
  std::string reason;
  std::vector<Candidate> candidates;
};

// Costs one algorithm; segments = 0 lets it pick 1 or the pipelined count,
// 1 costs it whole, more pipelined.
// limit: stop a replay once it cannot finish by then (the candidate is then
// `beaten`).
// syms: the job's symmetries (job_symmetries), tried in order when
// cfg.sim_symmetric; the first that the algorithm's schedules keep is used.
Candidate cost_algorithm(const Algorithm& a, const Topology& t, const Config& cfg, const CostModel& m,
                         const CollDesc& d, size_t segments = 0,
                         double limit = std::numeric_limits<double>::infinity(),
                         const std::vector<Symmetry>* syms = nullptr);
// forced: empty for automatic, else an algorithm or family name (throws
// InvalidArgument if unknown or unsupported here). Plan::algo is never a
// family's entry: forcing a family costs its variants and picks one.
// cost_all: cost every candidate (explain), not only those that may be chosen.
Plan choose(const Topology& t, const Config& cfg, const CostModel& m, const CollDesc& d, const std::string& forced,
            bool cost_all = false);
std::string explain(const Topology& t, const Config& cfg, const CostModel& m, const CollDesc& d,
                    const std::string& forced);
// Segment count and size for a call on a segmentable algorithm.
std::pair<size_t, size_t> segmentation(const Config& cfg, const CollDesc& d);
}  // namespace baobab

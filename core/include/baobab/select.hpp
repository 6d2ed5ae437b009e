// Algorithm selection: every applicable algorithm's schedule is built for every
// rank and replayed by the simulator under the cost model; the fastest wins.
// Large messages of segmentable algorithms are also costed as pipelined
// segments. BAOBAB_ALGO / algo= force a choice. The result is identical on every
// rank because the inputs (topology, configuration, call) are.
#pragma once
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
  size_t bytes_sent = 0;    // largest per rank
  size_t messages = 0;      // largest per rank
  size_t rounds = 0;        // of the slowest rank's schedule
  std::string error;        // simulator error (a bug if ever non-empty)
};

struct Plan {
  const Algorithm* algo = nullptr;
  size_t segments = 1;
  size_t seg_count = 0;  // elements per segment (the last may be shorter)
  std::string reason;
  std::vector<Candidate> candidates;
};

// Costs one algorithm; segments = 0 lets it pick 1 or the pipelined count.
Candidate cost_algorithm(const Algorithm& a, const Topology& t, const Config& cfg, const CostModel& m,
                         const CollDesc& d, size_t segments = 0);
// forced: empty for automatic, else an algorithm name (throws InvalidArgument if
// unknown or unsupported here).
Plan choose(const Topology& t, const Config& cfg, const CostModel& m, const CollDesc& d, const std::string& forced,
            bool cost_all = false);
std::string explain(const Topology& t, const Config& cfg, const CostModel& m, const CollDesc& d,
                    const std::string& forced);
// Segment count and size for a call on a segmentable algorithm.
std::pair<size_t, size_t> segmentation(const Config& cfg, const CollDesc& d);

}  // namespace baobab

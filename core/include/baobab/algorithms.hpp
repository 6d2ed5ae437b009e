// The algorithm registry: every algorithm of every collective, what it needs,
// and how it builds its schedule for one rank.
//
// Compositions that embed a flat allreduce (split_rail, leader) come as a
// family: one variant per inner algorithm, named "family(inner)"
// (split_rail(ring), leader(rabenseifner), ...), each an algorithm like any
// other that the selector builds and costs; and the family's own entry
// ("split_rail"), which builds nothing: forcing it lets the selector pick the
// best of its variants.
#pragma once
#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "baobab/config.hpp"
#include "baobab/schedule.hpp"
#include "baobab/topology.hpp"

namespace baobab {

// What a collective call asks for, identical on every rank (checked).
//  allreduce, bcast, reduce : count elements.
//  reduce_scatter           : counts[r] = elements rank r receives; the input holds sum(counts).
//  allgather                : counts[r] = elements rank r contributes; the output holds sum(counts).
//  alltoall                 : counts[s * p + d] = elements rank s sends to rank d.
//  barrier                  : nothing.
struct CollDesc {
  Coll coll = Coll::allreduce;
  size_t count = 0;
  size_t elem_size = 1;
  int root = 0;
  std::vector<size_t> counts;

  size_t total() const;      // elements in the largest buffer the call touches (for the size sweep)
  size_t bytes() const { return total() * elem_size; }
  bool reduces() const { return coll == Coll::allreduce || coll == Coll::reduce_scatter || coll == Coll::reduce; }
  uint64_t counts_hash() const;
};

struct Algorithm {
  std::string name;
  Coll coll;
  std::string summary;      // one line: the steps and the cost
  bool hierarchical = false;
  bool segmentable = false;  // large messages may be pipelined in independent segments
  // Returns "" if the algorithm can run this call on this topology, else why not.
  std::function<std::string(const Topology&, const CollDesc&)> unsupported;
  // Optional: "" if automatic selection should cost this algorithm under this
  // model, else why not (it still runs when forced).
  std::function<std::string(const Topology&, const CostModel&)> consider;
  // Appends the schedule of `rank` to s. Empty for a family's entry.
  std::function<void(Schedule& s, const Topology&, const CollDesc&, int rank, const CostModel&)> build;
  // Optional: a lower bound of the replay's finish time seen from `rank`,
  // without building its schedule (where the schedule grows with the job: a
  // ring's 2(p-1) rounds); the selector otherwise bounds the built schedule
  // (simulate.hpp: finish_lower_bound), and gives a call that may run
  // pipelined no bound at all. seg: 0, the bound holds for the whole call;
  // else it must hold too for the call cut into segments of `seg` elements
  // or more (the last may be shorter), however many lanes are in flight.
  std::function<double(const Topology&, const CollDesc&, int rank, const CostModel&, size_t seg)> bound;
  // The whole call's bound is also its time where no link is shared (the
  // ring's chain): the estimate of a job too large to replay or fold.
  bool bound_estimates = false;
  std::string family;                 // a variant's family ("split_rail"); empty otherwise
  std::string inner;                  // a variant's inner algorithm ("ring"); empty otherwise
  std::vector<std::string> variants;  // a family entry's variants; empty otherwise
  bool is_family() const { return !variants.empty(); }
};

const std::vector<Algorithm>& algorithms();
const Algorithm* find_algorithm(Coll c, const std::string& name);  // nullptr if unknown
std::vector<std::string> algorithm_names(Coll c);

// Builds the whole schedule of `rank` (including the local copies that move
// the input into the output). A family's entry has none: InvalidArgument.
Schedule build_schedule(const Algorithm& a, const Topology& t, const CollDesc& d, int rank, const CostModel& m);

}  // namespace baobab

// Declarations of every algorithm file's factory; registry.cpp lists them.
#pragma once
#include <string>

#include "baobab/algorithms.hpp"
#include "blocks.hpp"
#include "group.hpp"

namespace baobab::algo {
struct InnerAllreduce;

Algorithm allreduce_ring();
Algorithm allreduce_recursive_doubling();
Algorithm allreduce_rabenseifner();
Algorithm allreduce_weighted();
// Compositions embedding a flat allreduce: the variant with `inner`, or with
// nullptr the family's own entry (family_entry).
Algorithm allreduce_split_rail(const InnerAllreduce* inner);
Algorithm allreduce_leader(const InnerAllreduce* inner);
Algorithm reduce_scatter_ring();
Algorithm reduce_scatter_halving();
Algorithm allgather_ring();
Algorithm allgather_recursive_doubling();
Algorithm allgather_hier();
Algorithm bcast_binomial();
Algorithm bcast_scatter_allgather();
Algorithm bcast_hier();
Algorithm reduce_binomial();
Algorithm reduce_rs_gather();
Algorithm reduce_hier();
Algorithm alltoall_pairwise();
Algorithm alltoall_linear();
Algorithm alltoall_hier();
Algorithm barrier_dissemination();
Algorithm barrier_hier();

// The entry of a composition family: a's name, flags and support; no build.
// Its variants are a's name with every inner allreduce; `what` names the
// embedded step in the summary.
Algorithm family_entry(Algorithm a, const std::string& what);

// Shared `unsupported` checks.
inline std::string always(const Topology&, const CollDesc&) { return ""; }
std::string needs_pow2(const Topology& t, const CollDesc&);
// Hierarchical algorithms need ranks on more than one node.
std::string needs_nodes(const Topology& t, const CollDesc&);
}  // namespace baobab::algo

// Declarations of every algorithm file's factory; registry.cpp lists them.
#pragma once
#include <string>

#include "baobab/algorithms.hpp"
#include "blocks.hpp"
#include "group.hpp"

namespace baobab::algo {
Algorithm allreduce_ring();
Algorithm allreduce_recursive_doubling();
Algorithm allreduce_rabenseifner();
Algorithm allreduce_weighted();
Algorithm allreduce_split_rail();
Algorithm allreduce_leader();
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

// Shared `unsupported` checks.
inline std::string always(const Topology&, const CollDesc&) { return ""; }
std::string needs_pow2(const Topology& t, const CollDesc&);
// Hierarchical algorithms need ranks on more than one node.
std::string needs_nodes(const Topology& t, const CollDesc&);
}  // namespace baobab::algo

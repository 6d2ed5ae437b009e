// The bodies of the flat algorithms, for the algorithm files and for the
// compositions that embed them. Each is defined in its algorithm's file, next
// to its registry entry and its cost; each appends the calling rank's rounds
// to a schedule and works on a region of a buffer, so a hierarchical
// composition can run it among a group of ranks on part of a vector.
// Buffers: `src` is read where an element is first touched, the result lands
// in `buf` (src == buf: in place), so no input-to-output copy is needed.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "baobab/schedule.hpp"
#include "blocks.hpp"
#include "group.hpp"

namespace baobab::algo {

// reduce_scatter_ring.cpp: afterwards member i's block of `buf` holds the
// reduction of everyone's block i; other blocks of buf hold partial sums.
void ring_reduce_scatter(Schedule& s, const Group& g, uint8_t src, uint8_t buf, const Blocks& b);

// allgather_ring.cpp: member i's unit (or block) travels around the ring.
void ring_allgather(Schedule& s, const Group& g, uint8_t buf, const std::vector<Extents>& units);
void ring_allgather(Schedule& s, const Group& g, uint8_t buf, const Blocks& b);

// Flat allreduces of elements [off, off+count).
// allreduce_recursive_doubling.cpp
void rd_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count);
// allreduce_rabenseifner.cpp
void rabenseifner_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count);
// allreduce_ring.cpp
void ring_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count);
// allreduce_weighted.cpp: members whose links cost beta[i] s/byte own blocks
// from weighted_blocks (weighted_blocks.hpp).
void weighted_allreduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count,
                        const std::vector<double>& beta);

// bcast_binomial.cpp: binomial tree broadcast of extents from group index root.
void binomial_bcast(Schedule& s, const Group& g, uint8_t buf, const Extents& e, int root);

// reduce_binomial.cpp: binomial tree reduction of extents to group index root,
// in place in buf; or reading this rank's contribution from src, returning
// false if buf was never written (a leaf, or a group of one: the data is still
// in src).
void binomial_reduce(Schedule& s, const Group& g, uint8_t buf, const Extents& e, int root);
bool binomial_reduce(Schedule& s, const Group& g, uint8_t src, uint8_t buf, const Extents& e, int root);

// barrier_dissemination.cpp
void dissemination(Schedule& s, const Group& g);

// linear_gather.cpp: every member sends its unit to the root in one round.
void linear_gather(Schedule& s, const Group& g, uint8_t buf, const std::vector<Extents>& units, int root);

}  // namespace baobab::algo

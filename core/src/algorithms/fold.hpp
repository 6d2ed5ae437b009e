// The non-power-of-two fold of recursive doubling and Rabenseifner: with
// p = p2 + rem members (p2 the largest power of two), the first 2 rem members
// pair up; each even one hands its data to its odd neighbour and waits for the
// result, so p2 members run the power-of-two algorithm.
// Cost: 2 (alpha + n beta) + n gamma on top of the p2-member algorithm.
#pragma once
#include <cstddef>
#include <cstdint>

#include "baobab/schedule.hpp"
#include "group.hpp"

namespace baobab::algo {

struct Fold {
  int p2 = 1, rem = 0;
  int newidx = -1;  // the caller's index among the p2 survivors, or -1 (it handed its data on)
  // The group index of survivor v.
  int real(int v) const { return v < rem ? 2 * v + 1 : v + rem; }
};

// Folds the first 2 rem members of g on [off, off+count): odd ones receive
// into tmp and reduce into buf (reading their own data from src). Clears
// `fresh` (whether the caller's data is still only in src) where the fold ran.
Fold fold_in(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count, uint8_t tmp,
             bool& fresh);
// Hands the result back from each odd member to its even neighbour.
void fold_out(Schedule& s, const Group& g, uint8_t buf, size_t off, size_t count);

}  // namespace baobab::algo

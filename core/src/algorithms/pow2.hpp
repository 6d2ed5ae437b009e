// Powers of two: recursive doubling and halving work among the largest power
// of two of a group's members and fold the others in (fold.hpp).
#pragma once

namespace baobab::algo {

inline bool is_pow2(int n) { return n > 0 && (n & (n - 1)) == 0; }

inline int floor_pow2(int n) {
  int p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

}  // namespace baobab::algo

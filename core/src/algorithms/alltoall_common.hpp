// Offsets into alltoall send and receive buffers from the count matrix
// counts[s * p + d] (elements rank s sends to rank d).
#pragma once
#include <vector>

#include "baobab/algorithms.hpp"

namespace baobab::algo {
struct A2A {
  int p;
  const std::vector<size_t>& c;
  A2A(const CollDesc& d, int size) : p(size), c(d.counts) {}
  size_t n(int s, int d) const { return c[static_cast<size_t>(s) * p + d]; }
  size_t send_off(int s, int d) const {  // in rank s's input
    size_t o = 0;
    for (int k = 0; k < d; ++k) o += n(s, k);
    return o;
  }
  size_t recv_off(int d, int s) const {  // in rank d's output
    size_t o = 0;
    for (int k = 0; k < s; ++k) o += n(k, d);
    return o;
  }
  size_t row(int s) const { return send_off(s, p); }
  size_t col(int d) const { return recv_off(d, p); }
};
}  // namespace baobab::algo

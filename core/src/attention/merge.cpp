// The log-sum-exp merge of partial attention results, as a reduction operator
// of the collective engine (rows of [out_0 .. out_{d-1}, lse]).
//
// Commutative to the bit: max, the two weights and the sums are symmetric in
// (a, b), so every rank of an allreduce computes identical results whichever
// operand an algorithm puts first. Stable for any lse: weights are exp(lse -
// max) <= 1, and an empty row (lse = -inf) has weight 0; two empty rows stay
// empty (out 0, lse -inf) instead of producing NaN.
#include <cmath>
#include <limits>

#include "baobab/attention.hpp"

namespace baobab::attention {

namespace {

template <class T>
void merge(T* dst, const T* a, const T* b, size_t n, int64_t d) {
  const int64_t row = d + 1;
  for (size_t r = 0; r < n; ++r) {
    const T* x = a + r * row;
    const T* y = b + r * row;
    T* o = dst + r * row;
    const T la = x[d], lb = y[d];
    const T m = la > lb ? la : lb;
    if (m == -std::numeric_limits<T>::infinity() || std::isnan(m)) {
      const T fill = std::isnan(m) ? m : T(0);
      for (int64_t c = 0; c < d; ++c) o[c] = fill;
      o[d] = m;
      continue;
    }
    const T wa = std::exp(la - m), wb = std::exp(lb - m);  // one of them is exactly 1
    const T w = wa + wb;
    const T fa = wa / w, fb = wb / w;
    for (int64_t c = 0; c < d; ++c) o[c] = fa * x[c] + fb * y[c];
    o[d] = m + std::log(w);
  }
}

}  // namespace

void merge_rows(void* dst, const void* a, const void* b, size_t n, int64_t d, bool is_double) {
  if (is_double)
    merge(static_cast<double*>(dst), static_cast<const double*>(a), static_cast<const double*>(b), n, d);
  else
    merge(static_cast<float*>(dst), static_cast<const float*>(a), static_cast<const float*>(b), n, d);
}

}  // namespace baobab::attention

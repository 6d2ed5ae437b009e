// Attention on a shard of the key/value sequence: the local kernels, and the
// log-sum-exp merge that makes partial results combine exactly.
//
// Layout: every array is C-contiguous. q and out: [bh][q_len][d]; k and v:
// [bh][kv_len][d]; lse and delta: [bh][q_len] (bh = batch x heads, flattened).
// Scores are s_ij = scale * <q_i, k_j>. With causal masking, key j may be seen by
// query i only when j - i <= causal_offset (causal_offset = global position of
// the first query minus global position of the first key); without it every key
// is seen. A query that sees no key (fully masked, or kv_len == 0) gets
// lse = -inf and out = 0, which the merge treats as "nothing".
#pragma once
#include <cstddef>
#include <cstdint>

namespace baobab::attention {

struct Shape {
  int64_t bh = 1, q_len = 0, kv_len = 0, d = 0;
};

constexpr int64_t kNoMask = INT64_MAX;  // causal_offset value meaning "no causal mask"

// out = softmax(S) V restricted to the visible keys, normalised over them; lse =
// log of the sum of exp(s_ij) over them. Blockwise online softmax: memory is
// O(block), never O(q_len x kv_len). `threads` <= 0 means one per usable core.
void partial_forward(const Shape& s, const float* q, const float* k, const float* v, float scale,
                     int64_t causal_offset, float* out, float* lse, int threads);
void partial_forward(const Shape& s, const double* q, const double* k, const double* v, double scale,
                     int64_t causal_offset, double* out, double* lse, int threads);

// Gradients of this shard's contribution, given the final (merged) lse of every
// query and delta_i = sum_c dout_ic * out_ic of the final output: with
// P_ij = exp(s_ij - lse_i) (0 where masked) and dS_ij = P_ij (dout_i . v_j - delta_i),
//   dq_i += scale * sum_j dS_ij k_j,  dk_j += scale * sum_i dS_ij q_i,  dv_j += sum_i P_ij dout_i.
// dq, dk, dv are accumulated into (not overwritten).
void partial_backward(const Shape& s, const float* q, const float* k, const float* v, const float* dout,
                      const float* lse, const float* delta, float scale, int64_t causal_offset, float* dq,
                      float* dk, float* dv, int threads);
void partial_backward(const Shape& s, const double* q, const double* k, const double* v, const double* dout,
                      const double* lse, const double* delta, double scale, int64_t causal_offset, double* dq,
                      double* dk, double* dv, int threads);

// The merge of packed rows [out_0 .. out_{d-1}, lse] (row = d + 1 values):
// dst = merge(a, b) for n rows; dst may alias a or b. Exact and commutative
// (the same bits whichever operand comes first), stable for any lse values,
// -inf (empty) rows included:
//   m = max(lse_a, lse_b); if m == -inf: out = 0, lse = -inf
//   w_a = exp(lse_a - m), w_b = exp(lse_b - m); lse = m + log(w_a + w_b)
//   out = (w_a out_a + w_b out_b) / (w_a + w_b)
void merge_rows(void* dst, const void* a, const void* b, size_t n, int64_t d, bool is_double);

}  // namespace baobab::attention

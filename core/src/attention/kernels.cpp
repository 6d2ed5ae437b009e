// Local attention kernels: the blockwise online-softmax forward (flash-attention
// style) and its backward, for float and double.
//
// Layout and semantics: see baobab/attention.hpp. (merge_rows lives in merge.cpp.)
//
// Design
// ------
// Forward. A work item is (bh, block of QB queries, range of keys). The query
// block is packed once, transposed and pre-multiplied by the scale, into
// Qt[d][QB], so that every vector register holds W consecutive *queries*. For
// each block of KB keys:
//   St[j][i] = <k_j, scale q_i>           (a register-blocked GEMM, see `tile`)
//   causal mask (only on blocks that straddle the diagonal), then per query:
//   m' = max(m, max_j St), P = exp(St - m'), l = l e^(m - m') + sum_j P,
//   Ot[c][i] = Ot[c][i] e^(m - m') + sum_j v_jc P[j][i]   (the same GEMM tile)
// Because vectors run along queries, the row max, the row sum and the rescaling
// are plain vertical vector operations (no horizontal reductions), K and V are
// read in place (their elements are broadcast), and any d works without
// padding. Key blocks past the causal diagonal of the whole query block are not
// visited at all. Memory per thread: Qt, St, Ot (d x QB, KB x QB, d x QB).
//
// Decode (q_len <= kDecodeMaxQ) is memory bound: one pass over K and V with
// vectors along d instead, so no lanes are wasted on absent queries.
//
// When (bh x query blocks) does not give every thread the same number of work
// items, the keys are split into ranges as well; each range yields a normalised
// partial (out, lse) and the partials are combined with the log-sum-exp rule.
//
// Backward. A work item is (bh, a set of key blocks). For its key block the item
// packs Kt[d][KB], Vt[d][KB] (vectors along keys) and keeps dKt, dVt in the same
// transposed layout; it then visits every query block that can see the key
// block and runs five GEMMs of the same tile kind:
//   S = Q Kt, P = exp(scale S - lse) (masked), dP = dO Vt, dS = P (dP - delta),
//   dVt += dO^T P, dKt += Q^T dS, dQ_blk = dS K  (added to dq with the scale).
// Threads never share dk/dv rows (each key block belongs to one item). dq rows
// are shared between the key blocks of one bh. Items are whole heads when bh
// gives every thread the same share; otherwise a head is split into C items
// (interleaved key blocks, which balances causal work). With C = 2 each item
// accumulates dq into a private copy of its head's rows, added to dq after the
// threads join in a fixed order (deterministic). With C > 2 (memory would grow
// with the thread count) the items compute dk and dv only, and a second pass
// over query blocks, laid out like the forward, computes dq.
//
// Instruction sets come from the SIMD layer (baobab/simd.hpp). The kernel code
// (the "body", kernels.inc) is written once against the layer's vector types,
// simd::F32 and simd::F64, with this file's blocking per type (Blocked below),
// and compiled once per tier by baobab/simd_tiers.hpp: baseline (scalar code,
// valid for any CPU and any architecture), avx2 and avx512. The tier is picked
// once per process with simd::select("BAOBAB_ATTENTION_ISA"), the best the CPU
// runs capped by BAOBAB_ATTENTION_ISA=baseline|avx2|avx512 (the tests use it
// to run every tier). exp is the layer's: under 1 ulp for float, 4e-16
// relative for double; -inf and anything below ln(FLT_MIN) resp. ln(DBL_MIN)
// give exactly 0 (no subnormal weights), never NaN; std::exp on baseline.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "baobab/attention.hpp"
#include "baobab/error.hpp"
#include "baobab/parallel.hpp"
#include "baobab/simd.hpp"

#if defined(__FAST_MATH__) || (defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__)
#error "baobab attention kernels must not be built with -ffast-math / -ffinite-math-only (they rely on inf)"
#endif

namespace baobab::attention {
namespace {

constexpr int64_t kDecodeMaxQ = 8;  // q_len up to this takes the decode path

// ---------------------------------------------------------------- helpers

template <class E>
using Buf = parallel::AlignedArray<E>;

int resolve_threads(int threads) { return threads > 0 ? threads : parallel::usable_cpus(); }

// How many key ranges to cut each of `base` work items into, so that `threads`
// threads get equal shares: 1 when there are plenty of items or they divide
// evenly; otherwise enough that the total is a multiple of the thread count.
int64_t split_count(int64_t base, int threads, int64_t max_split) {
  if (threads <= 1 || base <= 0) return 1;
  int64_t t = threads;
  if (base % t == 0 || base >= 4 * t) return 1;
  int64_t s = t / std::gcd(base, t);
  return std::max<int64_t>(1, std::min(s, max_split));
}

// The problem after validation. off is the causal offset clamped to [-L, N]
// (same visibility, no overflow in i + off).
struct Problem {
  int64_t bh, L, N, d;
  bool causal;
  int64_t off;
};

// Combines S normalised partials (out, lse) per row with the log-sum-exp rule.
// pout: [S][rows][d], plse: [S][rows].
template <class E>
void combine(const E* pout, const E* plse, int64_t S, int64_t rows, int64_t d, E* out, E* lse) {
  std::vector<double> w(size_t(S), 0.0), acc(size_t(d), 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    double m = -std::numeric_limits<double>::infinity();
    for (int64_t s = 0; s < S; ++s) m = std::max(m, double(plse[s * rows + r]));
    E* o = out + r * d;
    if (m == -std::numeric_limits<double>::infinity()) {
      for (int64_t c = 0; c < d; ++c) o[c] = E(0);
      lse[r] = -std::numeric_limits<E>::infinity();
      continue;
    }
    double tot = 0;
    for (int64_t s = 0; s < S; ++s) tot += (w[size_t(s)] = std::exp(double(plse[s * rows + r]) - m));
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t s = 0; s < S; ++s) {
      if (w[size_t(s)] == 0) continue;
      const E* po = pout + (s * rows + r) * d;
      for (int64_t c = 0; c < d; ++c) acc[size_t(c)] += w[size_t(s)] * double(po[c]);
    }
    for (int64_t c = 0; c < d; ++c) o[c] = E(acc[size_t(c)] / tot);
    lse[r] = E(m + std::log(tot));
  }
}

// ---------------------------------------------------------------- blocking
// The body's vector type: the layer's S plus this kernel's blocking for it,
// the tile shape R x NV (rows x vectors), block sizes QB (forward queries), KB
// (keys), BQB (backward query rows), DCH (decode: vectors of d per chunk).
template <class S>
struct Blocked : S {
  static constexpr bool kScalar = S::W == 1;
  static constexpr bool kWide = S::W * sizeof(typename S::Elem) == 64;  // 512-bit registers
  static constexpr int R = kScalar ? 4 : 6;
  static constexpr int NV = kScalar ? 4 : kWide ? 4 : 2;
  static constexpr int QB = !kScalar && sizeof(typename S::Elem) == 4 ? 64 : 32;
  static constexpr int KB = 64;
  static constexpr int BQB = kScalar ? 32 : 64;
  static constexpr int DCH = kWide ? 8 : 4;
};

}  // namespace
}  // namespace baobab::attention

// ---------------------------------------------------------------- the tiers

#define BAOBAB_SIMD_BODY "attention/kernels.inc"
#define BAOBAB_SIMD_NAMESPACE baobab::attention
#include "baobab/simd_tiers.hpp"

// ---------------------------------------------------------------- dispatch

namespace baobab::attention {
namespace {

simd::Tier tier() {
  static const simd::Tier t = simd::select("BAOBAB_ATTENTION_ISA");
  return t;
}

// a * b * c for non-negative a, b, c, which must fit in memory as doubles.
void check_size(int64_t a, int64_t b, int64_t c, const char* what) {
  const uint64_t lim = std::min<uint64_t>(uint64_t(INT64_MAX), SIZE_MAX) / sizeof(double);
  uint64_t x = uint64_t(a);
  for (int64_t f : {b, c}) {
    if (f != 0 && x > lim / uint64_t(f)) throw InvalidArgument(std::string("attention: ") + what + " is too large");
    x *= uint64_t(f);
  }
}

Problem validate(const Shape& s, int64_t causal_offset, const char* fn) {
  const std::string f = std::string("attention ") + fn + ": ";
  if (s.d <= 0) throw InvalidArgument(f + "d must be positive (got " + std::to_string(s.d) + ")");
  if (s.bh < 0 || s.q_len < 0 || s.kv_len < 0)
    throw InvalidArgument(f + "bh, q_len and kv_len must not be negative (got bh=" + std::to_string(s.bh) +
                          ", q_len=" + std::to_string(s.q_len) + ", kv_len=" + std::to_string(s.kv_len) + ")");
  check_size(s.bh, s.q_len, s.d, "bh x q_len x d");
  check_size(s.bh, s.kv_len, s.d, "bh x kv_len x d");
  Problem p{s.bh, s.q_len, s.kv_len, s.d, causal_offset != kNoMask, 0};
  if (p.causal) p.off = std::clamp<int64_t>(causal_offset, -s.q_len, s.kv_len);
  return p;
}

void require(bool ok, const char* fn, const char* what) {
  if (!ok) throw InvalidArgument(std::string("attention ") + fn + ": " + what + " is null");
}

template <class E>
void forward_dispatch(const Shape& s, const E* q, const E* k, const E* v, E scale, int64_t causal_offset, E* out,
                      E* lse, int threads) {
  Problem p = validate(s, causal_offset, "partial_forward");
  const int64_t rows = p.bh * p.L;
  if (rows == 0) return;
  require(q && out && lse, "partial_forward", "q, out or lse");
  // No key is visible to any query: out = 0, lse = -inf.
  if (p.N == 0 || (p.causal && p.off + p.L <= 0)) {
    std::fill(out, out + rows * p.d, E(0));
    std::fill(lse, lse + rows, -std::numeric_limits<E>::infinity());
    return;
  }
  require(k && v, "partial_forward", "k or v");
  const int t = resolve_threads(threads);
  BAOBAB_SIMD_DISPATCH(tier(), forward(p, q, k, v, scale, out, lse, t));
}

template <class E>
void backward_dispatch(const Shape& s, const E* q, const E* k, const E* v, const E* dout, const E* lse,
                       const E* delta, E scale, int64_t causal_offset, E* dq, E* dk, E* dv, int threads) {
  Problem p = validate(s, causal_offset, "partial_backward");
  if (p.bh == 0 || p.L == 0 || p.N == 0 || (p.causal && p.off + p.L <= 0)) return;  // nothing contributes
  require(q && k && v && dout && lse && delta && dq && dk && dv, "partial_backward", "an array");
  const int t = resolve_threads(threads);
  BAOBAB_SIMD_DISPATCH(tier(), backward(p, q, k, v, dout, lse, delta, scale, dq, dk, dv, t));
}

}  // namespace

void partial_forward(const Shape& s, const float* q, const float* k, const float* v, float scale,
                     int64_t causal_offset, float* out, float* lse, int threads) {
  forward_dispatch(s, q, k, v, scale, causal_offset, out, lse, threads);
}
void partial_forward(const Shape& s, const double* q, const double* k, const double* v, double scale,
                     int64_t causal_offset, double* out, double* lse, int threads) {
  forward_dispatch(s, q, k, v, scale, causal_offset, out, lse, threads);
}

void partial_backward(const Shape& s, const float* q, const float* k, const float* v, const float* dout,
                      const float* lse, const float* delta, float scale, int64_t causal_offset, float* dq,
                      float* dk, float* dv, int threads) {
  backward_dispatch(s, q, k, v, dout, lse, delta, scale, causal_offset, dq, dk, dv, threads);
}
void partial_backward(const Shape& s, const double* q, const double* k, const double* v, const double* dout,
                      const double* lse, const double* delta, double scale, int64_t causal_offset, double* dq,
                      double* dk, double* dv, int threads) {
  backward_dispatch(s, q, k, v, dout, lse, delta, scale, causal_offset, dq, dk, dv, threads);
}

}  // namespace baobab::attention

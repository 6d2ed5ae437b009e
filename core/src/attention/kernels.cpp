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
// Instruction sets. The kernel code (the "body", the #else part at the end of
// this file) is written once against a small vector-traits interface and
// compiled up to three times by including this file into itself: without a
// target (the baseline, scalar code, valid for any CPU and any architecture),
// and on x86-64 with GCC under #pragma GCC target("avx2,fma") and
// target("avx512f,..."). The tier is picked once per process with
// __builtin_cpu_supports; BAOBAB_ATTENTION_ISA=baseline|avx2|avx512 caps it (the
// tests use it to run every tier). (A pragma region is needed rather than
// target attributes because the generic templates must be compiled for the
// target of the tier that instantiates them.)
//
// exp: a Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, then a Taylor
// polynomial (degree 7 for float, truncation error 5e-9; degree 12 for double,
// 2e-16), scaled by 2^n: under 1 ulp for float, 4e-16 relative for double.
// -inf and anything below ln(FLT_MIN) resp. ln(DBL_MIN) give exactly 0 (no
// subnormal weights), never NaN. The baseline tier calls std::exp.
#ifndef BAOBAB_ATTENTION_KERNEL_BODY

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <numeric>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "baobab/attention.hpp"
#include "baobab/error.hpp"
#include "baobab/isa.hpp"

#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0
#error "baobab attention kernels need FLT_EVAL_METHOD == 0 (e.g. SSE2 floating point on x86)"
#endif

#if defined(__FAST_MATH__) || (defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__)
#error "baobab attention kernels must not be built with -ffast-math / -ffinite-math-only (they rely on inf)"
#endif

// The tiers need #pragma GCC target, which clang does not implement; clang builds
// get the baseline code only.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BAOBAB_ATTN_X86 1
// GCC 12 warns "__Y may be used uninitialized" inside the AVX-512 intrinsics that
// start from _mm512_undefined_*() (a false positive, GCC PR 105593); the
// warning is attributed to the header's lines, so it is silenced there only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BAOBAB_AI inline __attribute__((always_inline))
#else
#define BAOBAB_AI inline
#endif

namespace baobab::attention {
namespace {

constexpr int64_t kDecodeMaxQ = 8;  // q_len up to this takes the decode path

// ---------------------------------------------------------------- helpers

// 64-byte aligned, uninitialised array.
template <class E>
class Buf {
 public:
  Buf() = default;
  explicit Buf(size_t n) { reset(n); }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  Buf(Buf&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ~Buf() { release(); }
  void reset(size_t n) {
    release();
    size_t bytes = (std::max<size_t>(n, 1) * sizeof(E) + 63) & ~size_t(63);
    p_ = static_cast<E*>(::operator new[](bytes, std::align_val_t(64)));
  }
  E* get() const { return p_; }

 private:
  void release() {
    if (p_) ::operator delete[](p_, std::align_val_t(64));
    p_ = nullptr;
  }
  E* p_ = nullptr;
};

int usable_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

int resolve_threads(int threads) { return threads > 0 ? threads : usable_cpus(); }

// Runs fn(thread index, item) for item in [0, items) on `threads` threads (the
// calling one included), items handed out dynamically in increasing order.
void run_parallel(int threads, int64_t items, const std::function<void(int, int64_t)>& fn) {
  if (items <= 0) return;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
  std::atomic<int64_t> next{0};
  auto worker = [&](int tid) {
    for (;;) {
      int64_t it = next.fetch_add(1, std::memory_order_relaxed);
      if (it >= items) break;
      fn(tid, it);
    }
  };
  if (threads == 1) {
    worker(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads - 1));
  for (int t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(worker, t);
    } catch (const std::system_error&) {
      break;  // could not start another thread: the ones running share the items
    }
  }
  worker(0);
  for (auto& th : pool) th.join();
}

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

// ---------------------------------------------------------------- vector traits
// Each traits class: Elem, V (the register type), W (lanes), the tile shape R x
// NV (rows x vectors), block sizes QB (forward queries), KB (keys), BQB
// (backward query rows), DCH (decode: vectors of d per chunk), and the
// operations used by the body.

template <class T>
struct ScalarVec {
  using Elem = T;
  using V = T;
  static constexpr int W = 1, R = 4, NV = 4, QB = 32, KB = 64, BQB = 32, DCH = 4;
  static BAOBAB_AI V zero() { return T(0); }
  static BAOBAB_AI V set1(T x) { return x; }
  static BAOBAB_AI V load(const T* p) { return *p; }
  static BAOBAB_AI void store(T* p, V v) { *p = v; }
  static BAOBAB_AI V fma(V a, V b, V c) { return a * b + c; }
  static BAOBAB_AI V add(V a, V b) { return a + b; }
  static BAOBAB_AI V sub(V a, V b) { return a - b; }
  static BAOBAB_AI V mul(V a, V b) { return a * b; }
  static BAOBAB_AI V max(V a, V b) { return a < b ? b : a; }
  static BAOBAB_AI V exp(V x) { return std::exp(x); }
  static BAOBAB_AI V neginf_to_zero(V x) { return x == -std::numeric_limits<T>::infinity() ? T(0) : x; }
  // Lanes [0, t) resp. [t, W) replaced by f.
  static BAOBAB_AI V fill_below(V x, int64_t t, T f) { return t > 0 ? f : x; }
  static BAOBAB_AI V fill_from(V x, int64_t t, T f) { return t <= 0 ? f : x; }
  static BAOBAB_AI V load_n(const T* p, int64_t n) { return n > 0 ? *p : T(0); }
  static BAOBAB_AI T hsum(V v) { return v; }
};

}  // namespace
}  // namespace baobab::attention

#ifdef BAOBAB_ATTN_X86

// (#pragma GCC target does not expand macros: the two target strings are spelled
// out twice, keep them identical.)
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace baobab::attention {
namespace {

struct Avx2F {
  using Elem = float;
  using V = __m256;
  static constexpr int W = 8, R = 6, NV = 2, QB = 64, KB = 64, BQB = 64, DCH = 4;
  static BAOBAB_AI V zero() { return _mm256_setzero_ps(); }
  static BAOBAB_AI V set1(float x) { return _mm256_set1_ps(x); }
  static BAOBAB_AI V load(const float* p) { return _mm256_loadu_ps(p); }
  static BAOBAB_AI void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static BAOBAB_AI V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static BAOBAB_AI V add(V a, V b) { return _mm256_add_ps(a, b); }
  static BAOBAB_AI V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static BAOBAB_AI V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static BAOBAB_AI V max(V a, V b) { return _mm256_max_ps(a, b); }
  static BAOBAB_AI V lanes_lt(int64_t t) {  // all-ones in lanes [0, t)
    const float tt = float(std::clamp<int64_t>(t, 0, W));
    return _mm256_cmp_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_ps(tt), _CMP_LT_OQ);
  }
  static BAOBAB_AI V fill_below(V x, int64_t t, float f) { return _mm256_blendv_ps(x, set1(f), lanes_lt(t)); }
  static BAOBAB_AI V fill_from(V x, int64_t t, float f) { return _mm256_blendv_ps(set1(f), x, lanes_lt(t)); }
  static BAOBAB_AI V load_n(const float* p, int64_t n) {
    return _mm256_maskload_ps(p, _mm256_castps_si256(lanes_lt(n)));
  }
  static BAOBAB_AI float hsum(V v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 s = _mm_movehdup_ps(x);
    x = _mm_add_ps(x, s);
    s = _mm_movehl_ps(s, x);
    return _mm_cvtss_f32(_mm_add_ss(x, s));
  }
  static BAOBAB_AI V neginf_to_zero(V x) {
    return _mm256_blendv_ps(x, zero(), _mm256_cmp_ps(x, set1(-INFINITY), _CMP_EQ_OQ));
  }
  // Exact for x <= 88.37; 0 below ln(FLT_MIN) (no subnormal results); +inf above
  // ln(FLT_MAX); NaN stays NaN.
  static BAOBAB_AI V exp(V x) {
    V xc = _mm256_min_ps(set1(88.37f), _mm256_max_ps(set1(-87.33654f), x));  // NaN: keeps x
    V n = _mm256_round_ps(_mm256_mul_ps(xc, set1(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm256_fnmadd_ps(n, set1(0x1.62e43p-1f), xc);
    r = _mm256_fnmadd_ps(n, set1(-0x1.05c61p-29f), r);
    V p = set1(1.f / 5040);
    p = fma(p, r, set1(1.f / 720));
    p = fma(p, r, set1(1.f / 120));
    p = fma(p, r, set1(1.f / 24));
    p = fma(p, r, set1(1.f / 6));
    p = fma(p, r, set1(0.5f));
    p = fma(p, r, set1(1.f));
    p = fma(p, r, set1(1.f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    V y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    y = _mm256_blendv_ps(y, zero(), _mm256_cmp_ps(x, set1(-87.33654f), _CMP_LT_OQ));
    return _mm256_blendv_ps(y, set1(INFINITY), _mm256_cmp_ps(x, set1(88.72284f), _CMP_GT_OQ));
  }
};

struct Avx2D {
  using Elem = double;
  using V = __m256d;
  static constexpr int W = 4, R = 6, NV = 2, QB = 32, KB = 64, BQB = 64, DCH = 4;
  static BAOBAB_AI V zero() { return _mm256_setzero_pd(); }
  static BAOBAB_AI V set1(double x) { return _mm256_set1_pd(x); }
  static BAOBAB_AI V load(const double* p) { return _mm256_loadu_pd(p); }
  static BAOBAB_AI void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static BAOBAB_AI V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static BAOBAB_AI V add(V a, V b) { return _mm256_add_pd(a, b); }
  static BAOBAB_AI V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static BAOBAB_AI V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static BAOBAB_AI V max(V a, V b) { return _mm256_max_pd(a, b); }
  static BAOBAB_AI V lanes_lt(int64_t t) {
    const double tt = double(std::clamp<int64_t>(t, 0, W));
    return _mm256_cmp_pd(_mm256_setr_pd(0, 1, 2, 3), _mm256_set1_pd(tt), _CMP_LT_OQ);
  }
  static BAOBAB_AI V fill_below(V x, int64_t t, double f) { return _mm256_blendv_pd(x, set1(f), lanes_lt(t)); }
  static BAOBAB_AI V fill_from(V x, int64_t t, double f) { return _mm256_blendv_pd(set1(f), x, lanes_lt(t)); }
  static BAOBAB_AI V load_n(const double* p, int64_t n) {
    return _mm256_maskload_pd(p, _mm256_castpd_si256(lanes_lt(n)));
  }
  static BAOBAB_AI double hsum(V v) {
    __m128d x = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
  }
  static BAOBAB_AI V neginf_to_zero(V x) {
    return _mm256_blendv_pd(x, zero(), _mm256_cmp_pd(x, set1(-INFINITY), _CMP_EQ_OQ));
  }
  // Exact for x <= 709.43; 0 below ln(DBL_MIN); +inf above ln(DBL_MAX).
  static BAOBAB_AI V exp(V x) {
    V xc = _mm256_min_pd(set1(709.43), _mm256_max_pd(set1(-708.3964185322641), x));
    V n = _mm256_round_pd(_mm256_mul_pd(xc, set1(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm256_fnmadd_pd(n, set1(0x1.62e42fee00000p-1), xc);
    r = _mm256_fnmadd_pd(n, set1(0x1.a39ef35793c76p-33), r);
    V p = set1(1.0 / 479001600);
    p = fma(p, r, set1(1.0 / 39916800));
    p = fma(p, r, set1(1.0 / 3628800));
    p = fma(p, r, set1(1.0 / 362880));
    p = fma(p, r, set1(1.0 / 40320));
    p = fma(p, r, set1(1.0 / 5040));
    p = fma(p, r, set1(1.0 / 720));
    p = fma(p, r, set1(1.0 / 120));
    p = fma(p, r, set1(1.0 / 24));
    p = fma(p, r, set1(1.0 / 6));
    p = fma(p, r, set1(0.5));
    p = fma(p, r, set1(1.0));
    p = fma(p, r, set1(1.0));
    // 2^n: n + 1023 lands in the low mantissa bits of 2^52 + (n + 1023); shift
    // them into the exponent field.
    __m256i bits = _mm256_castpd_si256(_mm256_add_pd(n, set1(4503599627370496.0 + 1023.0)));
    V y = _mm256_mul_pd(p, _mm256_castsi256_pd(_mm256_slli_epi64(bits, 52)));
    y = _mm256_blendv_pd(y, zero(), _mm256_cmp_pd(x, set1(-708.3964185322641), _CMP_LT_OQ));
    return _mm256_blendv_pd(y, set1(INFINITY), _mm256_cmp_pd(x, set1(709.782712893384), _CMP_GT_OQ));
  }
};

}  // namespace
}  // namespace baobab::attention
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
namespace baobab::attention {
namespace {

BAOBAB_AI __mmask16 mask16_lt(int64_t t) {
  return t <= 0 ? __mmask16(0) : t >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << t) - 1);
}
BAOBAB_AI __mmask8 mask8_lt(int64_t t) {
  return t <= 0 ? __mmask8(0) : t >= 8 ? __mmask8(0xFF) : __mmask8((1u << t) - 1);
}

struct Avx512F {
  using Elem = float;
  using V = __m512;
  static constexpr int W = 16, R = 6, NV = 4, QB = 64, KB = 64, BQB = 64, DCH = 8;
  static BAOBAB_AI V zero() { return _mm512_setzero_ps(); }
  static BAOBAB_AI V set1(float x) { return _mm512_set1_ps(x); }
  static BAOBAB_AI V load(const float* p) { return _mm512_loadu_ps(p); }
  static BAOBAB_AI void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static BAOBAB_AI V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static BAOBAB_AI V add(V a, V b) { return _mm512_add_ps(a, b); }
  static BAOBAB_AI V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static BAOBAB_AI V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static BAOBAB_AI V max(V a, V b) { return _mm512_max_ps(a, b); }
  static BAOBAB_AI V fill_below(V x, int64_t t, float f) { return _mm512_mask_mov_ps(x, mask16_lt(t), set1(f)); }
  static BAOBAB_AI V fill_from(V x, int64_t t, float f) { return _mm512_mask_mov_ps(set1(f), mask16_lt(t), x); }
  static BAOBAB_AI V load_n(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(mask16_lt(n), p); }
  static BAOBAB_AI float hsum(V v) { return _mm512_reduce_add_ps(v); }
  static BAOBAB_AI V neginf_to_zero(V x) {
    return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, set1(-INFINITY), _CMP_EQ_OQ), zero());
  }
  // vscalefps applies 2^n with correct overflow to inf. Results below FLT_MIN
  // are flushed to 0 (as in the AVX2 tier: no subnormal weights, which some CPUs
  // multiply slowly); NaN stays NaN.
  static BAOBAB_AI V exp(V x) {
    V xc = _mm512_min_ps(set1(200.f), _mm512_max_ps(set1(-200.f), x));  // NaN: keeps x
    V n = _mm512_roundscale_ps(_mm512_mul_ps(xc, set1(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, set1(0x1.62e43p-1f), xc);
    r = _mm512_fnmadd_ps(n, set1(-0x1.05c61p-29f), r);
    V p = set1(1.f / 5040);
    p = fma(p, r, set1(1.f / 720));
    p = fma(p, r, set1(1.f / 120));
    p = fma(p, r, set1(1.f / 24));
    p = fma(p, r, set1(1.f / 6));
    p = fma(p, r, set1(0.5f));
    p = fma(p, r, set1(1.f));
    p = fma(p, r, set1(1.f));
    return _mm512_maskz_scalef_ps(_mm512_cmp_ps_mask(x, set1(-87.33654f), _CMP_NLT_UQ), p, n);
  }
};

struct Avx512D {
  using Elem = double;
  using V = __m512d;
  static constexpr int W = 8, R = 6, NV = 4, QB = 32, KB = 64, BQB = 64, DCH = 8;
  static BAOBAB_AI V zero() { return _mm512_setzero_pd(); }
  static BAOBAB_AI V set1(double x) { return _mm512_set1_pd(x); }
  static BAOBAB_AI V load(const double* p) { return _mm512_loadu_pd(p); }
  static BAOBAB_AI void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static BAOBAB_AI V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static BAOBAB_AI V add(V a, V b) { return _mm512_add_pd(a, b); }
  static BAOBAB_AI V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static BAOBAB_AI V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static BAOBAB_AI V max(V a, V b) { return _mm512_max_pd(a, b); }
  static BAOBAB_AI V fill_below(V x, int64_t t, double f) { return _mm512_mask_mov_pd(x, mask8_lt(t), set1(f)); }
  static BAOBAB_AI V fill_from(V x, int64_t t, double f) { return _mm512_mask_mov_pd(set1(f), mask8_lt(t), x); }
  static BAOBAB_AI V load_n(const double* p, int64_t n) { return _mm512_maskz_loadu_pd(mask8_lt(n), p); }
  static BAOBAB_AI double hsum(V v) { return _mm512_reduce_add_pd(v); }
  static BAOBAB_AI V neginf_to_zero(V x) {
    return _mm512_mask_mov_pd(x, _mm512_cmp_pd_mask(x, set1(-INFINITY), _CMP_EQ_OQ), zero());
  }
  static BAOBAB_AI V exp(V x) {
    V xc = _mm512_min_pd(set1(1500.0), _mm512_max_pd(set1(-1500.0), x));
    V n = _mm512_roundscale_pd(_mm512_mul_pd(xc, set1(1.4426950408889634)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_pd(n, set1(0x1.62e42fee00000p-1), xc);
    r = _mm512_fnmadd_pd(n, set1(0x1.a39ef35793c76p-33), r);
    V p = set1(1.0 / 479001600);
    p = fma(p, r, set1(1.0 / 39916800));
    p = fma(p, r, set1(1.0 / 3628800));
    p = fma(p, r, set1(1.0 / 362880));
    p = fma(p, r, set1(1.0 / 40320));
    p = fma(p, r, set1(1.0 / 5040));
    p = fma(p, r, set1(1.0 / 720));
    p = fma(p, r, set1(1.0 / 120));
    p = fma(p, r, set1(1.0 / 24));
    p = fma(p, r, set1(1.0 / 6));
    p = fma(p, r, set1(0.5));
    p = fma(p, r, set1(1.0));
    p = fma(p, r, set1(1.0));
    return _mm512_maskz_scalef_pd(_mm512_cmp_pd_mask(x, set1(-708.3964185322641), _CMP_NLT_UQ), p, n);
  }
};

}  // namespace
}  // namespace baobab::attention
#pragma GCC pop_options

#endif  // BAOBAB_ATTN_X86

// ---------------------------------------------------------------- the tiers

#define BAOBAB_ATTENTION_KERNEL_BODY 1

namespace baobab::attention::tier_base {
namespace {
using VF = ScalarVec<float>;
using VD = ScalarVec<double>;
}  // namespace
#include "kernels.cpp"  // the body, below
}  // namespace baobab::attention::tier_base

#ifdef BAOBAB_ATTN_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace baobab::attention::tier_avx2 {
namespace {
using VF = Avx2F;
using VD = Avx2D;
}  // namespace
#include "kernels.cpp"
}  // namespace baobab::attention::tier_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
namespace baobab::attention::tier_avx512 {
namespace {
using VF = Avx512F;
using VD = Avx512D;
}  // namespace
#include "kernels.cpp"
}  // namespace baobab::attention::tier_avx512
#pragma GCC pop_options
#endif

#undef BAOBAB_ATTENTION_KERNEL_BODY

// ---------------------------------------------------------------- dispatch

namespace baobab::attention {
namespace {

using isa::Tier;

Tier tier() {
#ifdef BAOBAB_ATTN_X86
  static const Tier t = isa::capped(isa::cpu(isa::Avx2With::fma), "BAOBAB_ATTENTION_ISA");
  return t;
#else
  return Tier::baseline;
#endif
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
  switch (tier()) {
#ifdef BAOBAB_ATTN_X86
    case Tier::avx512: return tier_avx512::forward(p, q, k, v, scale, out, lse, t);
    case Tier::avx2: return tier_avx2::forward(p, q, k, v, scale, out, lse, t);
#endif
    default: return tier_base::forward(p, q, k, v, scale, out, lse, t);
  }
}

template <class E>
void backward_dispatch(const Shape& s, const E* q, const E* k, const E* v, const E* dout, const E* lse,
                       const E* delta, E scale, int64_t causal_offset, E* dq, E* dk, E* dv, int threads) {
  Problem p = validate(s, causal_offset, "partial_backward");
  if (p.bh == 0 || p.L == 0 || p.N == 0 || (p.causal && p.off + p.L <= 0)) return;  // nothing contributes
  require(q && k && v && dout && lse && delta && dq && dk && dv, "partial_backward", "an array");
  const int t = resolve_threads(threads);
  switch (tier()) {
#ifdef BAOBAB_ATTN_X86
    case Tier::avx512: return tier_avx512::backward(p, q, k, v, dout, lse, delta, scale, dq, dk, dv, t);
    case Tier::avx2: return tier_avx2::backward(p, q, k, v, dout, lse, delta, scale, dq, dk, dv, t);
#endif
    default: return tier_base::backward(p, q, k, v, dout, lse, delta, scale, dq, dk, dv, t);
  }
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

#else  // BAOBAB_ATTENTION_KERNEL_BODY
// =====================================================================================
// The body: compiled once per tier, inside namespace tier_xxx, where VF and VD
// name the float and double vector traits of the tier.
// =====================================================================================

namespace {

// ---------------------------------------------------------------- GEMM tile
// C[r][v] (+)= sum_t A(r, t) * B[t][v], r < R rows, v < NV vectors of W lanes;
// A(r, t) = A[r * ars + t * ats] (broadcast), B row t at B + t * ldb, C row r at
// C + r * ldc. Mode: 0 overwrite, 1 accumulate, 2 scale C by cs[v] (a vector per
// column) first.
template <class V, int Mode, int R, int NV>
void tile(int64_t K, const typename V::Elem* A, int64_t ars, int64_t ats, const typename V::Elem* B, int64_t ldb,
          typename V::Elem* C, int64_t ldc, const typename V::Elem* cs) {
  using VV = typename V::V;
  constexpr int W = V::W;
  VV acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      if constexpr (Mode == 0) {
        acc[r][v] = V::zero();
      } else if constexpr (Mode == 1) {
        acc[r][v] = V::load(C + r * ldc + v * W);
      } else {
        acc[r][v] = V::mul(V::load(C + r * ldc + v * W), V::load(cs + v * W));
      }
    }
  }
  const typename V::Elem* a = A;
  const typename V::Elem* b = B;
  for (int64_t t = 0; t < K; ++t, a += ats, b += ldb) {
    VV bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) bv[v] = V::load(b + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const VV av = V::set1(a[r * ars]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = V::fma(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) V::store(C + r * ldc + v * W, acc[r][v]);
  }
}

template <class V, int Mode>
struct Tiles {
  using E = typename V::Elem;
  using Fn = void (*)(int64_t, const E*, int64_t, int64_t, const E*, int64_t, E*, int64_t, const E*);
  template <size_t... I>
  static constexpr std::array<Fn, sizeof...(I)> make(std::index_sequence<I...>) {
    return {{&tile<V, Mode, int(I / V::NV) + 1, int(I % V::NV) + 1>...}};
  }
  static constexpr std::array<Fn, size_t(V::R* V::NV)> table = make(std::make_index_sequence<V::R * V::NV>());
};

// C (M rows x nvec vectors) (+)= A (M x K, strides ars, ats) B (K x nvec vectors).
template <class V, int Mode>
void gemm(int64_t M, int64_t nvec, int64_t K, const typename V::Elem* A, int64_t ars, int64_t ats,
          const typename V::Elem* B, int64_t ldb, typename V::Elem* C, int64_t ldc,
          const typename V::Elem* cs = nullptr) {
  constexpr int W = V::W, R = V::R, NV = V::NV;
  const auto& tab = Tiles<V, Mode>::table;
  for (int64_t v0 = 0; v0 < nvec; v0 += NV) {
    const int nv = int(std::min<int64_t>(NV, nvec - v0));
    const auto* Bv = B + v0 * W;
    auto* Cv = C + v0 * W;
    const auto* csv = cs ? cs + v0 * W : nullptr;
    int64_t r0 = 0;
    if (nv == NV) {
      for (; r0 + R <= M; r0 += R) tile<V, Mode, R, NV>(K, A + r0 * ars, ars, ats, Bv, ldb, Cv + r0 * ldc, ldc, csv);
    }
    for (; r0 < M; r0 += R) {
      const int rr = int(std::min<int64_t>(R, M - r0));
      tab[size_t((rr - 1) * NV + (nv - 1))](K, A + r0 * ars, ars, ats, Bv, ldb, Cv + r0 * ldc, ldc, csv);
    }
  }
}

// ---------------------------------------------------------------- forward

template <class V>
struct Forward {
  using E = typename V::Elem;
  using VV = typename V::V;
  static constexpr int W = V::W, QB = V::QB, KB = V::KB;
  static constexpr E kNegInf = -std::numeric_limits<E>::infinity();

  struct Args {
    const Problem& p;
    const E *q, *k, *v;
    E scale;
  };

  struct Scratch {
    Buf<E> qt, st, ot, m, l, alpha;
    // decode
    Buf<E> qs, o, sc, pb;
    Scratch(int64_t d, bool decode) {
      if (decode) {
        const int64_t dp = (d + W - 1) / W * W;
        qs.reset(size_t(kDecodeMaxQ * dp));
        o.reset(size_t(kDecodeMaxQ * dp));
        sc.reset(size_t(KB + W));
        pb.reset(size_t(KB + W));
        std::fill(sc.get(), sc.get() + KB + W, E(0));  // the last vector may read past the scores
      } else {
        qt.reset(size_t(d * QB));
        st.reset(size_t(KB * QB));
        ot.reset(size_t(d * QB));
        m.reset(QB);
        l.reset(QB);
        alpha.reset(QB);
      }
    }
  };

  // Queries [i0, i0 + nq) of head b against keys [ja, jb): normalised out rows
  // (row stride d) and lse.
  static void block(const Args& a, int64_t b, int64_t i0, int64_t nq, int64_t ja, int64_t jb, E* out, E* lse,
                    Scratch& s) {
    const Problem& p = a.p;
    const int64_t d = p.d, nqv = (nq + W - 1) / W, ld = nqv * W;
    E *Qt = s.qt.get(), *St = s.st.get(), *Ot = s.ot.get(), *m = s.m.get(), *l = s.l.get(), *al = s.alpha.get();
    const E* qb = a.q + (b * p.L + i0) * d;
    for (int64_t i = 0; i < ld; ++i) {
      if (i < nq) {
        for (int64_t c = 0; c < d; ++c) Qt[c * ld + i] = a.scale * qb[i * d + c];
      } else {
        for (int64_t c = 0; c < d; ++c) Qt[c * ld + i] = E(0);
      }
    }
    std::fill(Ot, Ot + d * ld, E(0));
    std::fill(m, m + ld, kNegInf);
    std::fill(l, l + ld, E(0));
    // Keys past the diagonal of the last query are never visited.
    const int64_t jend = p.causal ? std::min(jb, i0 + nq + p.off) : jb;
    const E* kb = a.k + b * p.N * d;
    const E* vb = a.v + b * p.N * d;
    for (int64_t j0 = ja; j0 < jend; j0 += KB) {
      const int64_t nk = std::min<int64_t>(KB, jend - j0);
      gemm<V, 0>(nk, nqv, d, kb + j0 * d, d, 1, Qt, ld, St, ld);
      // Key j0 + j is hidden from lanes i < j0 + j - off - i0.
      if (p.causal && j0 + nk - 1 > i0 + p.off) {
        for (int64_t j = std::max<int64_t>(0, i0 + p.off + 1 - j0); j < nk; ++j) {
          const int64_t thr = j0 + j - p.off - i0;
          for (int64_t v = 0; v < nqv; ++v) {
            E* x = St + j * ld + v * W;
            V::store(x, V::fill_below(V::load(x), thr - v * W, kNegInf));
          }
        }
      }
      for (int64_t v = 0; v < nqv; ++v) {
        E* col = St + v * W;
        VV mx = V::load(col);
        for (int64_t j = 1; j < nk; ++j) mx = V::max(mx, V::load(col + j * ld));
        const VV mold = V::load(m + v * W);
        const VV mnew = V::max(mold, mx);
        const VV ms = V::neginf_to_zero(mnew);  // a lane that has seen nothing yet
        V::store(m + v * W, mnew);
        const VV alpha = V::exp(V::sub(mold, ms));
        V::store(al + v * W, alpha);
        VV sum0 = V::zero(), sum1 = V::zero();
        int64_t j = 0;
        for (; j + 2 <= nk; j += 2) {
          const VV p0 = V::exp(V::sub(V::load(col + j * ld), ms));
          const VV p1 = V::exp(V::sub(V::load(col + (j + 1) * ld), ms));
          V::store(col + j * ld, p0);
          V::store(col + (j + 1) * ld, p1);
          sum0 = V::add(sum0, p0);
          sum1 = V::add(sum1, p1);
        }
        if (j < nk) {
          const VV p0 = V::exp(V::sub(V::load(col + j * ld), ms));
          V::store(col + j * ld, p0);
          sum0 = V::add(sum0, p0);
        }
        V::store(l + v * W, V::fma(V::load(l + v * W), alpha, V::add(sum0, sum1)));
      }
      gemm<V, 2>(d, nqv, nk, vb + j0 * d, 1, d, St, ld, Ot, ld, al);
    }
    for (int64_t i = 0; i < nq; ++i) {
      const E li = l[i];
      E* o = out + i * d;
      if (li == E(0)) {
        for (int64_t c = 0; c < d; ++c) o[c] = E(0);
        lse[i] = kNegInf;
        continue;
      }
      for (int64_t c = 0; c < d; ++c) o[c] = Ot[c * ld + i] / li;
      lse[i] = E(double(m[i]) + std::log(double(li)));
    }
  }

  // Decode: all p.L (<= kDecodeMaxQ) queries of head b against keys [ja, jb),
  // vectors along d.
  template <int NC, bool Tail>
  static void pv_chunk(int64_t nk, const E* pj, const E* vrow, int64_t d, E* o, E alpha, int64_t tail_n) {
    VV a0[NC], a1[NC];
    const VV al = V::set1(alpha);
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) {
      a0[c] = V::mul(V::load(o + c * W), al);
      a1[c] = V::zero();
    }
    auto row = [&](const E* r, int c) { return (Tail && c == NC - 1) ? V::load_n(r + c * W, tail_n) : V::load(r + c * W); };
    int64_t j = 0;
    for (; j + 2 <= nk; j += 2) {
      const VV p0 = V::set1(pj[j]), p1 = V::set1(pj[j + 1]);
      const E* r0 = vrow + j * d;
      const E* r1 = r0 + d;
#pragma GCC unroll 16
      for (int c = 0; c < NC; ++c) {
        a0[c] = V::fma(p0, row(r0, c), a0[c]);
        a1[c] = V::fma(p1, row(r1, c), a1[c]);
      }
    }
    if (j < nk) {
      const VV p0 = V::set1(pj[j]);
#pragma GCC unroll 16
      for (int c = 0; c < NC; ++c) a0[c] = V::fma(p0, row(vrow + j * d, c), a0[c]);
    }
#pragma GCC unroll 16
    for (int c = 0; c < NC; ++c) V::store(o + c * W, V::add(a0[c], a1[c]));
  }

  template <int NC>
  static void pv_dispatch(int nc, bool tail, int64_t nk, const E* pj, const E* vrow, int64_t d, E* o, E alpha,
                          int64_t tail_n) {
    if constexpr (NC >= 1) {
      if (nc == NC) {
        if (tail) pv_chunk<NC, true>(nk, pj, vrow, d, o, alpha, tail_n);
        else pv_chunk<NC, false>(nk, pj, vrow, d, o, alpha, tail_n);
        return;
      }
      pv_dispatch<NC - 1>(nc, tail, nk, pj, vrow, d, o, alpha, tail_n);
    }
  }

  static void decode(const Args& a, int64_t b, int64_t ja, int64_t jb, E* out, E* lse, Scratch& s) {
    const Problem& p = a.p;
    const int64_t L = p.L, d = p.d, dv = (d + W - 1) / W, dp = dv * W;
    const int64_t nfull = d / W, tail_n = d - nfull * W;
    E *qs = s.qs.get(), *O = s.o.get(), *sc = s.sc.get(), *pb = s.pb.get();
    E m[kDecodeMaxQ], l[kDecodeMaxQ];
    for (int64_t i = 0; i < L; ++i) {
      const E* qi = a.q + (b * L + i) * d;
      for (int64_t c = 0; c < dp; ++c) qs[i * dp + c] = c < d ? a.scale * qi[c] : E(0);
      std::fill(O + i * dp, O + (i + 1) * dp, E(0));
      m[i] = kNegInf;
      l[i] = E(0);
    }
    const int64_t jend = p.causal ? std::min(jb, L + p.off) : jb;
    const E* kb = a.k + b * p.N * d;
    const E* vb = a.v + b * p.N * d;
    for (int64_t j0 = ja; j0 < jend; j0 += KB) {
      const int64_t nkb = std::min<int64_t>(KB, jend - j0);
      const E* K0 = kb + j0 * d;
      const E* V0 = vb + j0 * d;
      for (int64_t i = 0; i < L; ++i) {
        const int64_t nk = p.causal ? std::clamp<int64_t>(i + p.off + 1 - j0, 0, nkb) : nkb;
        if (nk <= 0) continue;
        const E* qi = qs + i * dp;
        E mx = kNegInf;
        for (int64_t j = 0; j < nk; ++j) {
          const E* kr = K0 + j * d;
          VV s0 = V::zero(), s1 = V::zero();
          int64_t c = 0;
          for (; c + 2 <= nfull; c += 2) {
            s0 = V::fma(V::load(qi + c * W), V::load(kr + c * W), s0);
            s1 = V::fma(V::load(qi + (c + 1) * W), V::load(kr + (c + 1) * W), s1);
          }
          if (c < nfull) s0 = V::fma(V::load(qi + c * W), V::load(kr + c * W), s0);
          if (tail_n) s1 = V::fma(V::load(qi + nfull * W), V::load_n(kr + nfull * W, tail_n), s1);
          const E sj = V::hsum(V::add(s0, s1));
          sc[j] = sj;
          mx = mx < sj ? sj : mx;
        }
        const E mnew = m[i] < mx ? mx : m[i];
        const E ms = mnew == kNegInf ? E(0) : mnew;
        const E alpha = std::exp(m[i] - ms);
        m[i] = mnew;
        const VV msv = V::set1(ms);
        VV sum = V::zero();
        for (int64_t j = 0; j < nk; j += W) {
          VV pj = V::exp(V::sub(V::load(sc + j), msv));
          if (j + W > nk) pj = V::fill_from(pj, nk - j, E(0));
          V::store(pb + j, pj);
          sum = V::add(sum, pj);
        }
        l[i] = l[i] * alpha + V::hsum(sum);
        E* oi = O + i * dp;
        for (int64_t c0 = 0; c0 < dv; c0 += V::DCH) {
          const int nc = int(std::min<int64_t>(V::DCH, dv - c0));
          const bool tail = tail_n && c0 + nc == dv;
          pv_dispatch<V::DCH>(nc, tail, nk, pb, V0 + c0 * W, d, oi + c0 * W, alpha, tail_n);
        }
      }
    }
    for (int64_t i = 0; i < L; ++i) {
      E* o = out + i * d;
      if (l[i] == E(0)) {
        for (int64_t c = 0; c < d; ++c) o[c] = E(0);
        lse[i] = kNegInf;
        continue;
      }
      for (int64_t c = 0; c < d; ++c) o[c] = O[i * dp + c] / l[i];
      lse[i] = E(double(m[i]) + std::log(double(l[i])));
    }
  }

  static void run(const Problem& p, const E* q, const E* k, const E* v, E scale, E* out, E* lse, int threads) {
    const bool dec = p.L <= kDecodeMaxQ;
    const int64_t nqb = dec ? 1 : (p.L + QB - 1) / QB;
    const int64_t rows_per = dec ? p.L : QB;
    const int64_t nkb = (p.N + KB - 1) / KB;
    const int64_t base = p.bh * nqb;
    const int64_t S = split_count(base, threads, nkb);
    const int64_t items = base * S;
    const int T = int(std::min<int64_t>(threads, items));
    std::vector<Scratch> scratch;
    scratch.reserve(size_t(T));
    for (int t = 0; t < T; ++t) scratch.emplace_back(p.d, dec);
    Buf<E> pout, plse;
    if (S > 1) {
      pout.reset(size_t(S * p.bh * p.L * p.d));
      plse.reset(size_t(S * p.bh * p.L));
    }
    const Args a{p, q, k, v, scale};
    const int64_t rows = p.bh * p.L;
    run_parallel(T, items, [&](int tid, int64_t it) {
      // Heaviest first: under a causal mask the last query blocks see the most keys.
      const int64_t qbk = nqb - 1 - it / (p.bh * S);
      const int64_t rest = it % (p.bh * S);
      const int64_t b = rest / S, sp = rest % S;
      const int64_t ja = nkb * sp / S * KB, jb = std::min(p.N, nkb * (sp + 1) / S * KB);
      const int64_t i0 = qbk * rows_per, nq = std::min(rows_per, p.L - i0);
      E* o = S > 1 ? pout.get() + (sp * rows + b * p.L + i0) * p.d : out + (b * p.L + i0) * p.d;
      E* ls = S > 1 ? plse.get() + sp * rows + b * p.L + i0 : lse + b * p.L + i0;
      if (dec) decode(a, b, ja, jb, o, ls, scratch[size_t(tid)]);
      else block(a, b, i0, nq, ja, jb, o, ls, scratch[size_t(tid)]);
    });
    if (S > 1) combine(pout.get(), plse.get(), S, rows, p.d, out, lse);
  }
};

// ---------------------------------------------------------------- backward

template <class V>
struct Backward {
  using E = typename V::Elem;
  using VV = typename V::V;
  static constexpr int W = V::W, KB = V::KB, BQB = V::BQB;
  static_assert(KB % W == 0, "key blocks hold whole vectors");

  struct Args {
    const Problem& p;
    const E *q, *k, *v, *dout, *lse, *delta;
    E scale;
    E *dk, *dv;
  };

  struct Scratch {
    Buf<E> kt, vt, kp, dkt, dvt, sb, dpb, dqt;
    explicit Scratch(int64_t d) {
      const int64_t dp = (d + W - 1) / W * W;
      kt.reset(size_t(d * KB));
      vt.reset(size_t(d * KB));
      kp.reset(size_t(KB * dp));
      dkt.reset(size_t(d * KB));
      dvt.reset(size_t(d * KB));
      sb.reset(size_t(BQB * KB));
      dpb.reset(size_t(BQB * KB));
      dqt.reset(size_t(BQB * dp));
    }
  };

  // Key block [j0, j0 + nk) of head b against every query that sees it; dq
  // contributions go to dqb (rows of head b, stride d), or nowhere if it is null.
  static void key_block(const Args& a, int64_t b, int64_t j0, int64_t nk, E* dqb, Scratch& s) {
    const Problem& p = a.p;
    const int64_t d = p.d, L = p.L, nkv = (nk + W - 1) / W, ld = nkv * W;
    const int64_t dvec = (d + W - 1) / W, dp = dvec * W;
    const int64_t istart = p.causal ? std::max<int64_t>(0, j0 - p.off) : 0;
    if (istart >= L) return;
    E *Kt = s.kt.get(), *Vt = s.vt.get(), *Kp = s.kp.get(), *dKt = s.dkt.get(), *dVt = s.dvt.get();
    E *Sb = s.sb.get(), *dPb = s.dpb.get(), *dQt = s.dqt.get();
    const E* kb = a.k + (b * p.N + j0) * d;
    const E* vb = a.v + (b * p.N + j0) * d;
    for (int64_t j = 0; j < ld; ++j) {
      if (j < nk) {
        for (int64_t c = 0; c < d; ++c) {
          Kt[c * ld + j] = kb[j * d + c];
          Vt[c * ld + j] = vb[j * d + c];
          Kp[j * dp + c] = kb[j * d + c];
        }
        for (int64_t c = d; c < dp; ++c) Kp[j * dp + c] = E(0);
      } else {
        for (int64_t c = 0; c < d; ++c) Kt[c * ld + j] = Vt[c * ld + j] = E(0);
      }
    }
    std::fill(dKt, dKt + d * ld, E(0));
    std::fill(dVt, dVt + d * ld, E(0));
    const VV scv = V::set1(a.scale);
    for (int64_t i0 = istart; i0 < L; i0 += BQB) {
      const int64_t nq = std::min<int64_t>(BQB, L - i0);
      const E* Q = a.q + (b * L + i0) * d;
      const E* dO = a.dout + (b * L + i0) * d;
      const E* ls = a.lse + b * L + i0;
      const E* de = a.delta + b * L + i0;
      gemm<V, 0>(nq, nkv, d, Q, d, 1, Kt, ld, Sb, ld);
      gemm<V, 0>(nq, nkv, d, dO, d, 1, Vt, ld, dPb, ld);
      for (int64_t i = 0; i < nq; ++i) {
        E* srow = Sb + i * ld;
        E* drow = dPb + i * ld;
        const E li = ls[i];
        // Visible keys of this row within the block: [0, vis).
        const int64_t vis = p.causal ? std::clamp<int64_t>(i0 + i + p.off + 1 - j0, 0, nk) : nk;
        if (li == -std::numeric_limits<E>::infinity() || vis == 0) {
          std::fill(srow, srow + ld, E(0));
          std::fill(drow, drow + ld, E(0));
          continue;
        }
        const VV nl = V::set1(-li), dl = V::set1(de[i]);
        for (int64_t v = 0; v < nkv; ++v) {
          VV pv = V::exp(V::fma(V::load(srow + v * W), scv, nl));
          if ((v + 1) * W > vis) pv = V::fill_from(pv, vis - v * W, E(0));
          V::store(srow + v * W, pv);
          V::store(drow + v * W, V::mul(pv, V::sub(V::load(drow + v * W), dl)));
        }
      }
      gemm<V, 1>(d, nkv, nq, dO, 1, d, Sb, ld, dVt, ld);
      gemm<V, 1>(d, nkv, nq, Q, 1, d, dPb, ld, dKt, ld);
      if (!dqb) continue;
      gemm<V, 0>(nq, dvec, nk, dPb, ld, 1, Kp, dp, dQt, dp);
      E* dqr = dqb + i0 * d;
      for (int64_t i = 0; i < nq; ++i)
        for (int64_t c = 0; c < d; ++c) dqr[i * d + c] += a.scale * dQt[i * dp + c];
    }
    E* dkr = a.dk + (b * p.N + j0) * d;
    E* dvr = a.dv + (b * p.N + j0) * d;
    for (int64_t j = 0; j < nk; ++j)
      for (int64_t c = 0; c < d; ++c) {
        dkr[j * d + c] += a.scale * dKt[c * ld + j];
        dvr[j * d + c] += dVt[c * ld + j];
      }
  }

  // The dq-only pass (used when one head is split between more than two
  // items): queries [i0, i0 + nq) of head b against all the keys they see, laid
  // out like the forward (vectors along queries, K and V read in place):
  //   St = K (scale Q)^T, dPt = V dO^T, dSt = P (dPt - delta), dQt += K^T dSt.
  struct QScratch {
    Buf<E> qt, dot, st, dpt, dqt, lsv, dlv;
    explicit QScratch(int64_t d) {
      qt.reset(size_t(d * V::QB));
      dot.reset(size_t(d * V::QB));
      st.reset(size_t(KB * V::QB));
      dpt.reset(size_t(KB * V::QB));
      dqt.reset(size_t(d * V::QB));
      lsv.reset(V::QB);
      dlv.reset(V::QB);
    }
  };

  static void query_block(const Args& a, int64_t b, int64_t i0, int64_t nq, E* dq, QScratch& s) {
    const Problem& p = a.p;
    const int64_t d = p.d, L = p.L, nqv = (nq + W - 1) / W, ld = nqv * W;
    E *Qt = s.qt.get(), *dOt = s.dot.get(), *St = s.st.get(), *dPt = s.dpt.get(), *dQt = s.dqt.get();
    E *lsv = s.lsv.get(), *dlv = s.dlv.get();
    const E* Q = a.q + (b * L + i0) * d;
    const E* dO = a.dout + (b * L + i0) * d;
    const E inf = std::numeric_limits<E>::infinity();
    for (int64_t i = 0; i < ld; ++i) {
      const bool in = i < nq;
      for (int64_t c = 0; c < d; ++c) {
        Qt[c * ld + i] = in ? a.scale * Q[i * d + c] : E(0);
        dOt[c * ld + i] = in ? dO[i * d + c] : E(0);
      }
      // lse = +inf gives P = 0: padding lanes and queries that saw nothing.
      const E li = in ? a.lse[b * L + i0 + i] : inf;
      lsv[i] = li == -inf ? inf : li;
      dlv[i] = in ? a.delta[b * L + i0 + i] : E(0);
    }
    std::fill(dQt, dQt + d * ld, E(0));
    const int64_t jend = p.causal ? std::min(p.N, i0 + nq + p.off) : p.N;
    const E* kb = a.k + b * p.N * d;
    const E* vb = a.v + b * p.N * d;
    for (int64_t j0 = 0; j0 < jend; j0 += KB) {
      const int64_t nk = std::min<int64_t>(KB, jend - j0);
      gemm<V, 0>(nk, nqv, d, kb + j0 * d, d, 1, Qt, ld, St, ld);
      gemm<V, 0>(nk, nqv, d, vb + j0 * d, d, 1, dOt, ld, dPt, ld);
      for (int64_t j = 0; j < nk; ++j) {
        // Key j0 + j is hidden from lanes i < j0 + j - off - i0.
        const int64_t thr = p.causal ? j0 + j - p.off - i0 : 0;
        for (int64_t v = 0; v < nqv; ++v) {
          const int64_t x = j * ld + v * W;
          VV pv = V::exp(V::sub(V::load(St + x), V::load(lsv + v * W)));
          if (thr > v * W) pv = V::fill_below(pv, thr - v * W, E(0));
          V::store(dPt + x, V::mul(pv, V::sub(V::load(dPt + x), V::load(dlv + v * W))));
        }
      }
      gemm<V, 1>(d, nqv, nk, kb + j0 * d, 1, d, dPt, ld, dQt, ld);
    }
    E* dqr = dq + (b * L + i0) * d;
    for (int64_t i = 0; i < nq; ++i)
      for (int64_t c = 0; c < d; ++c) dqr[i * d + c] += a.scale * dQt[c * ld + i];
  }

  static void run(const Problem& p, const E* q, const E* k, const E* v, const E* dout, const E* lse, const E* delta,
                  E scale, E* dq, E* dk, E* dv, int threads) {
    const int64_t nkb = (p.N + KB - 1) / KB;
    const int64_t C = split_count(p.bh, threads, nkb);  // items per head
    // C == 1: each item owns a whole head and adds to dq directly. C == 2: each
    // item adds dq to a private copy of its head's rows (at most twice the size
    // of dq), summed at the end. C > 2: the key-block items compute dk and dv
    // only, and a second pass over query blocks computes dq (three of the five
    // products again, but no memory that grows with the thread count).
    const bool second_pass = C > 2;
    const int64_t items = p.bh * C;
    const int T = int(std::min<int64_t>(threads, items));
    std::vector<Scratch> scratch;
    scratch.reserve(size_t(T));
    for (int t = 0; t < T; ++t) scratch.emplace_back(p.d);
    const int64_t hsz = p.L * p.d;
    Buf<E> part;
    if (C == 2) {
      part.reset(size_t(items * hsz));
      std::fill(part.get(), part.get() + items * hsz, E(0));
    }
    const Args a{p, q, k, v, dout, lse, delta, scale, dk, dv};
    run_parallel(T, items, [&](int tid, int64_t it) {
      const int64_t b = it / C, c = it % C;
      E* dqb = second_pass ? nullptr : C == 2 ? part.get() + it * hsz : dq + b * hsz;
      // Interleaved key blocks: under a causal mask the early ones see more queries.
      for (int64_t kb = c; kb < nkb; kb += C)
        key_block(a, b, kb * KB, std::min<int64_t>(KB, p.N - kb * KB), dqb, scratch[size_t(tid)]);
    });
    if (C == 2) {
      for (int64_t b = 0; b < p.bh; ++b)
        for (int64_t c = 0; c < C; ++c) {
          const E* src = part.get() + (b * C + c) * hsz;
          E* dst = dq + b * hsz;
          for (int64_t x = 0; x < hsz; ++x) dst[x] += src[x];
        }
    }
    if (second_pass) {
      scratch.clear();
      const int64_t nqb = (p.L + V::QB - 1) / V::QB, items2 = p.bh * nqb;
      const int T2 = int(std::min<int64_t>(threads, items2));
      std::vector<QScratch> qs;
      qs.reserve(size_t(T2));
      for (int t = 0; t < T2; ++t) qs.emplace_back(p.d);
      run_parallel(T2, items2, [&](int tid, int64_t it) {
        const int64_t qbk = nqb - 1 - it / p.bh, b = it % p.bh;  // heaviest (causal) first
        const int64_t i0 = qbk * V::QB;
        query_block(a, b, i0, std::min<int64_t>(V::QB, p.L - i0), dq, qs[size_t(tid)]);
      });
    }
  }
};

}  // namespace

void forward(const Problem& p, const float* q, const float* k, const float* v, float scale, float* out, float* lse,
             int threads) {
  Forward<VF>::run(p, q, k, v, scale, out, lse, threads);
}
void forward(const Problem& p, const double* q, const double* k, const double* v, double scale, double* out,
             double* lse, int threads) {
  Forward<VD>::run(p, q, k, v, scale, out, lse, threads);
}
void backward(const Problem& p, const float* q, const float* k, const float* v, const float* dout, const float* lse,
              const float* delta, float scale, float* dq, float* dk, float* dv, int threads) {
  Backward<VF>::run(p, q, k, v, dout, lse, delta, scale, dq, dk, dv, threads);
}
void backward(const Problem& p, const double* q, const double* k, const double* v, const double* dout,
              const double* lse, const double* delta, double scale, double* dq, double* dk, double* dv,
              int threads) {
  Backward<VD>::run(p, q, k, v, dout, lse, delta, scale, dq, dk, dv, threads);
}

#endif  // BAOBAB_ATTENTION_KERNEL_BODY

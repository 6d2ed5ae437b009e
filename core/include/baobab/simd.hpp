// The one SIMD layer of baobab's CPU kernels (the reductions, attention, and the
// applications' kernels): instruction-set tiers chosen at run time, and per tier
// the vector types the kernels are written against.
//
// Tiers
//   baseline  no target options: one-lane "vectors" in plain C++, valid on any
//             CPU and architecture (the compiler may still auto-vectorise loops
//             for the architecture's base SIMD, SSE2 on x86-64).
//   avx2      AVX2 + FMA + F16C, 256-bit (Intel Haswell, AMD Zen and later).
//   avx512    AVX-512 F, DQ, BW, VL and the avx2 set, 512-bit.
// The x86 tiers are compiled on x86-64 with GCC or clang (BAOBAB_SIMD_X86);
// other compilers and architectures get the baseline.
//
// Run-time choice. cpu() is the best tier this build and CPU run (CPUID
// through __builtin_cpu_supports, which also checks that the OS saves the
// registers). Each kernel family has a cap variable BAOBAB_<FAMILY>_ISA and
// picks its tier once per process with select("BAOBAB_<FAMILY>_ISA"): cpu()
// lowered to the variable's value (baseline|avx2|avx512; a cap never raises the
// tier above the CPU's; any other value throws InvalidArgument naming the
// variable). Tests use the caps to run every tier; they also keep 512-bit
// vectors off CPUs that slow down for them. check_caps() checks every
// BAOBAB_*_ISA variable in the environment (the core calls it when a
// communicator is created), so a family's cap is checked even before its
// kernel first runs, and an application's cap needs no entry in the core.
//
// Vector types. Namespace baobab::simd::<tier> (baseline, avx2, avx512) holds
// `tier` (its Tier; Tier itself too) and two structs, F32 and F64, of static always-inline
// functions over the tier's register type V of W lanes of Elem:
//   zero set1 load store (unaligned), load_aligned store_aligned (p aligned to
//   the register's size: W * sizeof(Elem) bytes)  add sub mul div min max sqrt
//   fma(a, b, c) = a b + c   fnma(a, b, c) = c - a b   inv_sqrt = 1 / sqrt
//   Mask, lanes_lt(t) (lanes [0, t)), select(k, a, b) (b where k, else a),
//   fill_below / fill_from(x, t, f) (lanes [0, t) / [t, W) set to f),
//   load_n(p, n) (lanes [0, n) from p, the rest 0, nothing read past p + n),
//   hsum (sum of the lanes), exp, neginf_to_zero;
//   F64 also: I64 (int64 lanes), load_i64 (aligned like load_aligned),
//   eq_i64(I64, x) -> Mask;
//   avx2::F32 also the bit-level operations (is_nan, eq, bit_and, bit_or,
//   from_bits) and float16 loads and stores (F16C).
// Each operation is the IEEE operation of its name, lane by lane (fma fused on
// the x86 tiers; on baseline a b + c, fused only where the architecture's base
// set has FMA and -ffp-contract allows). min(a, b) / max(a, b) return b when
// the lanes compare equal or either is NaN (as vminps / vmaxps do). inv_sqrt
// is a correctly rounded square root and division (under 1.5 ulp). exp: a
// Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, and a Taylor polynomial
// (degree 7 for float, truncation 5e-9; degree 12 for double, 2e-16) scaled by
// 2^n: under 1 ulp for float, 4e-16 relative for double; anything below
// ln(FLT_MIN) resp. ln(DBL_MIN), -inf included, gives exactly 0 (no subnormal
// results), above ln(max) +inf, NaN stays NaN. The baseline exp is std::exp.
//
// Writing a kernel. The kernel's tier code (its "body", a file of its own) is
// written once against simd::F32 / simd::F64 and compiled once per tier by
// baobab/simd_tiers.hpp, which includes it into <namespace>::tier_baseline,
// tier_avx2 and tier_avx512 under each tier's target options, with `simd`
// naming the tier's namespace there. The kernel's front (argument checks, the
// tier choice) calls the tier it selected with BAOBAB_SIMD_DISPATCH. Plain
// loops the compiler vectorises need no body file: a function template marked
// BAOBAB_SIMD_AVX2_FN / BAOBAB_SIMD_AVX512_FN is compiled for that tier
// (core/src/reduce/kernels.cpp does this).
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0
#error "baobab's SIMD kernels need FLT_EVAL_METHOD == 0 (e.g. SSE2 floating point on x86)"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BAOBAB_SIMD_INLINE inline __attribute__((always_inline))
#else
#define BAOBAB_SIMD_INLINE inline
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define BAOBAB_SIMD_X86 1
// GCC 12 warns "__Y may be used uninitialized" inside the AVX-512 intrinsics that
// start from _mm512_undefined_*() (a false positive, GCC PR 105593); the warning
// is attributed to the header's lines, so it is silenced there only.
#if defined(__clang__)
#include <immintrin.h>
#else
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif
#endif

// The target options of the x86 tiers: each spelled once, here.
#define BAOBAB_SIMD_AVX2_TARGET "avx2,fma,f16c"
#define BAOBAB_SIMD_AVX512_TARGET "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,f16c"
// A function (template) compiled for a tier.
#define BAOBAB_SIMD_AVX2_FN __attribute__((target(BAOBAB_SIMD_AVX2_TARGET)))
#define BAOBAB_SIMD_AVX512_FN __attribute__((target(BAOBAB_SIMD_AVX512_TARGET)))
// A region of code compiled for a tier (templates defined in it too): GCC's
// target pragma, or clang's attribute pragma giving every function in the
// region the target attribute.
#define BAOBAB_SIMD_PRAGMA_(...) _Pragma(#__VA_ARGS__)
#define BAOBAB_SIMD_PRAGMA(...) BAOBAB_SIMD_PRAGMA_(__VA_ARGS__)
#if defined(__clang__)
#define BAOBAB_SIMD_BEGIN_(tgt) \
  BAOBAB_SIMD_PRAGMA(clang attribute push(__attribute__((target(tgt))), apply_to = function))
#define BAOBAB_SIMD_END _Pragma("clang attribute pop")
#else
#define BAOBAB_SIMD_BEGIN_(tgt) _Pragma("GCC push_options") BAOBAB_SIMD_PRAGMA(GCC target(tgt))
#define BAOBAB_SIMD_END _Pragma("GCC pop_options")
#endif
#define BAOBAB_SIMD_BEGIN_AVX2 BAOBAB_SIMD_BEGIN_(BAOBAB_SIMD_AVX2_TARGET)
#define BAOBAB_SIMD_BEGIN_AVX512 BAOBAB_SIMD_BEGIN_(BAOBAB_SIMD_AVX512_TARGET)

// Calls `fn(args)` in the namespace tier_<t> that baobab/simd_tiers.hpp made
// (an expression of fn's type): BAOBAB_SIMD_DISPATCH(t, run(p, threads)).
#ifdef BAOBAB_SIMD_X86
#define BAOBAB_SIMD_DISPATCH(t, ...)                                                     \
  ((t) == ::baobab::simd::Tier::avx512 ? tier_avx512::__VA_ARGS__                        \
   : (t) == ::baobab::simd::Tier::avx2 ? tier_avx2::__VA_ARGS__ : tier_baseline::__VA_ARGS__)
#else
#define BAOBAB_SIMD_DISPATCH(t, ...) ((void)(t), tier_baseline::__VA_ARGS__)
#endif

namespace baobab::simd {

// ---------------------------------------------------------------- tiers

enum class Tier { baseline = 0, avx2 = 1, avx512 = 2 };

const char* name(Tier t);  // "baseline", "avx2", "avx512"
Tier cpu();                // the best tier this build and CPU run
// The tier named by the environment variable env_var, at most t (t when unset
// or empty); InvalidArgument naming the variable for any other value.
Tier capped(Tier t, const char* env_var);
// capped(cpu(), env_var): what a kernel family with that cap runs.
Tier select(const char* env_var);
// baseline .. cpu(), for tests and benchmarks; the tier named `tier_name` among
// them (InvalidArgument naming `what` if it is not one).
std::vector<Tier> tiers();
Tier available(const std::string& tier_name, const char* what);
// Checks every BAOBAB_*_ISA variable of the environment (InvalidArgument
// naming the first bad one).
void check_caps();

// ---------------------------------------------------------------- baseline

namespace baseline {

using ::baobab::simd::Tier;
inline constexpr Tier tier = Tier::baseline;

template <class T>
struct Scalar {
  using Elem = T;
  using V = T;
  using Mask = bool;
  using I64 = int64_t;
  static constexpr int W = 1;
  static BAOBAB_SIMD_INLINE V zero() { return T(0); }
  static BAOBAB_SIMD_INLINE V set1(T x) { return x; }
  static BAOBAB_SIMD_INLINE V load(const T* p) { return *p; }
  static BAOBAB_SIMD_INLINE void store(T* p, V v) { *p = v; }
  static BAOBAB_SIMD_INLINE V load_aligned(const T* p) { return *p; }
  static BAOBAB_SIMD_INLINE void store_aligned(T* p, V v) { *p = v; }
  static BAOBAB_SIMD_INLINE V add(V a, V b) { return a + b; }
  static BAOBAB_SIMD_INLINE V sub(V a, V b) { return a - b; }
  static BAOBAB_SIMD_INLINE V mul(V a, V b) { return a * b; }
  static BAOBAB_SIMD_INLINE V div(V a, V b) { return a / b; }
  static BAOBAB_SIMD_INLINE V fma(V a, V b, V c) { return a * b + c; }
  static BAOBAB_SIMD_INLINE V fnma(V a, V b, V c) { return c - a * b; }
  static BAOBAB_SIMD_INLINE V min(V a, V b) { return a < b ? a : b; }
  static BAOBAB_SIMD_INLINE V max(V a, V b) { return a > b ? a : b; }
  static BAOBAB_SIMD_INLINE V sqrt(V a) { return std::sqrt(a); }
  static BAOBAB_SIMD_INLINE V inv_sqrt(V a) { return T(1) / std::sqrt(a); }
  static BAOBAB_SIMD_INLINE V exp(V x) { return std::exp(x); }
  static BAOBAB_SIMD_INLINE V neginf_to_zero(V x) { return x == -std::numeric_limits<T>::infinity() ? T(0) : x; }
  static BAOBAB_SIMD_INLINE Mask lanes_lt(int64_t t) { return t > 0; }
  static BAOBAB_SIMD_INLINE V select(Mask k, V a, V b) { return k ? b : a; }
  static BAOBAB_SIMD_INLINE V fill_below(V x, int64_t t, T f) { return t > 0 ? f : x; }
  static BAOBAB_SIMD_INLINE V fill_from(V x, int64_t t, T f) { return t <= 0 ? f : x; }
  static BAOBAB_SIMD_INLINE V load_n(const T* p, int64_t n) { return n > 0 ? *p : T(0); }
  static BAOBAB_SIMD_INLINE T hsum(V v) { return v; }
  static BAOBAB_SIMD_INLINE I64 load_i64(const int64_t* p) { return *p; }
  static BAOBAB_SIMD_INLINE Mask eq_i64(I64 a, int64_t x) { return a == x; }
};

using F32 = Scalar<float>;
using F64 = Scalar<double>;

}  // namespace baseline

}  // namespace baobab::simd

#ifdef BAOBAB_SIMD_X86

// ---------------------------------------------------------------- avx2

BAOBAB_SIMD_BEGIN_AVX2
namespace baobab::simd::avx2 {

using ::baobab::simd::Tier;
inline constexpr Tier tier = Tier::avx2;

struct F32 {
  using Elem = float;
  using V = __m256;
  using Mask = __m256;  // all-ones / all-zeros lanes
  static constexpr int W = 8;
  static BAOBAB_SIMD_INLINE V zero() { return _mm256_setzero_ps(); }
  static BAOBAB_SIMD_INLINE V set1(float x) { return _mm256_set1_ps(x); }
  static BAOBAB_SIMD_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  static BAOBAB_SIMD_INLINE void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static BAOBAB_SIMD_INLINE V load_aligned(const float* p) { return _mm256_load_ps(p); }
  static BAOBAB_SIMD_INLINE void store_aligned(float* p, V v) { _mm256_store_ps(p, v); }
  static BAOBAB_SIMD_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  static BAOBAB_SIMD_INLINE V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static BAOBAB_SIMD_INLINE V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static BAOBAB_SIMD_INLINE V div(V a, V b) { return _mm256_div_ps(a, b); }
  static BAOBAB_SIMD_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static BAOBAB_SIMD_INLINE V fnma(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  static BAOBAB_SIMD_INLINE V min(V a, V b) { return _mm256_min_ps(a, b); }
  static BAOBAB_SIMD_INLINE V max(V a, V b) { return _mm256_max_ps(a, b); }
  static BAOBAB_SIMD_INLINE V sqrt(V a) { return _mm256_sqrt_ps(a); }
  static BAOBAB_SIMD_INLINE V inv_sqrt(V a) { return _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_sqrt_ps(a)); }
  static BAOBAB_SIMD_INLINE Mask lanes_lt(int64_t t) {
    const float tt = float(t < 0 ? 0 : t > W ? W : t);
    return _mm256_cmp_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_ps(tt), _CMP_LT_OQ);
  }
  static BAOBAB_SIMD_INLINE V select(Mask k, V a, V b) { return _mm256_blendv_ps(a, b, k); }
  static BAOBAB_SIMD_INLINE V fill_below(V x, int64_t t, float f) { return _mm256_blendv_ps(x, set1(f), lanes_lt(t)); }
  static BAOBAB_SIMD_INLINE V fill_from(V x, int64_t t, float f) { return _mm256_blendv_ps(set1(f), x, lanes_lt(t)); }
  static BAOBAB_SIMD_INLINE V load_n(const float* p, int64_t n) {
    return _mm256_maskload_ps(p, _mm256_castps_si256(lanes_lt(n)));
  }
  static BAOBAB_SIMD_INLINE float hsum(V v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    __m128 s = _mm_movehdup_ps(x);
    x = _mm_add_ps(x, s);
    s = _mm_movehl_ps(s, x);
    return _mm_cvtss_f32(_mm_add_ss(x, s));
  }
  static BAOBAB_SIMD_INLINE V neginf_to_zero(V x) {
    return _mm256_blendv_ps(x, zero(), _mm256_cmp_ps(x, set1(-INFINITY), _CMP_EQ_OQ));
  }
  // Exact for x <= 88.37; 0 below ln(FLT_MIN); +inf above ln(FLT_MAX).
  static BAOBAB_SIMD_INLINE V exp(V x) {
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
  // Bit level (masks are vectors here): NaN lanes, equal lanes (ordered), and,
  // or, a bit pattern in every lane.
  static BAOBAB_SIMD_INLINE Mask is_nan(V a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
  static BAOBAB_SIMD_INLINE Mask eq(V a, V b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
  static BAOBAB_SIMD_INLINE V bit_and(V a, V b) { return _mm256_and_ps(a, b); }
  static BAOBAB_SIMD_INLINE V bit_or(V a, V b) { return _mm256_or_ps(a, b); }
  static BAOBAB_SIMD_INLINE V from_bits(uint32_t bits) { return _mm256_castsi256_ps(_mm256_set1_epi32(int(bits))); }
  // float16 (IEEE binary16) <-> float: 8 halves at p (any alignment); the store
  // rounds to nearest even; NaNs stay NaN, quiet.
  static BAOBAB_SIMD_INLINE V load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static BAOBAB_SIMD_INLINE void store_f16(uint16_t* p, V v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
};

struct F64 {
  using Elem = double;
  using V = __m256d;
  using Mask = __m256d;
  using I64 = __m256i;
  static constexpr int W = 4;
  static BAOBAB_SIMD_INLINE V zero() { return _mm256_setzero_pd(); }
  static BAOBAB_SIMD_INLINE V set1(double x) { return _mm256_set1_pd(x); }
  static BAOBAB_SIMD_INLINE V load(const double* p) { return _mm256_loadu_pd(p); }
  static BAOBAB_SIMD_INLINE void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static BAOBAB_SIMD_INLINE V load_aligned(const double* p) { return _mm256_load_pd(p); }
  static BAOBAB_SIMD_INLINE void store_aligned(double* p, V v) { _mm256_store_pd(p, v); }
  static BAOBAB_SIMD_INLINE V add(V a, V b) { return _mm256_add_pd(a, b); }
  static BAOBAB_SIMD_INLINE V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static BAOBAB_SIMD_INLINE V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static BAOBAB_SIMD_INLINE V div(V a, V b) { return _mm256_div_pd(a, b); }
  static BAOBAB_SIMD_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static BAOBAB_SIMD_INLINE V fnma(V a, V b, V c) { return _mm256_fnmadd_pd(a, b, c); }
  static BAOBAB_SIMD_INLINE V min(V a, V b) { return _mm256_min_pd(a, b); }
  static BAOBAB_SIMD_INLINE V max(V a, V b) { return _mm256_max_pd(a, b); }
  static BAOBAB_SIMD_INLINE V sqrt(V a) { return _mm256_sqrt_pd(a); }
  static BAOBAB_SIMD_INLINE V inv_sqrt(V a) { return _mm256_div_pd(_mm256_set1_pd(1.0), _mm256_sqrt_pd(a)); }
  static BAOBAB_SIMD_INLINE Mask lanes_lt(int64_t t) {
    const double tt = double(t < 0 ? 0 : t > W ? W : t);
    return _mm256_cmp_pd(_mm256_setr_pd(0, 1, 2, 3), _mm256_set1_pd(tt), _CMP_LT_OQ);
  }
  static BAOBAB_SIMD_INLINE V select(Mask k, V a, V b) { return _mm256_blendv_pd(a, b, k); }
  static BAOBAB_SIMD_INLINE V fill_below(V x, int64_t t, double f) { return _mm256_blendv_pd(x, set1(f), lanes_lt(t)); }
  static BAOBAB_SIMD_INLINE V fill_from(V x, int64_t t, double f) { return _mm256_blendv_pd(set1(f), x, lanes_lt(t)); }
  static BAOBAB_SIMD_INLINE V load_n(const double* p, int64_t n) {
    return _mm256_maskload_pd(p, _mm256_castpd_si256(lanes_lt(n)));
  }
  static BAOBAB_SIMD_INLINE double hsum(V v) {
    __m128d x = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(x, _mm_unpackhi_pd(x, x)));
  }
  static BAOBAB_SIMD_INLINE V neginf_to_zero(V x) {
    return _mm256_blendv_pd(x, zero(), _mm256_cmp_pd(x, set1(-INFINITY), _CMP_EQ_OQ));
  }
  // Exact for x <= 709.43; 0 below ln(DBL_MIN); +inf above ln(DBL_MAX).
  static BAOBAB_SIMD_INLINE V exp(V x) {
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
  static BAOBAB_SIMD_INLINE I64 load_i64(const int64_t* p) {
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(p));
  }
  static BAOBAB_SIMD_INLINE Mask eq_i64(I64 a, int64_t x) {
    return _mm256_castsi256_pd(_mm256_cmpeq_epi64(a, _mm256_set1_epi64x(x)));
  }
};

}  // namespace baobab::simd::avx2
BAOBAB_SIMD_END

// ---------------------------------------------------------------- avx512

BAOBAB_SIMD_BEGIN_AVX512
namespace baobab::simd::avx512 {

using ::baobab::simd::Tier;
inline constexpr Tier tier = Tier::avx512;

struct F32 {
  using Elem = float;
  using V = __m512;
  using Mask = __mmask16;
  static constexpr int W = 16;
  static BAOBAB_SIMD_INLINE V zero() { return _mm512_setzero_ps(); }
  static BAOBAB_SIMD_INLINE V set1(float x) { return _mm512_set1_ps(x); }
  static BAOBAB_SIMD_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static BAOBAB_SIMD_INLINE void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static BAOBAB_SIMD_INLINE V load_aligned(const float* p) { return _mm512_load_ps(p); }
  static BAOBAB_SIMD_INLINE void store_aligned(float* p, V v) { _mm512_store_ps(p, v); }
  static BAOBAB_SIMD_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  static BAOBAB_SIMD_INLINE V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static BAOBAB_SIMD_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static BAOBAB_SIMD_INLINE V div(V a, V b) { return _mm512_div_ps(a, b); }
  static BAOBAB_SIMD_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static BAOBAB_SIMD_INLINE V fnma(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }
  static BAOBAB_SIMD_INLINE V min(V a, V b) { return _mm512_min_ps(a, b); }
  static BAOBAB_SIMD_INLINE V max(V a, V b) { return _mm512_max_ps(a, b); }
  static BAOBAB_SIMD_INLINE V sqrt(V a) { return _mm512_sqrt_ps(a); }
  static BAOBAB_SIMD_INLINE V inv_sqrt(V a) { return _mm512_div_ps(_mm512_set1_ps(1.f), _mm512_sqrt_ps(a)); }
  static BAOBAB_SIMD_INLINE Mask lanes_lt(int64_t t) {
    return t <= 0 ? Mask(0) : t >= W ? Mask(0xFFFF) : Mask((1u << t) - 1);
  }
  static BAOBAB_SIMD_INLINE V select(Mask k, V a, V b) { return _mm512_mask_blend_ps(k, a, b); }
  static BAOBAB_SIMD_INLINE V fill_below(V x, int64_t t, float f) { return _mm512_mask_mov_ps(x, lanes_lt(t), set1(f)); }
  static BAOBAB_SIMD_INLINE V fill_from(V x, int64_t t, float f) { return _mm512_mask_mov_ps(set1(f), lanes_lt(t), x); }
  static BAOBAB_SIMD_INLINE V load_n(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(lanes_lt(n), p); }
  static BAOBAB_SIMD_INLINE float hsum(V v) { return _mm512_reduce_add_ps(v); }
  static BAOBAB_SIMD_INLINE V neginf_to_zero(V x) {
    return _mm512_mask_mov_ps(x, _mm512_cmp_ps_mask(x, set1(-INFINITY), _CMP_EQ_OQ), zero());
  }
  // vscalefps applies 2^n with correct overflow to inf; results below FLT_MIN
  // are flushed to 0 as in the avx2 tier.
  static BAOBAB_SIMD_INLINE V exp(V x) {
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

struct F64 {
  using Elem = double;
  using V = __m512d;
  using Mask = __mmask8;
  using I64 = __m512i;
  static constexpr int W = 8;
  static BAOBAB_SIMD_INLINE V zero() { return _mm512_setzero_pd(); }
  static BAOBAB_SIMD_INLINE V set1(double x) { return _mm512_set1_pd(x); }
  static BAOBAB_SIMD_INLINE V load(const double* p) { return _mm512_loadu_pd(p); }
  static BAOBAB_SIMD_INLINE void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static BAOBAB_SIMD_INLINE V load_aligned(const double* p) { return _mm512_load_pd(p); }
  static BAOBAB_SIMD_INLINE void store_aligned(double* p, V v) { _mm512_store_pd(p, v); }
  static BAOBAB_SIMD_INLINE V add(V a, V b) { return _mm512_add_pd(a, b); }
  static BAOBAB_SIMD_INLINE V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static BAOBAB_SIMD_INLINE V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static BAOBAB_SIMD_INLINE V div(V a, V b) { return _mm512_div_pd(a, b); }
  static BAOBAB_SIMD_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static BAOBAB_SIMD_INLINE V fnma(V a, V b, V c) { return _mm512_fnmadd_pd(a, b, c); }
  static BAOBAB_SIMD_INLINE V min(V a, V b) { return _mm512_min_pd(a, b); }
  static BAOBAB_SIMD_INLINE V max(V a, V b) { return _mm512_max_pd(a, b); }
  static BAOBAB_SIMD_INLINE V sqrt(V a) { return _mm512_sqrt_pd(a); }
  static BAOBAB_SIMD_INLINE V inv_sqrt(V a) { return _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_sqrt_pd(a)); }
  static BAOBAB_SIMD_INLINE Mask lanes_lt(int64_t t) {
    return t <= 0 ? Mask(0) : t >= W ? Mask(0xFF) : Mask((1u << t) - 1);
  }
  static BAOBAB_SIMD_INLINE V select(Mask k, V a, V b) { return _mm512_mask_blend_pd(k, a, b); }
  static BAOBAB_SIMD_INLINE V fill_below(V x, int64_t t, double f) { return _mm512_mask_mov_pd(x, lanes_lt(t), set1(f)); }
  static BAOBAB_SIMD_INLINE V fill_from(V x, int64_t t, double f) { return _mm512_mask_mov_pd(set1(f), lanes_lt(t), x); }
  static BAOBAB_SIMD_INLINE V load_n(const double* p, int64_t n) { return _mm512_maskz_loadu_pd(lanes_lt(n), p); }
  static BAOBAB_SIMD_INLINE double hsum(V v) { return _mm512_reduce_add_pd(v); }
  static BAOBAB_SIMD_INLINE V neginf_to_zero(V x) {
    return _mm512_mask_mov_pd(x, _mm512_cmp_pd_mask(x, set1(-INFINITY), _CMP_EQ_OQ), zero());
  }
  static BAOBAB_SIMD_INLINE V exp(V x) {
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
  static BAOBAB_SIMD_INLINE I64 load_i64(const int64_t* p) { return _mm512_load_si512(p); }
  static BAOBAB_SIMD_INLINE Mask eq_i64(I64 a, int64_t x) { return _mm512_cmpeq_epi64_mask(a, _mm512_set1_epi64(x)); }
};

}  // namespace baobab::simd::avx512
BAOBAB_SIMD_END

#endif  // BAOBAB_SIMD_X86

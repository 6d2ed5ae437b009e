// Typed elementwise reduction kernels: dst[i] = a[i] OP b[i].
//
// Design
// ------
// Every kernel is one plain loop over elements, written so that the compiler
// auto-vectorises it at -O3: an element policy (load into a compute type, store
// back) and an operator policy (sum, prod, min, max) are inlined into a single
// template, loop<E, Op>. No pointer is declared restrict, since dst may equal a
// or b; instead the main loop carries an ivdep hint, which is exact here (see
// loop) and lets GCC vectorise at -O2 as well as -O3.
//
// Instruction sets come from the SIMD layer (baobab/simd.hpp) and are chosen at
// run time without ifuncs. On x86-64 each kernel template is instantiated three
// times: with no target attribute (the x86-64 baseline, SSE2), as
// BAOBAB_SIMD_AVX2_FN and as BAOBAB_SIMD_AVX512_FN, and reduce_kernel() returns
// the instantiation of the tier simd::select("BAOBAB_REDUCE_ISA") picks once
// per process (the best the CPU runs, capped by BAOBAB_REDUCE_ISA=baseline|
// avx2|avx512); the tests use the cap to check that every tier gives the same
// bits. Other architectures get the baseline instantiation only, which the
// compiler vectorises for its own SIMD.
//
// float16: the AVX2 and AVX-512 tiers use a kernel written with the layer's
// simd::avx2::F32 (F16C: vcvtph2ps, vcvtps2ph); the baseline converts in
// software. The software conversion is branch-free and reproduces F16C
// exactly, NaN payloads included, so results do not depend on the tier.
// bfloat16 needs only integer shifts and adds. Both 16-bit float types are
// processed two elements per 32-bit word (see loop), which keeps the vector
// code free of 16 <-> 32-bit lane shuffles.
//
// Floating point: one IEEE operation per element, no reassociation. There is no
// a*b+c in any kernel, so FMA contraction cannot occur whatever -ffp-contract
// says (the tiers' target options do enable FMA). -ffast-math would break NaN
// handling and is rejected at compile time.
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "baobab/error.hpp"
#include "baobab/reduce.hpp"
#include "baobab/simd.hpp"

// Float arithmetic must round to the declared type after every operation (x87
// excess precision would double-round and break the exactness guarantees).
#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0
#error "baobab reduce kernels need FLT_EVAL_METHOD == 0 (e.g. SSE2 floating point on x86)"
#endif

#if defined(__FAST_MATH__) || (defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__)
#error "baobab reduce kernels must not be built with -ffast-math / -ffinite-math-only"
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BAOBAB_INLINE inline __attribute__((always_inline))
#else
#define BAOBAB_INLINE inline
#endif

// "The iterations of the next loop are independent; vectorise without checks."
#if defined(__clang__)
#define BAOBAB_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define BAOBAB_IVDEP _Pragma("GCC ivdep")
#else
#define BAOBAB_IVDEP
#endif

namespace baobab {
namespace {

// ---------------------------------------------------------------- conversions

// The conversions are branch-free: every candidate result is computed and one is
// picked with masks. (With ?: GCC sinks each float operation into its own branch
// and then, under the default -ftrapping-math, may not if-convert or vectorise.)
BAOBAB_INLINE uint32_t select(bool c, uint32_t x, uint32_t y) {
  uint32_t m = 0u - uint32_t(c);
  return (x & m) | (y & ~m);
}

// IEEE binary16 -> binary32 (exact). NaNs come out quiet with the payload shifted
// up, as vcvtph2ps does.
BAOBAB_INLINE float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  int32_t em = h & 0x7FFF;                                        // exponent and mantissa
  uint32_t normal = (uint32_t(em) << 13) + ((127u - 15u) << 23);  // re-bias the exponent
  uint32_t special = (uint32_t(em) << 13) | 0x7F800000u | select(em > 0x7C00, 0x00400000u, 0u);
  // Subnormal or zero: em * 2^-24 is exact in float, and a normal float (so the
  // result does not depend on denormals-are-zero / flush-to-zero modes).
  uint32_t sub = std::bit_cast<uint32_t>(float(em) * 0x1p-24f);
  uint32_t r = select(em >= 0x7C00, special, select(em >= 0x0400, normal, sub));
  return std::bit_cast<float>(r | sign);
}

// binary32 -> binary16, round to nearest even, overflow to infinity. A NaN keeps
// its sign and top payload bits and is made quiet, as vcvtps2ph does.
BAOBAB_INLINE uint16_t f32_to_f16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t ax = x & 0x7FFFFFFFu;
  int32_t sax = int32_t(ax);  // signed compares are cheaper in SIMD
  // Normal result: re-bias and round at bit 13; a carry out of the mantissa
  // correctly bumps the exponent.
  uint32_t normal = (ax - ((127u - 15u) << 23) + 0x0FFFu + ((ax >> 13) & 1u)) >> 13;
  // |f| < 2^-14 (subnormal or zero result): in 0.5 + |f| the float ulp is 2^-24,
  // the binary16 subnormal step, so the FPU's own nearest-even rounding does the
  // work; 2^-14 itself comes out as 0x400, the smallest normal, as it should.
  // (A float-subnormal |f| rounds to 0 either way, so DAZ cannot change this.)
  uint32_t sub = std::bit_cast<uint32_t>(std::bit_cast<float>(ax) + 0.5f) - 0x3F000000u;
  uint32_t nan = 0x7E00u | ((ax >> 13) & 0x03FFu);
  uint32_t r = select(sax > 0x7F800000, nan,
                      select(sax >= 0x477FF000,  // >= 65520 (incl. inf) rounds to inf
                             0x7C00u, select(sax >= 0x38800000, normal, sub)));
  return uint16_t(r | sign);
}

BAOBAB_INLINE float bf16_to_f32(uint16_t h) { return std::bit_cast<float>(uint32_t(h) << 16); }

BAOBAB_INLINE uint16_t f32_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;  // nearest even
  uint32_t nan = (x >> 16) | 0x0040u;                           // quiet, sign kept
  return uint16_t(f != f ? nan : rounded);  // one SIMD compare (vs. and + compare)
}

// ---------------------------------------------------------------- element policies
// S: the stored type; C: the type the operator works in.

template <class T>
struct Plain {
  using S = T;
  using C = T;
  static BAOBAB_INLINE C load(S x) { return x; }
  static BAOBAB_INLINE S store(C x) { return x; }
};

struct Half {
  using S = uint16_t;
  using C = float;
  static BAOBAB_INLINE C load(S x) { return f16_to_f32(x); }
  static BAOBAB_INLINE S store(C x) { return f32_to_f16(x); }
};

struct BHalf {
  using S = uint16_t;
  using C = float;
  static BAOBAB_INLINE C load(S x) { return bf16_to_f32(x); }
  static BAOBAB_INLINE S store(C x) { return f32_to_bf16(x); }
};

// ---------------------------------------------------------------- operators

// Integer arithmetic is done in an unsigned type at least as wide as unsigned int,
// so it wraps instead of overflowing (int16 * int16 would otherwise promote to
// int and could overflow for uint16). The conversion back is modular (C++20).
template <class T>
using Wrap = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;

template <class F>
using Bits = std::conditional_t<sizeof(F) == 4, uint32_t, uint64_t>;

template <class F>
constexpr Bits<F> kQuiet = Bits<F>(1) << (std::numeric_limits<F>::digits - 2);

// Float min/max that are commutative down to the bits:
//  - a NaN operand gives a quiet NaN; with two NaNs, the OR of both (so the
//    result does not depend on operand order);
//  - equal operands of different sign (+0, -0): min gives -0, max gives +0, by
//    OR-ing resp. AND-ing the bit patterns (a no-op for identical values).
// Written with all-ones/all-zeros masks and a plain a < b ? a : b, which map one
// to one onto SIMD compares and vminps/vmaxps; GCC vectorises this markedly
// better than the equivalent chain of ?:.
template <class F, bool IsMin>
BAOBAB_INLINE F float_minmax(F a, F b) {
  using U = Bits<F>;
  U ua = std::bit_cast<U>(a), ub = std::bit_cast<U>(b);
  U eq = U(0) - U(a == b);
  U an = U(0) - U(a != a), bn = U(0) - U(b != b), un = an | bn;
  U nan = (ua & an) | (ub & bn) | kQuiet<F>;
  // Ordered operands: the usual choice, which gives b when a == b; then fix the
  // sign of a zero tie (for equal non-zero values ua == ub and nothing changes).
  U r = IsMin ? (std::bit_cast<U>(a < b ? a : b) | (eq & ua))
              : (std::bit_cast<U>(b < a ? a : b) & (~eq | ua));
  return std::bit_cast<F>((r & ~un) | (nan & un));
}

struct Sum {
  template <class T>
  static BAOBAB_INLINE T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return T(Wrap<T>(a) + Wrap<T>(b));
    else return a + b;
  }
};

struct Prod {
  template <class T>
  static BAOBAB_INLINE T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return T(Wrap<T>(a) * Wrap<T>(b));
    else return a * b;
  }
};

struct Min {
  template <class T>
  static BAOBAB_INLINE T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return b < a ? b : a;
    else return float_minmax<T, true>(a, b);
  }
};

struct Max {
  template <class T>
  static BAOBAB_INLINE T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return a < b ? b : a;
    else return float_minmax<T, false>(a, b);
  }
};

// ---------------------------------------------------------------- kernels

// The main loop of every kernel runs over a multiple of 64 bytes and tells the
// compiler that iterations are independent (true even when dst == a or dst == b:
// element i is read before it is written and nothing else touches it). Without a
// run-time overlap check or a remainder, GCC vectorises even at -O2, where its
// "very cheap" cost model refuses loops that need either; at -O3 the hint just
// saves the overlap check. The remainder (under 64 bytes) runs as a plain loop.
template <class E, class Op>
BAOBAB_INLINE void loop(void* dst, const void* a, const void* b, size_t n) {
  using S = typename E::S;
  auto* d = static_cast<S*>(dst);
  auto* x = static_cast<const S*>(a);
  auto* y = static_cast<const S*>(b);
  size_t i = 0;
  if constexpr (std::is_same_v<S, uint16_t> && std::is_same_v<typename E::C, float>) {
    // 16-bit floats go two at a time through one 32-bit word: element 2k is the
    // low half and 2k+1 the high half on little-endian machines (the reverse on
    // big-endian, which is harmless since both halves are treated alike). The
    // vectorised loop then works on 32-bit lanes with shifts and masks only,
    // instead of widening and narrowing 16-bit lanes with shuffles, which
    // otherwise dominate the cost.
    const size_t words = (n / 2) & ~size_t(15);
    BAOBAB_IVDEP
    for (size_t w = 0; w < words; ++w) {
      uint32_t wa, wb;
      std::memcpy(&wa, x + 2 * w, 4);
      std::memcpy(&wb, y + 2 * w, 4);
      uint32_t lo = E::store(Op::f(E::load(uint16_t(wa)), E::load(uint16_t(wb))));
      uint32_t hi = E::store(Op::f(E::load(uint16_t(wa >> 16)), E::load(uint16_t(wb >> 16))));
      uint32_t r = lo | hi << 16;
      std::memcpy(d + 2 * w, &r, 4);
    }
    i = 2 * words;
  } else {
    const size_t nv = n & ~(64 / sizeof(S) - 1);
    BAOBAB_IVDEP
    for (; i < nv; ++i) d[i] = E::store(Op::f(E::load(x[i]), E::load(y[i])));
  }
  for (; i < n; ++i) d[i] = E::store(Op::f(E::load(x[i]), E::load(y[i])));
}

template <class E, class Op>
void k_base(void* dst, const void* a, const void* b, size_t n) {
  loop<E, Op>(dst, a, b, n);
}

#ifdef BAOBAB_SIMD_X86
template <class E, class Op>
BAOBAB_SIMD_AVX2_FN void k_avx2(void* dst, const void* a, const void* b, size_t n) {
  loop<E, Op>(dst, a, b, n);
}

template <class E, class Op>
BAOBAB_SIMD_AVX512_FN void k_avx512(void* dst, const void* a, const void* b, size_t n) {
  loop<E, Op>(dst, a, b, n);
}

// Eight floats at a time; the same semantics as Op::f<float> lane by lane.
template <class Op>
BAOBAB_SIMD_AVX2_FN BAOBAB_INLINE simd::avx2::F32::V vop(simd::avx2::F32::V a, simd::avx2::F32::V b) {
  using F = simd::avx2::F32;
  if constexpr (std::is_same_v<Op, Sum>) {
    return F::add(a, b);
  } else if constexpr (std::is_same_v<Op, Prod>) {
    return F::mul(a, b);
  } else {
    // float_minmax in SIMD. F::min / F::max give the second operand when the two
    // compare equal or are unordered; the tie and NaN cases are then patched.
    const F::Mask an = F::is_nan(a), bn = F::is_nan(b), eq = F::eq(a, b);
    const F::V nan = F::bit_or(F::bit_or(F::bit_and(a, an), F::bit_and(b, bn)), F::from_bits(kQuiet<float>));
    const F::V r = std::is_same_v<Op, Min> ? F::bit_or(F::min(a, b), F::bit_and(eq, a))        // -0 wins
                                           : F::select(eq, F::max(a, b), F::bit_and(a, b));  // +0 wins
    return F::select(F::bit_or(an, bn), r, nan);
  }
}

template <class Op>
BAOBAB_SIMD_AVX2_FN BAOBAB_INLINE void f16c_step(uint16_t* d, const uint16_t* x, const uint16_t* y) {
  using F = simd::avx2::F32;
  F::store_f16(d, vop<Op>(F::load_f16(x), F::load_f16(y)));
}

template <class Op>
BAOBAB_SIMD_AVX2_FN void k_f16c(void* dst, const void* a, const void* b, size_t n) {
  auto* d = static_cast<uint16_t*>(dst);
  auto* x = static_cast<const uint16_t*>(a);
  auto* y = static_cast<const uint16_t*>(b);
  size_t i = 0;
  // Both loads happen before the store, so dst == a or dst == b is fine.
  for (; i + 16 <= n; i += 16) {
    f16c_step<Op>(d + i, x + i, y + i);
    f16c_step<Op>(d + i + 8, x + i + 8, y + i + 8);
  }
  for (; i + 8 <= n; i += 8) f16c_step<Op>(d + i, x + i, y + i);
  if (i < n) {  // tail: same instructions on a padded copy
    uint16_t ta[8] = {}, tb[8] = {}, td[8];
    std::memcpy(ta, x + i, (n - i) * 2);
    std::memcpy(tb, y + i, (n - i) * 2);
    f16c_step<Op>(td, ta, tb);
    std::memcpy(d + i, td, (n - i) * 2);
  }
}
#endif  // BAOBAB_SIMD_X86

// ---------------------------------------------------------------- dispatch

using simd::Tier;

Tier tier() {
  static const Tier t = simd::select("BAOBAB_REDUCE_ISA");
  return t;
}

template <class E, class Op>
ReduceKernel pick(Tier t) {
#ifdef BAOBAB_SIMD_X86
  if constexpr (std::is_same_v<E, Half>) {
    if (t >= Tier::avx2) return &k_f16c<Op>;
  } else {
    if (t == Tier::avx512) return &k_avx512<E, Op>;
    if (t == Tier::avx2) return &k_avx2<E, Op>;
  }
#else
  (void)t;
#endif
  return &k_base<E, Op>;
}

template <class E>
ReduceKernel pick_op(Tier t, RedOp op) {
  switch (op) {
    case RedOp::sum: return pick<E, Sum>(t);
    case RedOp::prod: return pick<E, Prod>(t);
    case RedOp::min: return pick<E, Min>(t);
    case RedOp::max: return pick<E, Max>(t);
    default: return nullptr;
  }
}

std::string describe(DType dtype, RedOp op) {
  auto dn = dtype_name(dtype), on = redop_name(op);
  std::string s = "dtype ";
  s += dn == "?" ? "<invalid " + std::to_string(unsigned(dtype)) + ">" : std::string(dn);
  s += " with op ";
  s += on == "?" ? "<invalid " + std::to_string(unsigned(op)) + ">" : std::string(on);
  return s;
}

}  // namespace

ReduceKernel reduce_kernel(DType dtype, RedOp op) {
  Tier t = tier();
  ReduceKernel k = nullptr;
  switch (dtype) {
    case DType::f16: k = pick_op<Half>(t, op); break;
    case DType::bf16: k = pick_op<BHalf>(t, op); break;
    case DType::f32: k = pick_op<Plain<float>>(t, op); break;
    case DType::f64: k = pick_op<Plain<double>>(t, op); break;
    case DType::i8: k = pick_op<Plain<int8_t>>(t, op); break;
    case DType::i16: k = pick_op<Plain<int16_t>>(t, op); break;
    case DType::i32: k = pick_op<Plain<int32_t>>(t, op); break;
    case DType::i64: k = pick_op<Plain<int64_t>>(t, op); break;
    case DType::u8: k = pick_op<Plain<uint8_t>>(t, op); break;
    case DType::u16: k = pick_op<Plain<uint16_t>>(t, op); break;
    case DType::u32: k = pick_op<Plain<uint32_t>>(t, op); break;
    case DType::u64: k = pick_op<Plain<uint64_t>>(t, op); break;
    default: break;  // byte (opaque) and out-of-range values
  }
  if (!k) {
    std::string why = dtype == DType::byte ? " (byte is opaque data and cannot be reduced)" : "";
    throw InvalidArgument("reduce: no reduction kernel for " + describe(dtype, op) + why);
  }
  return k;
}

}  // namespace baobab

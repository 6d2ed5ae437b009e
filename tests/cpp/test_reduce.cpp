// Tests for the typed reduction kernels (core/src/reduce/kernels.cpp).
//
// Every (dtype, op) is checked element by element against a slow reference that
// shares no code with the kernels: float16 and bfloat16 are decoded with ldexp and
// rounded by searching a table of all representable values. Covered: special
// values (+-0, +-inf, NaNs, subnormals, max finite), random pairs, all 65536
// 16-bit patterns against a set of partners, aliasing (dst == a, dst == b,
// a == b == dst), lengths that exercise vector tails, misaligned pointers, and
// no writes outside [dst, dst + n).
//
// The kernels pick an instruction set tier at run time. The test re-runs itself
// (with --child) under BAOBAB_REDUCE_ISA=baseline/avx2/avx512 and requires every
// tier to pass and to produce the same digest of all outputs, bit for bit.
//
// Finally it prints (does not assert) the throughput of a few kernels over 8 MiB
// arrays next to memcpy.
//
// Usage: test_reduce [--child]   exit status 0 on success.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "baobab/dtype.hpp"
#include "baobab/error.hpp"
#include "baobab/reduce.hpp"

#if defined(__linux__)
#include <unistd.h>
#endif

using namespace baobab;

namespace {

int g_failures = 0;

void fail(const std::string& msg) {
  if (++g_failures <= 40) std::printf("FAIL: %s\n", msg.c_str());
  else if (g_failures == 41) std::printf("FAIL: (further failures not printed)\n");
}

// The bit pattern of an integer (int8 -1 prints as 0xff).
template <class T>
std::string hex(T v) {
  char buf[32];
  auto u = static_cast<unsigned long long>(static_cast<std::make_unsigned_t<T>>(v));
  std::snprintf(buf, sizeof buf, "0x%llx", u);
  return buf;
}

constexpr RedOp kOps[] = {RedOp::sum, RedOp::prod, RedOp::min, RedOp::max};

// FNV-1a over every kernel output, to compare instruction set tiers.
uint64_t g_digest = 1469598103934665603ull;
void digest(const void* p, size_t bytes) {
  auto* c = static_cast<const unsigned char*>(p);
  for (size_t i = 0; i < bytes; ++i) g_digest = (g_digest ^ c[i]) * 1099511628211ull;
}

std::mt19937_64 g_rng(12345);  // fixed seed: every tier sees the same inputs
uint64_t rnd() { return g_rng(); }

// ---------------------------------------------------------------- reference 16-bit floats

// A 16-bit float format: `mant` explicit mantissa bits, the rest exponent and sign.
struct Fmt16 {
  int mant;                   // 10 for float16, 7 for bfloat16
  int bias;                   // 15 or 127
  uint16_t quiet;             // the quiet-NaN bit
  std::vector<double> value;  // value[k] for k = 0 .. inf bits; value[inf] = 2^(emax+1)

  uint16_t exp_mask() const { return uint16_t(0x7FFF & ~((1u << mant) - 1)); }
  uint16_t inf() const { return exp_mask(); }

  bool is_nan(uint16_t h) const { return (h & 0x7FFF) > inf(); }

  // Textbook decoding.
  double decode(uint16_t h) const {
    int e = (h & 0x7FFF) >> mant;
    int m = h & ((1 << mant) - 1);
    int emax_field = (1 << (15 - mant)) - 1;
    double v;
    if (e == emax_field) v = m ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
    else if (e == 0) v = std::ldexp(double(m), 1 - bias - mant);
    else v = std::ldexp(double(m + (1 << mant)), e - bias - mant);
    return (h & 0x8000) ? -v : v;
  }

  Fmt16(int mant_bits, int bias_)
      : mant(mant_bits), bias(bias_), quiet(uint16_t(1u << (mant_bits - 1))) {
    for (unsigned k = 0; k < inf(); ++k) value.push_back(decode(uint16_t(k)));
    // Rounding to nearest treats infinity as the next power of two (IEEE 754 7.4).
    value.push_back(std::ldexp(1.0, (1 << (15 - mant)) - 1 - bias));
  }

  // Round a non-NaN double to the nearest value, ties to even, by table search.
  // The midpoint of two neighbours is exact in double, so the comparison is exact.
  uint16_t round(double x) const {
    uint16_t sign = std::signbit(x) ? 0x8000 : 0;
    double a = std::fabs(x);
    if (a >= value.back()) return sign | inf();
    // Binary search for value[k] <= a < value[k + 1] (value[0] = 0 <= a).
    const double* v = value.data();
    size_t k = 0, hi = value.size() - 1;
    while (hi - k > 1) {
      size_t m = (k + hi) / 2;
      if (v[m] <= a) k = m;
      else hi = m;
    }
    if (v[k] == a) return uint16_t(sign | k);
    double mid = (v[k] + v[k + 1]) / 2;
    size_t r = a < mid ? k : a > mid ? k + 1 : (k % 2 == 0 ? k : k + 1);
    return uint16_t(sign | r);
  }
};

const Fmt16& fmt_f16() {
  static const Fmt16 f(10, 15);
  return f;
}
const Fmt16& fmt_bf16() {
  static const Fmt16 f(7, 127);
  return f;
}

// ---------------------------------------------------------------- reference ops

template <class F>
F ref_float(RedOp op, F a, F b) {
  switch (op) {
    case RedOp::sum: return a + b;
    case RedOp::prod: return a * b;
    default: break;
  }
  bool is_min = op == RedOp::min;
  if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<F>::quiet_NaN();
  if (a == b) {
    if (std::signbit(a) != std::signbit(b)) return is_min ? F(-0.0) : F(0.0);
    return a;
  }
  return is_min ? (a < b ? a : b) : (a > b ? a : b);
}

template <class T>
T ref_int(RedOp op, T a, T b) {
  // uint64_t arithmetic is modular; truncation to T is modular too.
  switch (op) {
    case RedOp::sum: return T(uint64_t(a) + uint64_t(b));
    case RedOp::prod: return T(uint64_t(a) * uint64_t(b));
    case RedOp::min: return std::min(a, b);
    default: return std::max(a, b);
  }
}

// ---------------------------------------------------------------- per-dtype traits

template <class F, class U>
struct FloatTraits {
  using S = U;
  static bool is_nan(S x) { F f; std::memcpy(&f, &x, sizeof f); return std::isnan(f); }
  static bool is_quiet(S x) { return (x >> (std::numeric_limits<F>::digits - 2)) & 1; }
  static S ref(RedOp op, S a, S b) {
    F fa, fb;
    std::memcpy(&fa, &a, sizeof fa);
    std::memcpy(&fb, &b, sizeof fb);
    F r = ref_float(op, fa, fb);
    S s;
    std::memcpy(&s, &r, sizeof s);
    return s;
  }
};

template <const Fmt16& (*Fmt)()>
struct Half16Traits {
  using S = uint16_t;
  static bool is_nan(S x) { return Fmt().is_nan(x); }
  static bool is_quiet(S x) { return x & Fmt().quiet; }
  static S ref(RedOp op, S a, S b) {
    // Operands become float32 exactly, the op runs in float32, one rounding.
    float r = ref_float(op, float(Fmt().decode(a)), float(Fmt().decode(b)));
    return std::isnan(r) ? uint16_t(Fmt().inf() | Fmt().quiet) : Fmt().round(r);
  }
};

template <class T>
struct IntTraits {
  using S = T;
  static bool is_nan(S) { return false; }
  static bool is_quiet(S) { return true; }
  static S ref(RedOp op, S a, S b) { return ref_int(op, a, b); }
};

// Results agree if they have the same bits, or are both NaN and the actual one is
// quiet (NaN payloads are not specified).
template <class Tr>
bool agree(typename Tr::S expected, typename Tr::S actual) {
  if (Tr::is_nan(expected)) return Tr::is_nan(actual) && Tr::is_quiet(actual);
  return expected == actual;
}

// Add results to the digest. The NaN payload of a sum or product of two NaNs is
// whichever operand the instruction lists first, and compilers may swap the
// operands of a commutative operation, so those NaNs count by class only. min and
// max define their NaN bits (commutatively), so they count in full.
template <class Tr>
void digest_results(RedOp op, const typename Tr::S* d, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    typename Tr::S x = d[i];
    unsigned char nan = (op == RedOp::sum || op == RedOp::prod) && Tr::is_nan(x);
    if (nan) x = 0;
    digest(&x, sizeof x);
    digest(&nan, 1);
  }
}

// ---------------------------------------------------------------- input values

// Special values of each type, and a generator that mixes them with random bit
// patterns and moderate random values (so sums and products round, not overflow).
template <class S>
struct Values {
  std::vector<S> special;
  S (*moderate)();
  S next() const {
    switch (rnd() % 4) {
      case 0: return special[rnd() % special.size()];
      case 1: return S(rnd());
      default: return moderate();
    }
  }
};

uint16_t moderate_f16() {  // exponent field 8..22: magnitudes 2^-7 .. 2^7
  uint64_t r = rnd();
  return uint16_t((r & 0x8000) | ((8 + (r >> 20) % 15) << 10) | (r & 0x3FF));
}
uint16_t moderate_bf16() {
  uint64_t r = rnd();
  return uint16_t((r & 0x8000) | ((120 + (r >> 20) % 15) << 7) | (r & 0x7F));
}
uint32_t moderate_f32() {
  uint64_t r = rnd();
  return uint32_t((r & 0x80000000u) | ((120 + (r >> 40) % 15) << 23) | (r & 0x7FFFFF));
}
uint64_t moderate_f64() {
  uint64_t r = rnd();
  uint64_t e = 1016 + rnd() % 15;
  return (r & 0x8000000000000000ull) | (e << 52) | (r & 0xFFFFFFFFFFFFFull);
}
template <class T>
T moderate_int() {
  return T(rnd() % 2 ? rnd() % 200 : -(rnd() % 200));
}

Values<uint16_t> values_f16() {
  return {{0x0000, 0x8000, 0x0001, 0x8001, 0x0200, 0x03FF, 0x83FF, 0x0400, 0x8400, 0x3C00,
           0xBC00, 0x3555, 0x4000, 0x7800, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0xFE00,
           0x7C01, 0xFD55, 0x1400, 0x1C00},
          moderate_f16};
}
Values<uint16_t> values_bf16() {
  return {{0x0000, 0x8000, 0x0001, 0x8001, 0x0040, 0x007F, 0x807F, 0x0080, 0x8080, 0x3F80,
           0xBF80, 0x3EAB, 0x4000, 0x7F00, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0xFFC0,
           0x7F81, 0xFFA5, 0x1F80, 0x0F80},
          moderate_bf16};
}
Values<uint32_t> values_f32() {
  return {{0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007FFFFFu, 0x00800000u,
           0x80800000u, 0x3F800000u, 0xBF800000u, 0x3DCCCCCDu, 0x7F7FFFFFu, 0xFF7FFFFFu,
           0x7F800000u, 0xFF800000u, 0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FA12345u,
           0x1F800000u, 0x5F800000u},
          moderate_f32};
}
Values<uint64_t> values_f64() {
  return {{0x0ull, 0x8000000000000000ull, 0x1ull, 0x8000000000000001ull, 0x000FFFFFFFFFFFFFull,
           0x0010000000000000ull, 0x3FF0000000000000ull, 0xBFF0000000000000ull,
           0x3FB999999999999Aull, 0x7FEFFFFFFFFFFFFFull, 0xFFEFFFFFFFFFFFFFull,
           0x7FF0000000000000ull, 0xFFF0000000000000ull, 0x7FF8000000000000ull,
           0xFFF8000000000000ull, 0x7FF0000000000001ull, 0x7FF4000012345678ull,
           0x1FF0000000000000ull, 0x5FF0000000000000ull},
          moderate_f64};
}
template <class T>
Values<T> values_int() {
  using L = std::numeric_limits<T>;
  return {{T(0), T(1), T(T(0) - 1), T(2), L::min(), L::max(), T(L::min() + 1), T(L::max() - 1),
           T(L::max() / 2 + 1)},
          moderate_int<T>};
}

// ---------------------------------------------------------------- checks

template <class Tr>
void check_elements(const char* what, DType dt, RedOp op, const typename Tr::S* a,
                    const typename Tr::S* b, const typename Tr::S* got, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    auto want = Tr::ref(op, a[i], b[i]);
    if (!agree<Tr>(want, got[i])) {
      fail(std::string(dtype_name(dt)) + " " + std::string(redop_name(op)) + " " + what +
           " [" + std::to_string(i) + "]: a=" + hex(a[i]) + " b=" + hex(b[i]) +
           " got=" + hex(got[i]) + " want=" + hex(want));
    }
  }
}

template <class Tr>
void test_dtype(DType dt, const Values<typename Tr::S>& vals) {
  using S = typename Tr::S;
  const std::string name(dtype_name(dt));
  for (RedOp op : kOps) {
    ReduceKernel k = reduce_kernel(dt, op);
    const std::string tag = name + " " + std::string(redop_name(op));

    // All pairs of special values, then random pairs.
    std::vector<S> a, b;
    for (S x : vals.special)
      for (S y : vals.special) a.push_back(x), b.push_back(y);
    for (int i = 0; i < 50000; ++i) a.push_back(vals.next()), b.push_back(vals.next());
    std::vector<S> d(a.size()), d2(a.size());
    k(d.data(), a.data(), b.data(), a.size());
    check_elements<Tr>("pairs", dt, op, a.data(), b.data(), d.data(), a.size());
    digest_results<Tr>(op, d.data(), d.size());

    // min and max must be commutative down to the bits (NaN payloads included).
    if (op == RedOp::min || op == RedOp::max) {
      k(d2.data(), b.data(), a.data(), a.size());
      for (size_t i = 0; i < a.size(); ++i)
        if (d[i] != d2[i]) {
          fail(tag + " not commutative: a=" + hex(a[i]) + " b=" + hex(b[i]) + " -> " + hex(d[i]) +
               " vs " + hex(d2[i]));
          break;
        }
    }

    // Lengths around vector widths and tails, misaligned by one element, with every
    // aliasing pattern; guard elements around the destination must stay untouched.
    for (size_t n : {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 1003}) {
      for (size_t off : {0, 1}) {
        for (int mode = 0; mode < 4; ++mode) {  // separate, dst==a, dst==b, dst==a==b
          const size_t len = n + off + 3;
          std::vector<S> A(len), B(len), D(len);
          for (auto& x : A) x = vals.next();
          for (auto& x : B) x = vals.next();
          for (auto& x : D) x = vals.next();
          if (mode == 3) B = A;
          const std::vector<S> A0 = A, B0 = B;
          S* dst = mode == 1 || mode == 3 ? A.data() : mode == 2 ? B.data() : D.data();
          const S* pa = A.data() + off;
          const S* pb = mode == 3 ? pa : B.data() + off;
          std::vector<S> before(dst, dst + len);
          k(dst + off, pa, pb, n);
          const std::string what = "n=" + std::to_string(n) + " off=" + std::to_string(off) +
                                   " mode=" + std::to_string(mode);
          check_elements<Tr>(what.c_str(), dt, op, A0.data() + off, B0.data() + off, dst + off, n);
          for (size_t i = 0; i < len; ++i)
            if ((i < off || i >= off + n) && dst[i] != before[i]) {
              fail(tag + " " + what + ": wrote outside the destination at " + std::to_string(i));
              break;
            }
          digest_results<Tr>(op, dst + off, n);
        }
      }
    }
  }
}

// All 65536 patterns of a 16-bit float format: reference round trip, kernel
// identities, and every pattern against a set of partners in both orders.
template <class Tr>
void test_exhaustive16(DType dt, const Fmt16& f, const Values<uint16_t>& vals) {
  const std::string name(dtype_name(dt));
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = uint16_t(i);

  // The reference itself: decode then round gives back every non-NaN pattern.
  for (uint16_t h : all) {
    double v = f.decode(h);
    if (f.is_nan(h) != std::isnan(v)) fail(name + " reference decode NaN class " + hex(h));
    if (!f.is_nan(h) && f.round(v) != h) fail(name + " reference round trip " + hex(h));
    if (!f.is_nan(h) && double(float(v)) != v) fail(name + " not exact in float32 " + hex(h));
  }

  // Kernel identities: x + -0 = x, x * 1 = x, min(x, x) = max(x, x) = x. A NaN
  // comes back quiet with its sign and payload (what x86 and Arm FPUs do).
  const uint16_t one = f.round(1.0);
  const std::pair<RedOp, uint16_t> ident[] = {
      {RedOp::sum, 0x8000}, {RedOp::prod, one}, {RedOp::min, 0}, {RedOp::max, 0}};
  for (auto [op, partner] : ident) {
    std::vector<uint16_t> b(all.size(), partner), d(all.size());
    if (op == RedOp::min || op == RedOp::max) b = all;
    reduce_kernel(dt, op)(d.data(), all.data(), b.data(), all.size());
    for (uint16_t h : all) {
      uint16_t want = f.is_nan(h) ? uint16_t(h | f.quiet) : h;
#if !defined(__x86_64__) && !defined(__aarch64__)
      if (f.is_nan(h)) want = Tr::is_nan(d[h]) ? d[h] : want;  // payload unspecified
#endif
      if (d[h] != want)
        fail(name + " " + std::string(redop_name(op)) + " identity: x=" + hex(h) + " got " +
             hex(d[h]) + " want " + hex(want));
    }
    digest_results<Tr>(op, d.data(), d.size());
  }

  // Every pattern against specials and random partners, both operand orders.
  std::vector<uint16_t> partners = vals.special;
  for (int i = 0; i < 6; ++i) partners.push_back(uint16_t(rnd()));
  for (int i = 0; i < 6; ++i) partners.push_back(vals.moderate());
  std::vector<uint16_t> b(all.size()), d(all.size());
  for (RedOp op : kOps) {
    ReduceKernel k = reduce_kernel(dt, op);
    for (uint16_t p : partners) {
      std::fill(b.begin(), b.end(), p);
      k(d.data(), all.data(), b.data(), all.size());
      check_elements<Tr>("all x p", dt, op, all.data(), b.data(), d.data(), all.size());
      digest_results<Tr>(op, d.data(), d.size());
      k(d.data(), b.data(), all.data(), all.size());
      check_elements<Tr>("p x all", dt, op, b.data(), all.data(), d.data(), all.size());
      digest_results<Tr>(op, d.data(), d.size());
    }
  }
}

// Targeted rounding cases for float16: ties and overflow boundaries.
void test_f16_rounding() {
  struct Case {
    uint16_t a, b;
    RedOp op;
    uint16_t want;
  } cases[] = {
      {0x7BFF, 0x4C00, RedOp::sum, 0x7C00},  // 65504 + 16 = 65520: tie, rounds to even = inf
      {0x7BFF, 0x4B00, RedOp::sum, 0x7BFF},  // 65504 + 14 rounds down
      {0x0001, 0x3800, RedOp::prod, 0x0000}, // 2^-24 * 0.5: tie to even = 0
      {0x0003, 0x3800, RedOp::prod, 0x0002}, // 3 * 2^-25: tie to even = 2 * 2^-24
      {0x8001, 0x3800, RedOp::prod, 0x8000}, // -2^-25 rounds to -0
      {0x03FF, 0x0001, RedOp::sum, 0x0400},  // largest subnormal + min = smallest normal
      {0x3C00, 0x1000, RedOp::sum, 0x3C00},  // 1 + 2^-11: tie to even = 1
      {0x3C01, 0x1000, RedOp::sum, 0x3C02},  // (1 + 2^-10) + 2^-11: tie to even, up
      {0x7C00, 0xFC00, RedOp::sum, 0x7E00},  // inf - inf = NaN (checked as NaN)
      {0x0000, 0x8000, RedOp::min, 0x8000},  // min(+0, -0) = -0
      {0x8000, 0x0000, RedOp::max, 0x0000},  // max(-0, +0) = +0
      {0x7E00, 0x3C00, RedOp::min, 0x7E00},  // NaN propagates
      {0x3C00, 0x7E00, RedOp::max, 0x7E00},
  };
  for (const Case& c : cases) {
    uint16_t got;
    reduce_kernel(DType::f16, c.op)(&got, &c.a, &c.b, 1);
    if (!agree<Half16Traits<fmt_f16>>(c.want, got))
      fail("float16 " + std::string(redop_name(c.op)) + " " + hex(c.a) + ", " + hex(c.b) + " = " +
           hex(got) + ", want " + hex(c.want));
  }
}

void test_invalid() {
  auto expect_throw = [](DType dt, RedOp op, const char* must_mention) {
    try {
      reduce_kernel(dt, op);
      fail("no exception for dtype " + std::to_string(unsigned(dt)) + " op " +
           std::to_string(unsigned(op)));
    } catch (const InvalidArgument& e) {
      if (must_mention && !std::strstr(e.what(), must_mention))
        fail(std::string("message does not mention '") + must_mention + "': " + e.what());
    } catch (...) {
      fail("wrong exception type for dtype " + std::to_string(unsigned(dt)));
    }
  };
  for (RedOp op : kOps) expect_throw(DType::byte, op, "byte");
  expect_throw(DType::byte, RedOp::max, "max");
  expect_throw(DType::count_, RedOp::sum, nullptr);
  expect_throw(static_cast<DType>(200), RedOp::sum, "sum");
  expect_throw(DType::f32, RedOp::count_, "float32");
  expect_throw(DType::i32, static_cast<RedOp>(77), "int32");
}

// ---------------------------------------------------------------- throughput

double best_seconds(int reps, const auto& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
  }
  return best;
}

void bench(const char* tier) {
  const size_t bytes = 8u << 20;
  std::vector<unsigned char> a(bytes), b(bytes), d(bytes);
  for (size_t i = 0; i < bytes; i += 2) {  // small finite values in every format
    a[i] = b[i] = 0;
    a[i + 1] = b[i + 1] = 0x3C;
  }
  const int reps = 15;
  double t = best_seconds(reps, [&] { std::memcpy(d.data(), a.data(), bytes); });
  std::printf("[%s] bench memcpy 8 MiB: %.1f GB/s (src+dst bytes)\n", tier, 2 * bytes / t / 1e9);
  struct {
    DType dt;
    const char* name;
  } cases[] = {
      {DType::f32, "float32 sum"}, {DType::bf16, "bfloat16 sum"}, {DType::f16, "float16 sum"}};
  for (auto c : cases) {
    ReduceKernel k = reduce_kernel(c.dt, RedOp::sum);
    size_t n = bytes / dtype_size(c.dt);
    double ts = best_seconds(reps, [&] { k(d.data(), a.data(), b.data(), n); });
    double ti = best_seconds(reps, [&] { k(a.data(), a.data(), b.data(), n); });
    std::printf("[%s] bench %-12s 8 MiB: %.1f GB/s, in place %.1f GB/s (dst+a+b bytes)\n", tier,
                c.name, 3 * bytes / ts / 1e9, 3 * bytes / ti / 1e9);
  }
}

// ---------------------------------------------------------------- driver

int run_all() {
  test_invalid();
  test_f16_rounding();
  test_exhaustive16<Half16Traits<fmt_f16>>(DType::f16, fmt_f16(), values_f16());
  test_exhaustive16<Half16Traits<fmt_bf16>>(DType::bf16, fmt_bf16(), values_bf16());
  test_dtype<Half16Traits<fmt_f16>>(DType::f16, values_f16());
  test_dtype<Half16Traits<fmt_bf16>>(DType::bf16, values_bf16());
  test_dtype<FloatTraits<float, uint32_t>>(DType::f32, values_f32());
  test_dtype<FloatTraits<double, uint64_t>>(DType::f64, values_f64());
  test_dtype<IntTraits<int8_t>>(DType::i8, values_int<int8_t>());
  test_dtype<IntTraits<int16_t>>(DType::i16, values_int<int16_t>());
  test_dtype<IntTraits<int32_t>>(DType::i32, values_int<int32_t>());
  test_dtype<IntTraits<int64_t>>(DType::i64, values_int<int64_t>());
  test_dtype<IntTraits<uint8_t>>(DType::u8, values_int<uint8_t>());
  test_dtype<IntTraits<uint16_t>>(DType::u16, values_int<uint16_t>());
  test_dtype<IntTraits<uint32_t>>(DType::u32, values_int<uint32_t>());
  test_dtype<IntTraits<uint64_t>>(DType::u64, values_int<uint64_t>());
  return g_failures;
}

#if defined(__linux__)
// Re-run this program under each tier; each must pass and report our digest.
void run_tiers(uint64_t want_digest) {
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) {
    std::printf("note: cannot find own executable; tiers not cross-checked\n");
    return;
  }
  self[len] = 0;
  for (const char* tier : {"baseline", "avx2", "avx512"}) {
    std::string cmd = std::string("BAOBAB_REDUCE_ISA=") + tier + " '" + self + "' --child";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) {
      fail(std::string("cannot run tier ") + tier);
      continue;
    }
    char line[512];
    unsigned long long child_digest = 0;
    bool got = false;
    while (std::fgets(line, sizeof line, p)) {
      if (std::sscanf(line, "digest %llx", &child_digest) == 1) got = true;
      else std::printf("  %s", line);
    }
    int status = pclose(p);
    if (status != 0) fail(std::string("tier ") + tier + " failed");
    if (!got || child_digest != want_digest)
      fail(std::string("tier ") + tier + " gives different bits: digest " + hex(child_digest) +
           " vs " + hex(want_digest));
    else std::printf("tier %s: passed, same digest\n", tier);
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  const bool child = argc > 1 && std::strcmp(argv[1], "--child") == 0;
  const char* tier = std::getenv("BAOBAB_REDUCE_ISA");
  run_all();
  if (child) {
    std::printf("digest %llx\n", static_cast<unsigned long long>(g_digest));
    bench(tier ? tier : "default");
    return g_failures ? 1 : 0;
  }
  std::printf("default tier: %s, digest %s\n", g_failures ? "FAILED" : "passed",
              hex(g_digest).c_str());
#if defined(__linux__)
  run_tiers(g_digest);
#endif
  bench(tier ? tier : "default");
  if (g_failures) {
    std::printf("test_reduce: %d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("test_reduce: all checks passed\n");
  return 0;
}

// Tests for the SIMD layer (baobab/simd.hpp, baobab/simd_tiers.hpp), written
// the way a kernel uses it: a body (test_simd.inc) compiled once per tier by
// simd_tiers.hpp and called through BAOBAB_SIMD_DISPATCH, on every tier this
// CPU runs. Lane by lane against scalar C++:
//  - add, sub, mul, div, sqrt, inv_sqrt: the IEEE results (bitwise); fma fused
//    on the x86 tiers (std::fma), a * b + c on baseline; fnma likewise;
//  - min / max: b when the lanes compare equal or either is NaN;
//  - load_aligned / store_aligned, lanes_lt, select, fill_below, fill_from,
//    load_n (nothing read past n: the next page is unreadable), hsum,
//    neginf_to_zero, load_i64 / eq_i64;
//  - exp against std::exp: under 1 ulp (float) resp. 4e-16 relative (double)
//    on [-87, 88] resp. [-700, 700], exactly 0 below ln(min normal) (x86
//    tiers) and for -inf, +inf above ln(max), NaN for NaN;
//  - avx2::F32's float16 loads and stores against the F16C-free conversion
//    of every finite half and a round trip of every float16 bit pattern;
// and the tier functions: name, tiers() (baseline first, cpu() last),
// available(), capped() and select() under BAOBAB_TEST_ISA, check_caps()
// naming a bad BAOBAB_*_ISA variable.
//
// Usage: test_simd   exit status 0 on success.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "baobab/error.hpp"
#include "baobab/simd.hpp"

namespace {

int g_failures = 0;
int g_checks = 0;

void fail(const std::string& msg) {
  if (++g_failures <= 40) std::printf("FAIL: %s\n", msg.c_str());
}

void check(bool ok, const std::string& what) {
  ++g_checks;
  if (!ok) fail(what);
}

template <class T>
bool same_bits(T a, T b) {
  if (std::isnan(a) && std::isnan(b)) return true;
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Test inputs: finite values of many magnitudes, signed zeros, infinities, NaN.
template <class T>
std::vector<T> inputs(std::mt19937_64& g) {
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  std::vector<T> v = {T(0), -T(0), T(1), T(-1), T(0.5), T(3), inf, -inf, nan, std::numeric_limits<T>::min(),
                      std::numeric_limits<T>::max(), std::numeric_limits<T>::denorm_min()};
  std::uniform_real_distribution<double> u(-30, 30);
  std::normal_distribution<double> nd;
  while (v.size() < 256) v.push_back(T(nd(g) * std::exp2(std::round(u(g)))));
  return v;
}

// The reference decoding of an IEEE binary16.
[[maybe_unused]] float half_value(uint16_t h) {
  const int e = (h >> 10) & 31, m = h & 1023;
  const float s = (h & 0x8000) ? -1.f : 1.f;
  if (e == 0) return s * std::ldexp(float(m), -24);
  if (e == 31) return m ? std::numeric_limits<float>::quiet_NaN() : s * std::numeric_limits<float>::infinity();
  return s * std::ldexp(float(1024 + m), e - 25);
}

}  // namespace

#define BAOBAB_SIMD_BODY "test_simd.inc"
#define BAOBAB_SIMD_NAMESPACE simd_test
#include "baobab/simd_tiers.hpp"

namespace {

using baobab::simd::Tier;

void test_tier_functions() {
  namespace simd = baobab::simd;
  const std::vector<Tier> ts = simd::tiers();
  check(!ts.empty() && ts.front() == Tier::baseline && ts.back() == simd::cpu(), "tiers(): baseline .. cpu()");
  check(std::string(simd::name(Tier::avx2)) == "avx2" && std::string(simd::name(Tier::avx512)) == "avx512",
        "name()");
  for (Tier t : ts) check(simd::available(simd::name(t), "test") == t, std::string("available ") + simd::name(t));
  try {
    simd::available("sse9", "my kernel");
    fail("available('sse9') did not throw");
  } catch (const baobab::InvalidArgument& e) {
    check(std::strstr(e.what(), "my kernel") && std::strstr(e.what(), "sse9"), "available() message names both");
  }
  unsetenv("BAOBAB_TEST_ISA");
  check(simd::select("BAOBAB_TEST_ISA") == simd::cpu(), "select(): unset gives cpu()");
  setenv("BAOBAB_TEST_ISA", "baseline", 1);
  check(simd::select("BAOBAB_TEST_ISA") == Tier::baseline, "select(): capped to baseline");
  setenv("BAOBAB_TEST_ISA", "avx512", 1);
  check(simd::select("BAOBAB_TEST_ISA") == simd::cpu(), "select(): a cap never raises the tier");
  check(simd::capped(Tier::avx2, "BAOBAB_TEST_ISA") == Tier::avx2, "capped(avx2, avx512) = avx2");
  setenv("BAOBAB_TEST_ISA", "avx3", 1);
  try {
    simd::select("BAOBAB_TEST_ISA");
    fail("select() accepted avx3");
  } catch (const baobab::InvalidArgument& e) {
    check(std::strstr(e.what(), "BAOBAB_TEST_ISA='avx3'") != nullptr, "select() message names the variable");
  }
  try {
    simd::check_caps();
    fail("check_caps() accepted BAOBAB_TEST_ISA=avx3");
  } catch (const baobab::InvalidArgument& e) {
    check(std::strstr(e.what(), "BAOBAB_TEST_ISA") != nullptr, "check_caps() names the variable");
  }
  setenv("BAOBAB_TEST_ISA", "avx2", 1);
  setenv("BAOBAB_NOT_A_CAP", "x", 1);  // not *_ISA: not checked
  try {
    simd::check_caps();
    ++g_checks;
  } catch (const baobab::InvalidArgument& e) {
    fail(std::string("check_caps() refused good values: ") + e.what());
  }
  unsetenv("BAOBAB_TEST_ISA");
  unsetenv("BAOBAB_NOT_A_CAP");
}

}  // namespace

namespace simd_test {
void run_tier(Tier t) { BAOBAB_SIMD_DISPATCH(t, run()); }  // in the namespace that holds tier_<t>
}  // namespace simd_test

int main() {
  test_tier_functions();
  for (Tier t : baobab::simd::tiers()) {
    const int before = g_failures;
    simd_test::run_tier(t);
    std::printf("tier %-8s %s\n", baobab::simd::name(t), g_failures == before ? "passed" : "FAILED");
  }
  if (g_failures) {
    std::printf("test_simd: %d of %d checks failed\n", g_failures, g_checks);
    return 1;
  }
  std::printf("test_simd: all %d checks passed\n", g_checks);
  return 0;
}

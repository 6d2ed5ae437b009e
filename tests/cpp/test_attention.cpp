// Tests for the local attention kernels (core/src/attention/kernels.cpp):
// partial_forward and partial_backward, float and double.
//
// Every result is compared with a dense double-precision reference written here
// (explicit softmax over the visible keys, dense gradients), which shares no code
// with the kernels. Error measure, as in tests/attention_ref.py: max |a - b| over
// an array divided by max |b|. Covered:
//  - random shapes: bh 1-3, q_len 0-70, kv_len 0-200, d in {1, 3, 16, 64, 80},
//    causal offsets negative / zero / positive / far out of range / kNoMask,
//    both dtypes, thread counts 1-4, random scales; plus a few larger shapes that
//    cross several query and key blocks and the decode path with key splits;
//  - backward accumulates into dq, dk, dv (they start non-zero);
//  - no writes past the end of any output;
//  - extreme inputs: scores of magnitude 1e4, identical keys, one key block holding
//    all the mass (the others underflow), kv_len = 0, fully masked rows, lse = -inf
//    in the backward; never NaN;
//  - bad shapes throw baobab::InvalidArgument.
// The kernels pick an instruction-set tier at run time; on Linux the program
// re-runs itself (--child) under BAOBAB_ATTENTION_ISA=baseline/avx2/avx512 and
// requires each to pass (tiers round differently, so results are not compared
// bit for bit).
//
// Finally it prints (does not assert) the forward rate in GFLOP/s for float32
// (bh 8, d 64, q = kv = 4096, with and without the causal mask; FLOPs counted as
// 4 d per visible (query, key) pair), a backward rate, and the decode rate
// (q_len 1, kv_len 1M, bh 8, d 64) in GB/s of K and V read.
//
// Usage: test_attention [--child] [--no-bench]   exit status 0 on success.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "baobab/attention.hpp"
#include "baobab/error.hpp"

#if defined(__linux__)
#include <sched.h>
#include <unistd.h>
#endif

using baobab::attention::kNoMask;
using baobab::attention::Shape;

namespace {

int g_failures = 0;
int g_checks = 0;
// Largest error seen (relative to the tolerance's scale): [dtype][out, lse, grad].
double g_worst[2][3] = {};

void fail(const std::string& msg) {
  if (++g_failures <= 40) std::printf("FAIL: %s\n", msg.c_str());
  else if (g_failures == 41) std::printf("FAIL: (further failures not printed)\n");
}

const double kInf = std::numeric_limits<double>::infinity();

std::string off_str(int64_t off) { return off == kNoMask ? std::string("none") : std::to_string(off); }

std::string describe(const char* dt, const Shape& s, int64_t off, int threads) {
  char buf[200];
  std::snprintf(buf, sizeof buf, "%s bh=%lld q=%lld kv=%lld d=%lld offset=%s threads=%d", dt, (long long)s.bh,
                (long long)s.q_len, (long long)s.kv_len, (long long)s.d, off_str(off).c_str(), threads);
  return buf;
}

// ---------------------------------------------------------------- reference

bool visible(int64_t i, int64_t j, int64_t off) {
  if (off == kNoMask) return true;
  // j - i <= off, without overflow for extreme offsets.
  const long double diff = (long double)j - (long double)i;
  return diff <= (long double)off;
}

struct Ref {
  std::vector<double> out, lse, dq, dk, dv, delta;
  // Magnitudes of the terms summed into each gradient (sum of |term|): rounding
  // errors are relative to these, not to the result, which may cancel to ~0
  // (e.g. dq when all keys are equal).
  std::vector<double> adq, adk, adv;
};

// Dense softmax attention in double; with dout, also delta and the gradients.
Ref reference(const Shape& s, const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
              double scale, int64_t off, const std::vector<double>* dout) {
  const int64_t L = s.q_len, N = s.kv_len, d = s.d;
  Ref r;
  r.out.assign(size_t(s.bh * L * d), 0.0);
  r.lse.assign(size_t(s.bh * L), -kInf);
  if (dout) {
    r.dq.assign(size_t(s.bh * L * d), 0.0);
    r.dk.assign(size_t(s.bh * N * d), 0.0);
    r.dv.assign(size_t(s.bh * N * d), 0.0);
    r.delta.assign(size_t(s.bh * L), 0.0);
    r.adq.assign(size_t(s.bh * L * d), 0.0);
    r.adk.assign(size_t(s.bh * N * d), 0.0);
    r.adv.assign(size_t(s.bh * N * d), 0.0);
  }
  std::vector<double> sc(static_cast<size_t>(N)), p(static_cast<size_t>(N));
  for (int64_t b = 0; b < s.bh; ++b) {
    for (int64_t i = 0; i < L; ++i) {
      const double* qi = &q[size_t((b * L + i) * d)];
      double m = -kInf;
      for (int64_t j = 0; j < N; ++j) {
        if (!visible(i, j, off)) {
          sc[size_t(j)] = -kInf;
          continue;
        }
        const double* kj = &k[size_t((b * N + j) * d)];
        double acc = 0;
        for (int64_t c = 0; c < d; ++c) acc += qi[c] * kj[c];
        sc[size_t(j)] = scale * acc;
        m = std::max(m, sc[size_t(j)]);
      }
      if (m == -kInf) continue;  // sees nothing: out 0, lse -inf, no gradient
      double z = 0;
      for (int64_t j = 0; j < N; ++j) z += (p[size_t(j)] = sc[size_t(j)] == -kInf ? 0.0 : std::exp(sc[size_t(j)] - m));
      for (int64_t j = 0; j < N; ++j) p[size_t(j)] /= z;
      double* oi = &r.out[size_t((b * L + i) * d)];
      for (int64_t j = 0; j < N; ++j) {
        if (p[size_t(j)] == 0) continue;
        const double* vj = &v[size_t((b * N + j) * d)];
        for (int64_t c = 0; c < d; ++c) oi[c] += p[size_t(j)] * vj[c];
      }
      r.lse[size_t(b * L + i)] = m + std::log(z);
      if (!dout) continue;
      const double* gi = &(*dout)[size_t((b * L + i) * d)];
      double delta = 0;
      for (int64_t c = 0; c < d; ++c) delta += gi[c] * oi[c];
      r.delta[size_t(b * L + i)] = delta;
      double* dqi = &r.dq[size_t((b * L + i) * d)];
      for (int64_t j = 0; j < N; ++j) {
        const double pj = p[size_t(j)];
        if (pj == 0) continue;
        const double* vj = &v[size_t((b * N + j) * d)];
        const double* kj = &k[size_t((b * N + j) * d)];
        double dp = 0;
        for (int64_t c = 0; c < d; ++c) dp += gi[c] * vj[c];
        const double ds = pj * (dp - delta);
        const double ads = pj * (std::fabs(dp) + std::fabs(delta));
        double* dkj = &r.dk[size_t((b * N + j) * d)];
        double* dvj = &r.dv[size_t((b * N + j) * d)];
        double* adqi = &r.adq[size_t((b * L + i) * d)];
        double* adkj = &r.adk[size_t((b * N + j) * d)];
        double* advj = &r.adv[size_t((b * N + j) * d)];
        for (int64_t c = 0; c < d; ++c) {
          dqi[c] += scale * ds * kj[c];
          dkj[c] += scale * ds * qi[c];
          dvj[c] += pj * gi[c];
          adqi[c] += std::fabs(scale * kj[c]) * ads;
          adkj[c] += std::fabs(scale * qi[c]) * ads;
          advj[c] += std::fabs(pj * gi[c]);
        }
      }
    }
  }
  return r;
}

// ---------------------------------------------------------------- helpers

template <class T>
const char* tname() {
  return std::is_same_v<T, float> ? "float32" : "float64";
}

template <class T>
double tol_fwd() {
  return std::is_same_v<T, float> ? 1e-5 : 1e-13;
}

template <class T>
double tol_bwd() {
  return std::is_same_v<T, float> ? 3e-5 : 1e-12;
}

// max |a - b| / max |b| (0 for empty arrays). NaN in a gives +inf.
double rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t x = 0; x < a.size(); ++x) {
    double e = std::fabs(a[x] - b[x]);
    if (std::isnan(a[x]) || std::isnan(e)) return kInf;
    num = std::max(num, e);
    den = std::max(den, std::fabs(b[x]));
  }
  return a.empty() ? 0.0 : num / std::max(den, 1e-300);
}

template <class T>
std::vector<double> to_double(const std::vector<T>& x, size_t n) {
  return std::vector<double>(x.begin(), x.begin() + ptrdiff_t(n));
}

constexpr size_t kGuard = 17;
constexpr double kCanary = 12345.678;

// A vector of n values followed by kGuard canaries.
template <class T>
std::vector<T> guarded(size_t n, T fill) {
  std::vector<T> x(n + kGuard, T(kCanary));
  std::fill(x.begin(), x.begin() + ptrdiff_t(n), fill);
  return x;
}

template <class T>
bool guard_intact(const std::vector<T>& x, size_t n) {
  for (size_t i = n; i < x.size(); ++i)
    if (x[i] != T(kCanary)) return false;
  return true;
}

template <class T>
std::vector<T> randn(std::mt19937_64& rng, size_t n, double sd = 1.0) {
  std::normal_distribution<double> nd(0.0, sd);
  std::vector<T> x(n);
  for (auto& e : x) e = T(nd(rng));
  return x;
}

// ---------------------------------------------------------------- forward + backward check

struct Case {
  Shape s;
  int64_t off;
  int threads;
  double scale;
  bool backward = true;
  double tol_mult = 1.0;
};

template <class T>
void check_case(const Case& cs, const std::vector<T>& q, const std::vector<T>& k, const std::vector<T>& v,
                std::mt19937_64& rng) {
  const Shape& s = cs.s;
  const std::string what = describe(tname<T>(), s, cs.off, cs.threads);
  const size_t nq = size_t(s.bh * s.q_len * s.d), nk = size_t(s.bh * s.kv_len * s.d), nl = size_t(s.bh * s.q_len);
  std::vector<double> qd(q.begin(), q.end()), kd(k.begin(), k.end()), vd(v.begin(), v.end());
  std::vector<T> dout = randn<T>(rng, nq);
  std::vector<double> doutd(dout.begin(), dout.end());
  Ref ref = reference(s, qd, kd, vd, cs.scale, cs.off, cs.backward ? &doutd : nullptr);

  // Forward. out and lse start as NaN: every element must be written.
  std::vector<T> out = guarded<T>(nq, std::numeric_limits<T>::quiet_NaN());
  std::vector<T> lse = guarded<T>(nl, std::numeric_limits<T>::quiet_NaN());
  try {
    baobab::attention::partial_forward(s, q.data(), k.data(), v.data(), T(cs.scale), cs.off, out.data(), lse.data(),
                                       cs.threads);
  } catch (const std::exception& e) {
    fail(what + ": forward threw " + e.what());
    return;
  }
  ++g_checks;
  if (!guard_intact(out, nq) || !guard_intact(lse, nl)) fail(what + ": forward wrote past the end");
  const double tf = tol_fwd<T>() * cs.tol_mult;
  std::vector<double> o = to_double(out, nq);
  double e_out = rel_err(o, ref.out);
  const int ti = std::is_same_v<T, float> ? 0 : 1;
  if (cs.tol_mult == 1.0) g_worst[ti][0] = std::max(g_worst[ti][0], e_out);
  if (!(e_out <= tf)) fail(what + ": out error " + std::to_string(e_out));
  std::vector<double> lf, lr;
  for (size_t i = 0; i < nl; ++i) {
    const bool fin_ref = std::isfinite(ref.lse[i]);
    const double got = double(lse[i]);
    if (fin_ref != std::isfinite(got) || (!fin_ref && got != -kInf)) {
      fail(what + ": lse[" + std::to_string(i) + "] = " + std::to_string(got) + ", expected " +
           std::to_string(ref.lse[i]));
      break;
    }
    if (!fin_ref) {
      for (int64_t c = 0; c < s.d; ++c)
        if (out[i * size_t(s.d) + size_t(c)] != T(0)) {
          fail(what + ": a row that sees no key has out != 0");
          c = s.d;
          i = nl;
        }
      continue;
    }
    lf.push_back(got);
    lr.push_back(ref.lse[i]);
  }
  double e_lse = rel_err(lf, lr);
  if (cs.tol_mult == 1.0) g_worst[ti][1] = std::max(g_worst[ti][1], e_lse);
  if (!(e_lse <= tf)) fail(what + ": lse error " + std::to_string(e_lse));
  if (!cs.backward) return;

  // Backward, from the reference lse and delta, accumulating into non-zero arrays.
  std::vector<T> lse_in(nl), delta_in(nl);
  for (size_t i = 0; i < nl; ++i) {
    lse_in[i] = T(ref.lse[i]);
    delta_in[i] = T(ref.delta[i]);
  }
  std::vector<T> dq = guarded<T>(nq, T(0)), dk = guarded<T>(nk, T(0)), dv = guarded<T>(nk, T(0));
  std::vector<T> init_q = randn<T>(rng, nq, 0.5), init_k = randn<T>(rng, nk, 0.5), init_v = randn<T>(rng, nk, 0.5);
  std::copy(init_q.begin(), init_q.end(), dq.begin());
  std::copy(init_k.begin(), init_k.end(), dk.begin());
  std::copy(init_v.begin(), init_v.end(), dv.begin());
  try {
    baobab::attention::partial_backward(s, q.data(), k.data(), v.data(), dout.data(), lse_in.data(), delta_in.data(),
                                        T(cs.scale), cs.off, dq.data(), dk.data(), dv.data(), cs.threads);
  } catch (const std::exception& e) {
    fail(what + ": backward threw " + e.what());
    return;
  }
  ++g_checks;
  if (!guard_intact(dq, nq) || !guard_intact(dk, nk) || !guard_intact(dv, nk))
    fail(what + ": backward wrote past the end");
  const double tb = tol_bwd<T>() * cs.tol_mult;
  struct G {
    const char* name;
    const std::vector<T>& got;
    const std::vector<T>& init;
    const std::vector<double>& ref;
    const std::vector<double>& mag;
  };
  for (const G& g : {G{"dq", dq, init_q, ref.dq, ref.adq}, G{"dk", dk, init_k, ref.dk, ref.adk},
                     G{"dv", dv, init_v, ref.dv, ref.adv}}) {
    // The increment against the reference gradient, relative to the largest
    // gradient or term magnitude; accumulating into the initial values costs
    // half an ulp of them on top.
    const size_t n = g.ref.size();
    double num = 0, den = 0, scale_init = 0;
    bool nan = false;
    for (size_t x = 0; x < n; ++x) {
      const double inc = double(g.got[x]) - double(g.init[x]);
      if (std::isnan(inc)) nan = true;
      num = std::max(num, std::fabs(inc - g.ref[x]));
      den = std::max({den, std::fabs(g.ref[x]), g.mag[x]});
      scale_init = std::max(scale_init, std::fabs(double(g.init[x])));
    }
    const double allowed = tb * std::max(den, 1e-300) + scale_init * std::numeric_limits<T>::epsilon();
    if (cs.tol_mult == 1.0 && !nan)
      g_worst[ti][2] = std::max(g_worst[ti][2], std::max(0.0, num - scale_init * std::numeric_limits<T>::epsilon()) /
                                                    std::max(den, 1e-300));
    if (nan || num > allowed)
      fail(what + ": " + g.name + " error " + std::to_string(num / std::max(den, 1e-300)) + (nan ? " (NaN)" : ""));
  }
}

template <class T>
void run_case(const Case& cs, std::mt19937_64& rng, double qk_sd = 1.0) {
  const size_t nq = size_t(cs.s.bh * cs.s.q_len * cs.s.d), nk = size_t(cs.s.bh * cs.s.kv_len * cs.s.d);
  std::vector<T> q = randn<T>(rng, nq, qk_sd), k = randn<T>(rng, nk, qk_sd), v = randn<T>(rng, nk);
  check_case<T>(cs, q, k, v, rng);
}

int64_t random_offset(std::mt19937_64& rng, int64_t L, int64_t N) {
  std::uniform_int_distribution<int> pick(0, 9);
  switch (pick(rng)) {
    case 0:
    case 1: return kNoMask;
    case 2: return 0;
    case 3: return -std::uniform_int_distribution<int64_t>(1, L + 3)(rng);
    case 4: return std::uniform_int_distribution<int64_t>(1, N + 3)(rng);
    case 5: return INT64_MIN;
    case 6: return INT64_MAX - 1;
    default: return std::uniform_int_distribution<int64_t>(-L - 2, N + 2)(rng);
  }
}

void random_cases() {
  std::mt19937_64 rng(20240611);
  const int64_t ds[] = {1, 3, 16, 64, 80};
  for (int n = 0; n < 500; ++n) {
    Case cs;
    cs.s.bh = std::uniform_int_distribution<int64_t>(1, 3)(rng);
    cs.s.q_len = std::uniform_int_distribution<int64_t>(0, 70)(rng);
    if (n % 5 == 0) cs.s.q_len = std::uniform_int_distribution<int64_t>(0, 9)(rng);  // decode sizes
    cs.s.kv_len = std::uniform_int_distribution<int64_t>(0, 200)(rng);
    cs.s.d = ds[std::uniform_int_distribution<int>(0, 4)(rng)];
    cs.off = random_offset(rng, cs.s.q_len, cs.s.kv_len);
    cs.threads = std::uniform_int_distribution<int>(1, 4)(rng);
    cs.scale = n % 3 == 0 ? std::uniform_real_distribution<double>(0.05, 1.5)(rng) : 1.0 / std::sqrt(double(cs.s.d));
    if (n % 2) run_case<float>(cs, rng);
    else run_case<double>(cs, rng);
  }
}

template <class T>
void larger_cases() {
  std::mt19937_64 rng(77);
  struct S {
    int64_t bh, L, N, d, off;
    int threads;
  };
  const S list[] = {
      {2, 150, 300, 64, kNoMask, 3}, {2, 150, 300, 64, 0, 2},    {1, 150, 300, 64, 150, 4},
      {3, 130, 257, 80, -20, 0},     {1, 200, 200, 16, 0, 1},    {1, 1, 5000, 64, kNoMask, 4},
      {1, 3, 3000, 80, 2990, 3},     {2, 8, 1000, 64, 500, 4},   {1, 9, 1000, 64, kNoMask, 2},
      {1, 129, 70, 3, 0, 2},         {5, 33, 129, 64, 7, 0},     {1, 4, 1000, 64, -2, 2},
  };
  for (const S& x : list) {
    Case cs;
    cs.s = Shape{x.bh, x.L, x.N, x.d};
    cs.off = x.off;
    cs.threads = x.threads;
    cs.scale = 1.0 / std::sqrt(double(x.d));
    cs.tol_mult = 2.0;
    run_case<T>(cs, rng);
  }
}

// ---------------------------------------------------------------- extreme inputs

template <class T>
void extreme_cases() {
  std::mt19937_64 rng(5);
  const char* dt = tname<T>();
  // Scores of magnitude ~1e4 (scale 1): the softmax is nearly one-hot.
  {
    Case cs{Shape{1, 5, 200, 16}, kNoMask, 2, 1.0, std::is_same_v<T, double>, 10.0};
    std::vector<T> q = randn<T>(rng, 5 * 16, 30.0), k = randn<T>(rng, 200 * 16, 30.0), v = randn<T>(rng, 200 * 16);
    check_case<T>(cs, q, k, v, rng);
    cs.off = 60;
    check_case<T>(cs, q, k, v, rng);
  }
  // Identical keys: uniform weights, out = mean of v.
  {
    const int64_t N = 150, d = 8;
    std::vector<T> q = randn<T>(rng, 4 * d), k1 = randn<T>(rng, d), v = randn<T>(rng, N * d), k(N * d);
    for (int64_t j = 0; j < N; ++j) std::copy(k1.begin(), k1.end(), k.begin() + j * d);
    Case cs{Shape{1, 4, N, d}, kNoMask, 1, 0.5, true, 10.0};
    check_case<T>(cs, q, k, v, rng);
    std::vector<T> out(4 * d), lse(4);
    baobab::attention::partial_forward(cs.s, q.data(), k.data(), v.data(), T(0.5), kNoMask, out.data(), lse.data(), 3);
    for (int64_t c = 0; c < d; ++c) {
      double mean = 0;
      for (int64_t j = 0; j < N; ++j) mean += double(v[j * d + c]);
      mean /= double(N);
      for (int64_t i = 0; i < 4; ++i)
        if (!(std::fabs(double(out[i * d + c]) - mean) <= 10 * tol_fwd<T>() * 3))
          fail(std::string(dt) + " identical keys: out is not the mean of v");
    }
  }
  // One key block holds all the mass: keys 130..170 score +80 higher than the
  // rest, whose weights underflow (to exactly 0 in float). Both orders occur:
  // cold blocks before and after the hot one.
  for (int64_t L : {int64_t(1), int64_t(20)}) {
    const int64_t N = 300, d = 4;
    std::vector<T> q(L * d, T(1)), k(N * d), v = randn<T>(rng, N * d);
    for (int64_t j = 0; j < N; ++j)
      for (int64_t c = 0; c < d; ++c) k[j * d + c] = T(j >= 130 && j < 170 ? 20.0 : -20.0);
    for (int threads : {1, 4}) {
      Case cs{Shape{1, L, N, d}, kNoMask, threads, 1.0, true, 10.0};
      check_case<T>(cs, q, k, v, rng);
      std::vector<T> out(L * d), lse(L);
      baobab::attention::partial_forward(cs.s, q.data(), k.data(), v.data(), T(1), kNoMask, out.data(), lse.data(),
                                         threads);
      for (int64_t c = 0; c < d; ++c) {
        double mean = 0;
        for (int64_t j = 130; j < 170; ++j) mean += double(v[j * d + c]);
        mean /= 40;
        if (!(std::fabs(double(out[c]) - mean) <= 1e-4) || !std::isfinite(double(lse[0])))
          fail(std::string(dt) + " hot key block: out is not the mean of the hot values");
      }
    }
  }
  // kv_len = 0: out = 0 (overwritten), lse = -inf; backward leaves dq untouched.
  {
    Shape s{2, 3, 0, 5};
    std::vector<T> q = randn<T>(rng, 30), out(30, T(7)), lse(6, T(7)), dq(30, T(1)), dout = randn<T>(rng, 30);
    baobab::attention::partial_forward(s, q.data(), nullptr, nullptr, T(1), kNoMask, out.data(), lse.data(), 0);
    for (T x : out)
      if (x != T(0)) fail(std::string(dt) + " kv_len 0: out != 0");
    for (T x : lse)
      if (x != -std::numeric_limits<T>::infinity()) fail(std::string(dt) + " kv_len 0: lse != -inf");
    baobab::attention::partial_backward(s, q.data(), nullptr, nullptr, dout.data(), lse.data(), lse.data(), T(1),
                                        kNoMask, dq.data(), nullptr, nullptr, 0);
    for (T x : dq)
      if (x != T(1)) fail(std::string(dt) + " kv_len 0: backward changed dq");
    ++g_checks;
  }
  // Fully masked rows (the first queries see nothing), with the reference check.
  {
    Case cs{Shape{2, 40, 100, 16}, -7, 2, 0.25, true, 1.0};
    run_case<T>(cs, rng);
    cs.s.q_len = 5;  // decode path
    cs.off = -2;
    run_case<T>(cs, rng);
    cs.off = -5;  // nothing visible at all
    run_case<T>(cs, rng);
  }
  // Backward with lse = -inf rows (a query that saw nothing anywhere): no NaN,
  // no contribution from those rows.
  {
    Shape s{1, 6, 70, 16};
    std::vector<T> q = randn<T>(rng, 96), k = randn<T>(rng, 70 * 16), v = randn<T>(rng, 70 * 16);
    std::vector<T> dout = randn<T>(rng, 96), lse(6), delta(6, T(0.3));
    std::vector<T> out(96);
    baobab::attention::partial_forward(s, q.data(), k.data(), v.data(), T(0.25), kNoMask, out.data(), lse.data(), 1);
    lse[2] = lse[4] = -std::numeric_limits<T>::infinity();
    std::vector<T> dq(96, T(0)), dk(70 * 16, T(0)), dv(70 * 16, T(0));
    baobab::attention::partial_backward(s, q.data(), k.data(), v.data(), dout.data(), lse.data(), delta.data(),
                                        T(0.25), kNoMask, dq.data(), dk.data(), dv.data(), 2);
    bool bad = false;
    for (T x : dq) bad |= std::isnan(double(x));
    for (T x : dk) bad |= std::isnan(double(x));
    for (T x : dv) bad |= std::isnan(double(x));
    for (int c = 0; c < 16; ++c) bad |= dq[2 * 16 + c] != T(0) || dq[4 * 16 + c] != T(0);
    if (bad) fail(std::string(dt) + " backward with lse = -inf rows: NaN or a contribution");
    ++g_checks;
  }
  // Large, equal scores everywhere (no NaN from inf - inf, exact uniform weights).
  {
    const int64_t N = 130, d = 2;
    std::vector<T> q(2 * d, T(100)), k(N * d, T(100)), v = randn<T>(rng, N * d);
    std::vector<T> out(2 * d), lse(2);
    baobab::attention::partial_forward(Shape{1, 2, N, d}, q.data(), k.data(), v.data(), T(1), kNoMask, out.data(),
                                       lse.data(), 2);
    const double want_lse = 2e4 + std::log(double(N));
    if (!(std::fabs(double(lse[0]) - want_lse) <= 2e4 * tol_fwd<T>()) || std::isnan(double(out[0])))
      fail(std::string(dt) + " equal large scores: lse " + std::to_string(double(lse[0])));
    ++g_checks;
  }
}

// ---------------------------------------------------------------- bad input

void bad_input() {
  float x[64] = {};
  auto expect_throw = [](const char* what, auto&& fn) {
    try {
      fn();
      fail(std::string("no InvalidArgument for ") + what);
    } catch (const baobab::InvalidArgument&) {
      ++g_checks;
    } catch (const std::exception& e) {
      fail(std::string("wrong exception for ") + what + ": " + e.what());
    }
  };
  const Shape bad[] = {{1, 2, 3, 0}, {1, 2, 3, -4}, {1, -1, 3, 4}, {1, 2, -3, 4}, {-1, 2, 3, 4}};
  for (const Shape& s : bad) {
    std::string w = "shape bh=" + std::to_string(s.bh) + " q=" + std::to_string(s.q_len) + " kv=" +
                    std::to_string(s.kv_len) + " d=" + std::to_string(s.d);
    expect_throw((w + " (forward)").c_str(),
                 [&] { baobab::attention::partial_forward(s, x, x, x, 1.f, kNoMask, x, x, 1); });
    expect_throw((w + " (backward)").c_str(), [&] {
      baobab::attention::partial_backward(s, x, x, x, x, x, x, 1.f, kNoMask, x, x, x, 1);
    });
  }
  double y[8] = {};
  expect_throw("double d = 0", [&] { baobab::attention::partial_forward(Shape{1, 1, 1, 0}, y, y, y, 1.0, 0, y, y, 1); });
  expect_throw("huge shape", [&] {
    baobab::attention::partial_forward(Shape{INT64_MAX / 2, 4, 4, 4}, x, x, x, 1.f, kNoMask, x, x, 1);
  });
}

// ---------------------------------------------------------------- benchmark

int usable_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
#endif
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

template <class T>
void fill_fast(std::vector<T>& x, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (auto& e : x) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    e = T(double(int64_t(s >> 40) - (int64_t(1) << 23)) / double(int64_t(1) << 23));  // uniform [-1, 1)
  }
}

// Spot check of a few rows of a large float forward against the double reference
// (the benchmark shapes are far larger than the random cases).
void spot_check(const char* what, const Shape& s, const std::vector<float>& q, const std::vector<float>& k,
                const std::vector<float>& v, float scale, int64_t off, const std::vector<float>& out,
                const std::vector<float>& lse) {
  const int64_t L = s.q_len, N = s.kv_len, d = s.d;
  for (int64_t b : {int64_t(0), s.bh - 1})
    for (int64_t i : {int64_t(0), L / 3, L - 1}) {
      const int64_t row = b * L + i;
      std::vector<double> sc(size_t(N), -kInf), o(size_t(d), 0.0);
      double m = -kInf;
      for (int64_t j = 0; j < N; ++j) {
        if (!visible(i, j, off)) continue;
        double acc = 0;
        for (int64_t c = 0; c < d; ++c) acc += double(q[size_t(row * d + c)]) * double(k[size_t((b * N + j) * d + c)]);
        m = std::max(m, sc[size_t(j)] = double(scale) * acc);
      }
      double z = 0;
      for (int64_t j = 0; j < N; ++j) {
        if (sc[size_t(j)] == -kInf) continue;
        const double w = std::exp(sc[size_t(j)] - m);
        z += w;
        for (int64_t c = 0; c < d; ++c) o[size_t(c)] += w * double(v[size_t((b * N + j) * d + c)]);
      }
      double err = std::fabs(double(lse[size_t(row)]) - (m + std::log(z))), mag = 0;
      for (int64_t c = 0; c < d; ++c) {
        err = std::max(err, std::fabs(double(out[size_t(row * d + c)]) - o[size_t(c)] / z));
        mag = std::max(mag, std::fabs(o[size_t(c)] / z));
      }
      ++g_checks;
      if (!(err <= 1e-4 * std::max(1.0, mag)))
        fail(std::string(what) + ": benchmark row " + std::to_string(row) + " differs from the reference by " +
             std::to_string(err));
    }
}

template <class F>
double best_seconds(int reps, F&& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void bench() {
  const int cpus = usable_cpus();
  const char* isa = std::getenv("BAOBAB_ATTENTION_ISA");
  std::printf("benchmark (tier %s, %d usable CPUs, threads = 0 -> %d):\n", isa ? isa : "best", cpus, cpus);
  {
    const int64_t bh = 8, L = 4096, N = 4096, d = 64;
    std::vector<float> q(size_t(bh * L * d)), k(size_t(bh * N * d)), v(size_t(bh * N * d)), out(q.size()),
        lse(size_t(bh * L));
    fill_fast(q, 1);
    fill_fast(k, 2);
    fill_fast(v, 3);
    for (int64_t off : {kNoMask, int64_t(0)}) {
      const double pairs = off == kNoMask ? double(L) * double(N) : double(L) * double(L + 1) / 2;
      const double flops = 4.0 * double(bh) * double(d) * pairs;
      const Shape s{bh, L, N, d};
      const double t = best_seconds(5, [&] {
        baobab::attention::partial_forward(s, q.data(), k.data(), v.data(), 0.125f, off, out.data(), lse.data(), 0);
      });
      std::printf("  forward float32 bh=8 d=64 q=kv=4096 %-9s: %7.1f GFLOP/s (%.3f s, %d threads)\n",
                  off == kNoMask ? "no mask" : "causal", flops / t * 1e-9, t, cpus);
      spot_check("forward 4096", s, q, k, v, 0.125f, off, out, lse);
    }
    {
      const int64_t Lb = 2048;
      const Shape s{bh, Lb, Lb, d};
      std::vector<float> dout(size_t(bh * Lb * d)), delta(size_t(bh * Lb)), dq(dout.size()), dk(dout.size()),
          dv(dout.size());
      fill_fast(dout, 4);
      baobab::attention::partial_forward(s, q.data(), k.data(), v.data(), 0.125f, kNoMask, out.data(), lse.data(), 0);
      for (int64_t r = 0; r < bh * Lb; ++r) {
        double acc = 0;
        for (int64_t c = 0; c < d; ++c) acc += double(dout[size_t(r * d + c)]) * double(out[size_t(r * d + c)]);
        delta[size_t(r)] = float(acc);
      }
      const double flops = 10.0 * double(bh) * double(d) * double(Lb) * double(Lb);
      const double t = best_seconds(2, [&] {
        baobab::attention::partial_backward(s, q.data(), k.data(), v.data(), dout.data(), lse.data(), delta.data(),
                                            0.125f, kNoMask, dq.data(), dk.data(), dv.data(), 0);
      });
      std::printf("  backward float32 bh=8 d=64 q=kv=2048 no mask: %7.1f GFLOP/s (%.3f s, 10 d FLOPs per pair)\n",
                  flops / t * 1e-9, t);
    }
    {
      const int64_t Ld = 1024;
      std::vector<double> qd(size_t(bh * Ld * d)), kd(qd.size()), vd(qd.size()), od(qd.size()), ld(size_t(bh * Ld));
      fill_fast(qd, 5);
      fill_fast(kd, 6);
      fill_fast(vd, 7);
      const double flops = 4.0 * double(bh) * double(d) * double(Ld) * double(Ld);
      const double t = best_seconds(2, [&] {
        baobab::attention::partial_forward(Shape{bh, Ld, Ld, d}, qd.data(), kd.data(), vd.data(), 0.125, kNoMask,
                                           od.data(), ld.data(), 0);
      });
      std::printf("  forward float64 bh=8 d=64 q=kv=1024 no mask: %7.1f GFLOP/s\n", flops / t * 1e-9);
    }
  }
  {
    const int64_t bh = 8, L = 1, N = int64_t(1) << 20, d = 64;
    std::vector<float> q(size_t(bh * L * d)), k(size_t(bh * N * d)), v(size_t(bh * N * d)), out(q.size()),
        lse(size_t(bh * L));
    fill_fast(q, 8);
    fill_fast(k, 9);
    fill_fast(v, 10);
    const double t = best_seconds(3, [&] {
      baobab::attention::partial_forward(Shape{bh, L, N, d}, q.data(), k.data(), v.data(), 0.125f, kNoMask,
                                         out.data(), lse.data(), 0);
    });
    const double bytes = 2.0 * double(bh) * double(N) * double(d) * sizeof(float);
    std::printf("  decode  float32 bh=8 d=64 q=1 kv=1M: %6.1f GB/s of K+V (%.3f s, %d threads)\n", bytes / t * 1e-9,
                t, cpus);
    spot_check("decode", Shape{bh, L, N, d}, q, k, v, 0.125f, kNoMask, out, lse);
  }
}

void print_worst() {
  std::printf("worst errors (random cases; tolerances out/lse %.0e|%.0e, grad %.0e|%.0e for float32|float64):\n",
              tol_fwd<float>(), tol_fwd<double>(), tol_bwd<float>(), tol_bwd<double>());
  for (int t = 0; t < 2; ++t)
    std::printf("  %s: out %.2e, lse %.2e, grad %.2e\n", t ? "float64" : "float32", g_worst[t][0], g_worst[t][1],
                g_worst[t][2]);
}

int run_all() {
  random_cases();
  larger_cases<float>();
  larger_cases<double>();
  extreme_cases<float>();
  extreme_cases<double>();
  bad_input();
  return g_failures;
}

#if defined(__linux__)
// Re-run this program under each tier; each must pass.
void run_tiers() {
  char self[4096];
  ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
  if (len <= 0) {
    std::printf("note: cannot find own executable; tiers not checked separately\n");
    return;
  }
  self[len] = 0;
  for (const char* tier : {"baseline", "avx2", "avx512"}) {
    std::string cmd = std::string("BAOBAB_ATTENTION_ISA=") + tier + " '" + self + "' --child";
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) {
      fail(std::string("cannot run tier ") + tier);
      continue;
    }
    char line[512];
    while (std::fgets(line, sizeof line, p)) std::printf("  [%s] %s", tier, line);
    int status = pclose(p);
    if (status != 0) fail(std::string("tier ") + tier + " failed");
    else std::printf("tier %s: passed\n", tier);
  }
}
#endif

}  // namespace

int main(int argc, char** argv) {
  bool child = false, no_bench = false;
  for (int a = 1; a < argc; ++a) {
    if (std::strcmp(argv[a], "--child") == 0) child = true;
    if (std::strcmp(argv[a], "--no-bench") == 0) no_bench = true;
  }
  run_all();
  if (child) {
    print_worst();
    std::printf("%d checks, %d failure(s)\n", g_checks, g_failures);
    return g_failures ? 1 : 0;
  }
  print_worst();
  std::printf("default tier: %d checks, %s\n", g_checks, g_failures ? "FAILED" : "passed");
#if defined(__linux__)
  run_tiers();
#endif
  if (!no_bench) {
    try {
      bench();
    } catch (const std::bad_alloc&) {
      std::printf("benchmark skipped: not enough memory\n");
    }
  }
  if (g_failures) {
    std::printf("test_attention: %d failure(s)\n", g_failures);
    return 1;
  }
  std::printf("test_attention: all checks passed\n");
  return 0;
}

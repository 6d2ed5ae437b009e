// Standalone check and benchmark of the CUDA N-body kernels (apps/nbody/src/forces.cu).
//
// Compares baobab::nbody::forces_device, one thread per target (split off) and
// the j-split (split on), with the host kernel (forces, a different code path:
// SIMD across targets) on random clusters: n 1..5000, ni 1..2000 (block tails),
// eps2 = 0 and > 0, targets that are the sources (self pair skipped by id) and
// foreign targets with ids in and out of range; bound 1e-12 relative per
// target (row norms). For each kernel: batch independence (a target alone
// gives the same bits as inside the full batch) and nothing written past ni.
// The split against the host kernel for the small active sets it is made for
// (ni = 1, 7, 64, 1000 of n = 1000 and 16384), run to run identity, the
// automatic choice, a split run in several passes (slabs) against the one-thread
// kernel, and the scratch-size check. Then times n = ni = 131072 (interactions/s
// and the fraction of the FP64 peak, 60 flops per interaction), and both
// kernels over ni at n = 16384 and 131072, with the automatic choice.
//
// Build (on a machine with a GPU):
//   nvcc -std=c++20 -O3 -arch=native -I core/include -I apps/nbody/src apps/nbody/src/forces.cu \
//       apps/nbody/src/forces.cpp core/src/simd/tiers.cpp apps/nbody/tests/nbody_check.cu -o nbody_check
// Exit status 0 when every check passes, or when there is no CUDA device.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "baobab/error.hpp"
#include "nbody.hpp"

namespace {

using baobab::nbody::DeviceSplit;

int g_fail = 0;

#define CK(x)                                                                       \
  do {                                                                              \
    cudaError_t e_ = (x);                                                           \
    if (e_ != cudaSuccess) {                                                        \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                 \
    }                                                                               \
  } while (0)

struct Dev {
  double* p = nullptr;
  explicit Dev(size_t n) { CK(cudaMalloc(&p, std::max<size_t>(n, 1) * 8)); }
  ~Dev() { cudaFree(p); }
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
};

const char* name(DeviceSplit s) { return baobab::nbody::device_split_name(s); }

struct Problem {
  std::vector<double> xi, vi, x, v, m;
  std::vector<int64_t> idi;
  int64_t first_id = 0;
  double eps2 = 0;
  int64_t ni() const { return int64_t(idi.size()); }
  int64_t n() const { return int64_t(m.size()); }
};

struct Result {
  std::vector<double> acc, jerk, pot;  // ni + 1 rows: the last one is a guard
};

// The problem on the device, called as often as asked.
struct OnDevice {
  const Problem& pr;
  Dev xi, vi, idi, x, v, m, acc, jerk, pot;
  explicit OnDevice(const Problem& p)
      : pr(p), xi(p.xi.size()), vi(p.vi.size()), idi(p.idi.size()), x(p.x.size()), v(p.v.size()), m(p.m.size()),
        acc(size_t(3 * p.ni() + 3)), jerk(size_t(3 * p.ni() + 3)), pot(size_t(p.ni() + 1)) {
    CK(cudaMemcpy(xi.p, p.xi.data(), p.xi.size() * 8, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(vi.p, p.vi.data(), p.vi.size() * 8, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(idi.p, p.idi.data(), p.idi.size() * 8, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(x.p, p.x.data(), p.x.size() * 8, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(v.p, p.v.data(), p.v.size() * 8, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(m.p, p.m.data(), p.m.size() * 8, cudaMemcpyHostToDevice));
  }
  void call(DeviceSplit s, void* work = nullptr, size_t work_bytes = 0) {
    baobab::nbody::forces_device(xi.p, vi.p, reinterpret_cast<const int64_t*>(idi.p), pr.ni(), x.p, v.p, m.p, pr.n(),
                                 pr.first_id, pr.eps2, acc.p, jerk.p, pot.p, nullptr, s, work, work_bytes);
  }
  Result run(DeviceSplit s) {
    const int64_t ni = pr.ni();
    CK(cudaMemset(acc.p, 0x7f, (3 * ni + 3) * 8));
    CK(cudaMemset(pot.p, 0x7f, (ni + 1) * 8));
    call(s);
    CK(cudaDeviceSynchronize());
    Result r;
    r.acc.resize(size_t(3 * ni + 3));
    r.jerk.resize(size_t(3 * ni + 3));
    r.pot.resize(size_t(ni + 1));
    CK(cudaMemcpy(r.acc.data(), acc.p, r.acc.size() * 8, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(r.jerk.data(), jerk.p, r.jerk.size() * 8, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(r.pot.data(), pot.p, r.pot.size() * 8, cudaMemcpyDeviceToHost));
    return r;
  }
  // Best time of one call over 5 rounds of `calls` back-to-back calls (launch costs included).
  double ms_per_call(DeviceSplit s, int calls) {
    const auto plan = baobab::nbody::device_plan(pr.ni(), pr.n(), s);
    Dev work(plan.work_bytes / 8 + 1);
    call(s, work.p, plan.work_bytes + 8);
    CK(cudaDeviceSynchronize());
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    float best = 1e30f;
    for (int r = 0; r < 5; ++r) {
      CK(cudaEventRecord(a));
      for (int c = 0; c < calls; ++c) call(s, work.p, plan.work_bytes + 8);
      CK(cudaEventRecord(b));
      CK(cudaEventSynchronize(b));
      float t = 0;
      CK(cudaEventElapsedTime(&t, a, b));
      best = std::min(best, t);
    }
    CK(cudaEventDestroy(a));
    CK(cudaEventDestroy(b));
    return double(best) / calls;
  }
};

Result run_host(const Problem& p) {
  Result r;
  r.acc.resize(size_t(3 * p.ni()));
  r.jerk.resize(size_t(3 * p.ni()));
  r.pot.resize(size_t(p.ni()));
  baobab::nbody::forces(p.xi.data(), p.vi.data(), p.idi.data(), p.ni(), p.x.data(), p.v.data(), p.m.data(), p.n(),
                        p.first_id, p.eps2, r.acc.data(), r.jerk.data(), r.pot.data(), 0);
  return r;
}

double row_err(const double* a, const double* b, int k) {
  double d = 0, r = 0;
  for (int c = 0; c < k; ++c) {
    d += (a[c] - b[c]) * (a[c] - b[c]);
    r += b[c] * b[c];
  }
  return r == 0 ? std::sqrt(d) : std::sqrt(d / r);
}

// Largest relative difference per target over acc, jerk, pot (rows 0 .. ni).
double max_err(const Result& a, const Result& b, int64_t ni) {
  double e = 0;
  for (int64_t i = 0; i < ni; ++i)
    e = std::max({e, row_err(&a.acc[size_t(3 * i)], &b.acc[size_t(3 * i)], 3),
                  row_err(&a.jerk[size_t(3 * i)], &b.jerk[size_t(3 * i)], 3),
                  row_err(&a.pot[size_t(i)], &b.pot[size_t(i)], 1)});
  return e;
}

bool same_bits(const Result& a, const Result& b, int64_t ni) {
  return !std::memcmp(a.acc.data(), b.acc.data(), size_t(24 * ni)) &&
         !std::memcmp(a.jerk.data(), b.jerk.data(), size_t(24 * ni)) &&
         !std::memcmp(a.pot.data(), b.pot.data(), size_t(8 * ni));
}

bool guard_intact(const Result& r, int64_t ni) {
  uint64_t g;
  std::memcpy(&g, &r.pot[size_t(ni)], 8);
  uint64_t h;
  std::memcpy(&h, &r.acc[size_t(3 * ni)], 8);
  return g == 0x7f7f7f7f7f7f7f7fULL && h == 0x7f7f7f7f7f7f7f7fULL;
}

// A random cluster of n sources and ni targets: with eps2 = 0 only sources
// themselves (a foreign target could sit on a source), else 1 in 4 foreign,
// with ids in and out of the sources' range.
Problem make(std::mt19937_64& g, int64_t n, int64_t ni, double eps2, int64_t first_id) {
  std::normal_distribution<double> nd;
  Problem p;
  p.first_id = first_id;
  p.eps2 = eps2;
  p.x.resize(size_t(3 * n));
  p.v.resize(size_t(3 * n));
  p.m.resize(size_t(n));
  for (auto& a : p.x) a = nd(g);
  for (auto& a : p.v) a = nd(g);
  for (auto& a : p.m) a = (1.0 + std::fabs(nd(g))) / double(n);
  p.xi.resize(size_t(3 * ni));
  p.vi.resize(size_t(3 * ni));
  p.idi.resize(size_t(ni));
  for (int64_t i = 0; i < ni; ++i) {
    const int64_t j = int64_t(g() % uint64_t(n));
    const bool own = eps2 == 0.0 || g() % 4 != 0;
    for (int c = 0; c < 3; ++c) {
      p.xi[size_t(3 * i + c)] = own ? p.x[size_t(3 * j + c)] : nd(g);
      p.vi[size_t(3 * i + c)] = own ? p.v[size_t(3 * j + c)] : nd(g);
    }
    p.idi[size_t(i)] = own ? first_id + j : first_id + int64_t(g() % uint64_t(n + 20)) - 10;
  }
  return p;
}

// Target i of p alone.
Problem alone(const Problem& p, int64_t i) {
  Problem q = p;
  q.xi.assign(p.xi.begin() + 3 * i, p.xi.begin() + 3 * i + 3);
  q.vi.assign(p.vi.begin() + 3 * i, p.vi.begin() + 3 * i + 3);
  q.idi.assign(1, p.idi[size_t(i)]);
  return q;
}

void fail(const char* fmt, long long n, long long ni, const char* mode, double e = 0) {
  std::printf("FAIL n=%lld ni=%lld split %s: ", n, ni, mode);
  std::printf(fmt, e);
  std::printf("\n");
  ++g_fail;
}

// The checks of one problem for one kernel; returns the largest relative
// difference from the host kernel.
double check_against_host(const Problem& p, const Result& host, DeviceSplit s) {
  OnDevice d(p);
  const Result r = d.run(s);
  const int64_t n = p.n(), ni = p.ni();
  const double e = max_err(r, host, ni);
  if (!guard_intact(r, ni)) fail("wrote past ni", n, ni, name(s));
  if (!(e <= 1e-12) && n > 1) fail("device vs host %.3e", n, ni, name(s), e);
  if (ni > 1) {  // batch independence: the last target alone
    OnDevice one(alone(p, ni - 1));
    const Result a = one.run(s);
    if (std::memcmp(a.acc.data(), &r.acc[size_t(3 * ni - 3)], 24) ||
        std::memcmp(a.jerk.data(), &r.jerk[size_t(3 * ni - 3)], 24) ||
        std::memcmp(a.pot.data(), &r.pot[size_t(ni - 1)], 8))
      fail("a target alone differs from the batch", n, ni, name(s));
  }
  return n > 1 ? e : 0.0;
}

}  // namespace

int main() {
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    std::printf("no CUDA device: nothing checked\n");
    return 0;
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::mt19937_64 g(7);

  // Both kernels against the host on general problems.
  double worst[2] = {0, 0};
  int cases = 0;
  for (int64_t n : {1, 3, 127, 128, 129, 1000, 5000}) {
    for (int64_t ni : {int64_t(1), int64_t(5), int64_t(127), int64_t(129), int64_t(2000)}) {
      for (double eps2 : {0.0, 1e-4}) {
        const Problem p = make(g, n, ni, eps2, int64_t(g() % 100) - 50);
        const Result host = run_host(p);
        worst[0] = std::max(worst[0], check_against_host(p, host, DeviceSplit::off));
        worst[1] = std::max(worst[1], check_against_host(p, host, DeviceSplit::on));
        ++cases;
      }
    }
  }
  std::printf("%d cases, worst device vs host relative difference: one thread per target %.2e, j-split %.2e; "
              "%d failures\n", cases, worst[0], worst[1], g_fail);

  // The split for small active sets: against the host, run to run, against the
  // one-thread kernel, and what the automatic choice does.
  std::printf("\nj-split, small active sets (eps2 = 1e-6, targets among the sources):\n");
  std::printf("%7s %6s %7s %6s %12s %12s %10s %6s\n", "n", "ni", "chunks", "auto", "vs host", "vs 1-thread",
              "run-to-run", "");
  for (int64_t n : {1000, 16384}) {
    for (int64_t ni : {1, 7, 64, 1000}) {
      const Problem p = make(g, n, ni, 1e-6, 0);
      const Result host = run_host(p);
      OnDevice d(p);
      const Result on = d.run(DeviceSplit::on), on2 = d.run(DeviceSplit::on), off = d.run(DeviceSplit::off);
      const auto plan = baobab::nbody::device_plan(ni, n, DeviceSplit::automatic);
      const double eh = max_err(on, host, ni), eo = max_err(on, off, ni);
      const bool same = same_bits(on, on2, ni);
      std::printf("%7lld %6lld %7lld %6s %12.2e %12.2e %10s\n", (long long)n, (long long)ni,
                  (long long)baobab::nbody::device_plan(ni, n, DeviceSplit::on).chunks, plan.split ? "split" : "1-thr",
                  eh, eo, same ? "same bits" : "DIFFER");
      if (!(eh <= 1e-12)) fail("split vs host %.3e", n, ni, "on", eh);
      if (!(eo <= 1e-12)) fail("split vs one thread per target %.3e", n, ni, "on", eo);
      if (!same) fail("two runs differ", n, ni, "on");
      if (!guard_intact(on, ni)) fail("wrote past ni", n, ni, "on");
      if (!plan.split) fail("the automatic choice is not the split for a small active set", n, ni, "auto");
    }
  }

  // Several passes: a target set larger than one slab, against the one-thread
  // kernel (the host reference would take seconds here), and a target past the
  // first slab alone.
  {
    const int64_t n = 300000, ni = 20000;
    const Problem p = make(g, n, ni, 1e-6, 0);
    const auto plan = baobab::nbody::device_plan(ni, n, DeviceSplit::on);
    OnDevice d(p);
    const Result on = d.run(DeviceSplit::on), off = d.run(DeviceSplit::off);
    const double e = max_err(on, off, ni);
    const int64_t k = plan.slab + 3;
    OnDevice one(alone(p, k));
    const Result a = one.run(DeviceSplit::on);
    const bool same = !std::memcmp(a.acc.data(), &on.acc[size_t(3 * k)], 24) &&
                      !std::memcmp(a.pot.data(), &on.pot[size_t(k)], 8);
    std::printf("n = %lld, ni = %lld: %lld passes of %lld targets x %lld chunks of %lld; split vs 1-thread %.2e; "
                "target %lld alone %s\n", (long long)n, (long long)ni, (long long)((ni + plan.slab - 1) / plan.slab),
                (long long)plan.slab, (long long)plan.chunks, (long long)plan.chunk, e, (long long)k,
                same ? "same bits" : "DIFFERS");
    if (plan.slab >= ni) fail("expected several passes", n, ni, "on");
    if (!(e <= 1e-12)) fail("split (passes) vs one thread per target %.3e", n, ni, "on", e);
    if (!same) fail("a target past the first pass alone differs from the batch", n, ni, "on");
    if (!guard_intact(on, ni)) fail("wrote past ni", n, ni, "on");
    bool threw = false;
    try {
      d.call(DeviceSplit::on, d.acc.p, plan.work_bytes - 8);  // too small: refused before any launch
    } catch (const baobab::InvalidArgument&) {
      threw = true;
    }
    if (!threw) fail("a scratch buffer smaller than the plan was accepted", n, ni, "on");
  }
  std::printf("%d failures so far\n", g_fail);

  // Timing: the one-thread kernel on a full set.
  {
    const int64_t n = 131072;
    Problem p = make(g, n, 1, 1e-6, 0);
    p.xi = p.x;
    p.vi = p.v;
    p.idi.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) p.idi[size_t(i)] = i;
    OnDevice d(p);
    const double ms = d.ms_per_call(DeviceSplit::off, 1);
    int clk = 0;
    CK(cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, 0));
    const int per_sm = prop.major == 9 ? 64 : prop.major == 8 && prop.minor == 0 ? 32 : 0;
    const double rate = double(n) * double(n) / (ms * 1e-3),
                 peak = double(prop.multiProcessorCount) * per_sm * 2 * clk * 1e3;
    std::printf("\n%s: n = ni = %lld: %.3f ms, %.3e interactions/s, %.2f TFLOP/s (60/interaction), %s%.0f%% of FP64 "
                "peak %.1f TFLOP/s\n", prop.name, (long long)n, ms, rate, rate * 60 / 1e12,
                per_sm ? "" : "(peak unknown) ", per_sm ? 100 * rate * 60 / peak : 0.0, peak / 1e12);
  }

  // Timing: both kernels over the number of targets (a call includes its
  // launches; small sets are timed over many back-to-back calls).
  const int64_t sms = prop.multiProcessorCount, edge = 2 * 128 * sms;
  std::printf("\nsplit vs one thread per target, %lld SMs (automatic: split below ni = %lld):\n", (long long)sms,
              (long long)edge);
  std::printf("%7s %6s %12s %14s %12s %14s %8s %6s\n", "n", "ni", "1-thread us", "interactions/s", "split us",
              "interactions/s", "ratio", "auto");
  for (int64_t n : {16384, 131072}) {
    for (int64_t ni : {int64_t(1), int64_t(7), int64_t(64), int64_t(256), int64_t(1000), int64_t(4096), edge / 2,
                       edge, 2 * edge}) {
      if (ni > n) continue;
      const Problem p = make(g, n, ni, 1e-6, 0);
      OnDevice d(p);
      const double inter = double(n) * double(ni);
      const int calls = inter < 1e8 ? 50 : inter < 1e9 ? 5 : 1;
      const double t1 = d.ms_per_call(DeviceSplit::off, calls), ts = d.ms_per_call(DeviceSplit::on, calls);
      const bool autosplit = baobab::nbody::device_plan(ni, n, DeviceSplit::automatic).split;
      std::printf("%7lld %6lld %12.1f %14.3e %12.1f %14.3e %7.2fx %6s\n", (long long)n, (long long)ni, t1 * 1e3,
                  inter / (t1 * 1e-3), ts * 1e3, inter / (ts * 1e-3), t1 / ts, autosplit ? "split" : "1-thr");
    }
  }
  std::printf("\nnbody_check: %d failures\n", g_fail);
  return g_fail ? 1 : 0;
}

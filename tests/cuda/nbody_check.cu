// Standalone check and benchmark of the CUDA N-body kernel (core/src/cuda/nbody.cu).
//
// Compares baobab::nbody::forces_device with the host kernel (forces, a
// different code path: SIMD across targets) on random clusters: n 1..5000, ni
// 1..2000 (block tails), eps2 = 0 and > 0, targets that are the sources (self
// pair skipped by id) and foreign targets with ids in and out of range; bound
// 1e-12 relative per target (row norms). Checks batch independence on the
// device (a target alone gives the same bits as inside the full batch), and
// that nothing is written past ni. Then times n = ni = 131072 and prints
// interactions/s and the fraction of the FP64 peak (60 flops per interaction).
//
// Build (on a machine with a GPU):
//   nvcc -std=c++20 -O3 -arch=native -I core/include core/src/cuda/nbody.cu core/src/nbody/forces.cpp \
//       tests/cuda/nbody_check.cu -o nbody_check
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

#include "baobab/nbody.hpp"

namespace {

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
};

void run_device(const std::vector<double>& xi, const std::vector<double>& vi, const std::vector<int64_t>& idi,
                const std::vector<double>& x, const std::vector<double>& v, const std::vector<double>& m,
                int64_t first_id, double eps2, std::vector<double>& acc, std::vector<double>& jerk,
                std::vector<double>& pot, double* ms = nullptr) {
  const int64_t ni = int64_t(idi.size()), n = int64_t(m.size());
  Dev dxi(xi.size()), dvi(vi.size()), did(idi.size()), dx(x.size()), dv(v.size()), dm(m.size());
  Dev da(3 * ni + 3), dj(3 * ni + 3), dp(ni + 1);
  CK(cudaMemcpy(dxi.p, xi.data(), xi.size() * 8, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dvi.p, vi.data(), vi.size() * 8, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(did.p, idi.data(), idi.size() * 8, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dx.p, x.data(), x.size() * 8, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dv.p, v.data(), v.size() * 8, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dm.p, m.data(), m.size() * 8, cudaMemcpyHostToDevice));
  CK(cudaMemset(da.p, 0x7f, (3 * ni + 3) * 8));
  CK(cudaMemset(dp.p, 0x7f, (ni + 1) * 8));
  auto call = [&] {
    baobab::nbody::forces_device(dxi.p, dvi.p, reinterpret_cast<const int64_t*>(did.p), ni, dx.p, dv.p, dm.p, n,
                                 first_id, eps2, da.p, dj.p, dp.p, nullptr);
  };
  call();
  CK(cudaDeviceSynchronize());
  if (ms) {
    cudaEvent_t a, b;
    CK(cudaEventCreate(&a));
    CK(cudaEventCreate(&b));
    float best = 1e30f;
    for (int r = 0; r < 5; ++r) {
      CK(cudaEventRecord(a));
      call();
      CK(cudaEventRecord(b));
      CK(cudaEventSynchronize(b));
      float t = 0;
      CK(cudaEventElapsedTime(&t, a, b));
      best = std::min(best, t);
    }
    *ms = best;
  }
  acc.resize(size_t(3 * ni + 3));
  jerk.resize(size_t(3 * ni + 3));
  pot.resize(size_t(ni + 1));
  CK(cudaMemcpy(acc.data(), da.p, acc.size() * 8, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(jerk.data(), dj.p, jerk.size() * 8, cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(pot.data(), dp.p, pot.size() * 8, cudaMemcpyDeviceToHost));
}

double row_err(const double* a, const double* b, int k) {
  double d = 0, r = 0;
  for (int c = 0; c < k; ++c) {
    d += (a[c] - b[c]) * (a[c] - b[c]);
    r += b[c] * b[c];
  }
  return r == 0 ? std::sqrt(d) : std::sqrt(d / r);
}

}  // namespace

int main() {
  int ndev = 0;
  if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
    std::printf("no CUDA device: nothing checked\n");
    return 0;
  }
  std::mt19937_64 g(7);
  std::normal_distribution<double> nd;
  double worst = 0;
  int cases = 0;
  for (int64_t n : {1, 3, 127, 128, 129, 1000, 5000}) {
    for (int64_t ni : {int64_t(1), int64_t(5), int64_t(127), int64_t(129), int64_t(2000)}) {
      for (double eps2 : {0.0, 1e-4}) {
        const int64_t first_id = int64_t(g() % 100) - 50;
        std::vector<double> x(size_t(3 * n)), v(size_t(3 * n)), m(static_cast<size_t>(n));
        for (auto& a : x) a = nd(g);
        for (auto& a : v) a = nd(g);
        for (auto& a : m) a = (1.0 + std::fabs(nd(g))) / double(n);
        std::vector<double> xi(size_t(3 * ni)), vi(size_t(3 * ni));
        std::vector<int64_t> idi(static_cast<size_t>(ni));
        for (int64_t i = 0; i < ni; ++i) {
          const int64_t j = int64_t(g() % uint64_t(n));
          const bool own = eps2 == 0.0 || g() % 4 != 0;  // with eps2 = 0 only the sources themselves
          for (int c = 0; c < 3; ++c) {
            xi[size_t(3 * i + c)] = own ? x[size_t(3 * j + c)] : nd(g);
            vi[size_t(3 * i + c)] = own ? v[size_t(3 * j + c)] : nd(g);
          }
          idi[size_t(i)] = own ? first_id + j : first_id + int64_t(g() % uint64_t(n + 20)) - 10;
        }
        std::vector<double> ha(size_t(3 * ni)), hj(size_t(3 * ni)), hp(static_cast<size_t>(ni)), da, dj, dp;
        baobab::nbody::forces(xi.data(), vi.data(), idi.data(), ni, x.data(), v.data(), m.data(), n, first_id, eps2,
                              ha.data(), hj.data(), hp.data(), 0);
        run_device(xi, vi, idi, x, v, m, first_id, eps2, da, dj, dp);
        double e = 0;
        for (int64_t i = 0; i < ni; ++i)
          e = std::max({e, row_err(&da[size_t(3 * i)], &ha[size_t(3 * i)], 3),
                        row_err(&dj[size_t(3 * i)], &hj[size_t(3 * i)], 3), row_err(&dp[size_t(i)], &hp[size_t(i)], 1)});
        uint64_t guard;
        std::memcpy(&guard, &dp[size_t(ni)], 8);
        if (guard != 0x7f7f7f7f7f7f7f7fULL) {
          std::printf("FAIL n=%lld ni=%lld: wrote past ni\n", (long long)n, (long long)ni);
          ++g_fail;
        }
        if (!(e <= 1e-12) && n > 1) {
          std::printf("FAIL n=%lld ni=%lld eps2=%g: device vs host %.3e\n", (long long)n, (long long)ni, eps2, e);
          ++g_fail;
        }
        if (n > 1) worst = std::max(worst, e);
        ++cases;
        // Batch independence: the last target alone.
        if (ni > 1) {
          std::vector<double> xs(xi.end() - 3, xi.end()), vs(vi.end() - 3, vi.end()), a1, j1, p1;
          std::vector<int64_t> is(idi.end() - 1, idi.end());
          run_device(xs, vs, is, x, v, m, first_id, eps2, a1, j1, p1);
          if (std::memcmp(a1.data(), &da[size_t(3 * ni - 3)], 24) || std::memcmp(j1.data(), &dj[size_t(3 * ni - 3)], 24) ||
              std::memcmp(p1.data(), &dp[size_t(ni - 1)], 8)) {
            std::printf("FAIL n=%lld ni=%lld: a target alone differs from the batch\n", (long long)n, (long long)ni);
            ++g_fail;
          }
        }
      }
    }
  }
  std::printf("%d cases, worst device vs host relative difference %.2e, %d failures\n", cases, worst, g_fail);

  // Timing.
  const int64_t n = 131072;
  std::vector<double> x(size_t(3 * n)), v(size_t(3 * n)), m(size_t(n), 1.0 / double(n)), a, j, p;
  std::vector<int64_t> id(static_cast<size_t>(n));
  for (auto& q : x) q = nd(g);
  for (auto& q : v) q = nd(g);
  for (int64_t i = 0; i < n; ++i) id[size_t(i)] = i;
  double ms = 0;
  run_device(x, v, id, x, v, m, 0, 1e-6, a, j, p, &ms);
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  int clk = 0;
  CK(cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, 0));
  const int per_sm = prop.major == 9 ? 64 : prop.major == 8 && prop.minor == 0 ? 32 : 0;
  const double rate = double(n) * double(n) / (ms * 1e-3), peak = double(prop.multiProcessorCount) * per_sm * 2 * clk * 1e3;
  std::printf("%s: n = ni = %lld: %.3f ms, %.3e interactions/s, %.2f TFLOP/s (60/interaction), %s%.0f%% of FP64 peak %.1f TFLOP/s\n",
              prop.name, (long long)n, ms, rate, rate * 60 / 1e12, per_sm ? "" : "(peak unknown) ",
              per_sm ? 100 * rate * 60 / peak : 0.0, peak / 1e12);
  return g_fail ? 1 : 0;
}

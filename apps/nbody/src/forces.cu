// CUDA N-body forces: the device twin of forces.cpp (formulas and layout in
// nbody.hpp), float64.
//
// Arithmetic per pair (pair() below, shared by both kernels): r, u, r2 by FMAs,
// 1/sqrt(r2) by CUDA's double rsqrt (max 1 ulp), then mr = m rinv, mr3 = mr
// rinv^2, a = 3 (r.u) rinv^2 and pot -= mr, acc += mr3 r, jerk += mr3 (u - a r).
// The self pair (source index = idi - first_id) adds exactly zero: (m_j, r2) are
// replaced by (0, 1) for it.
//
// One thread per target (forces_kernel). A CTA of kThreads threads walks the
// sources in tiles of kThreads: each thread loads one source (AoS -> SoA) into
// shared memory, then every thread sweeps the tile in order j = 0 .. n-1 with
// its accumulators in registers. As on the host, a thread's result depends
// only on its own target, the sources and eps2 (not on ni, the grid or the
// batch). Threads past ni help load the tiles and store nothing.
//
// j-split (split_kernel, then sum_chunks_kernel). A block step of a Hermite
// code often has 1-100 active bodies among 10^4-10^5: one thread per target is
// then one CTA on one of the 100+ SMs, each thread summing all n sources one
// after the other. The split cuts the sources into C chunks of L consecutive
// sources; CTA (tile t, chunk c) sums the kThreads targets of tile t over
// chunk c, in order and from zero, exactly as the one-thread kernel sums all of
// them, and stores 7 partial sums per target; the second kernel adds a
// target's partials in chunk order c = 0 .. C-1 (a fixed order, no atomics).
// L depends on n alone (plan()), so a target's result depends only on itself,
// the sources and eps2, and the bits are the same from run to run. Warps
// without a target skip the sums (with one target, one warp per CTA works).
// Target sets larger than a slab run in several passes over one partial
// buffer, which stays under kPartialBudget.
//
// When to split (automatic): the one-thread kernel runs ceil(ni / kThreads)
// CTAs. Below one CTA per SM whole SMs idle; at one or two CTAs per SM each
// SM holds 4-8 warps, one or two per scheduler, too few to hide the latency of
// the dependent FP64 FMA and rsqrt chain (a full SM wants 16 or more). The
// split's cost is the partial traffic, 2 x 56 bytes per target per chunk against
// L >= kMinChunk = 256 interactions (15k flops) per target per chunk: 137 flops
// per byte, well above the ~20 flops per byte of an H100's FP64 peak over its
// memory bandwidth, plus a second launch (a few us). So the split runs while
// the one-thread grid has fewer than kSplitCtasPerSm = 2 CTAs per SM: ni <
// 2 x 128 x SMs (33792 on an H100 or H200 with 132 SMs). nbody_check
// (apps/nbody/tests) times both kernels over ni to check this choice.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "baobab/error.hpp"
#include "nbody.hpp"

namespace baobab::nbody {
namespace {

constexpr int kThreads = 128;           // threads per CTA = targets per tile = sources per shared tile
constexpr int64_t kMinChunk = 256;      // sources per chunk, at least
constexpr int64_t kMaxChunks = 256;     // chunks, at most (n > 65536: longer chunks)
constexpr int kSplitCtasPerSm = 2;      // automatic: split below this many one-thread CTAs per SM
constexpr size_t kPartialBudget = size_t(64) << 20;  // bytes of partial sums per pass, at most
constexpr int kSumThreads = 256;

void check(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess) throw CUDAError(std::string("nbody ") + call + " failed: " + cudaGetErrorString(rc));
}

struct Acc {
  double ax = 0, ay = 0, az = 0, jx = 0, jy = 0, jz = 0, pp = 0;
};

// One target (p, q) against the sources sh[.][0 .. len) in order; s: the self
// pair's place in the tile (anything outside [0, len) when there is none).
__device__ __forceinline__ void sweep(Acc& a, const double (*sh)[kThreads], int len, int64_t s, double px,
                                      double py, double pz, double qx, double qy, double qz, double eps2) {
#pragma unroll 8
  for (int k = 0; k < len; ++k) {
    const double dx = sh[0][k] - px, dy = sh[1][k] - py, dz = sh[2][k] - pz;
    const double du = sh[3][k] - qx, dv = sh[4][k] - qy, dw = sh[5][k] - qz;
    double r2 = fma(dx, dx, fma(dy, dy, fma(dz, dz, eps2)));
    double mj = sh[6][k];
    if (k == s) {
      r2 = 1.0;
      mj = 0.0;
    }
    const double ri = rsqrt(r2);
    const double ri2 = ri * ri;
    const double mr = mj * ri;
    const double mr3 = mr * ri2;
    const double rv = fma(dz, dw, fma(dy, dv, dx * du));
    const double al = 3.0 * rv * ri2;
    a.pp -= mr;
    a.ax = fma(mr3, dx, a.ax);
    a.ay = fma(mr3, dy, a.ay);
    a.az = fma(mr3, dz, a.az);
    a.jx = fma(mr3, fma(-al, dx, du), a.jx);
    a.jy = fma(mr3, fma(-al, dy, dv), a.jy);
    a.jz = fma(mr3, fma(-al, dz, dw), a.jz);
  }
}

// Sources j0 .. j0 + len (len <= kThreads) into shared memory, SoA.
__device__ __forceinline__ void load_tile(double (*sh)[kThreads], const double* __restrict__ x,
                                          const double* __restrict__ v, const double* __restrict__ m, int64_t j0,
                                          int len) {
  if (int(threadIdx.x) < len) {
    const int64_t j = j0 + threadIdx.x;
    sh[0][threadIdx.x] = x[3 * j];
    sh[1][threadIdx.x] = x[3 * j + 1];
    sh[2][threadIdx.x] = x[3 * j + 2];
    sh[3][threadIdx.x] = v[3 * j];
    sh[4][threadIdx.x] = v[3 * j + 1];
    sh[5][threadIdx.x] = v[3 * j + 2];
    sh[6][threadIdx.x] = m[j];
  }
}

// The source index of target id, or -1 when it is not one of the n sources.
__device__ __forceinline__ int64_t self_index(int64_t id, int64_t first_id, int64_t n) {
  const uint64_t d = uint64_t(id) - uint64_t(first_id);  // exact when id >= first_id
  return id >= first_id && d < uint64_t(n) ? int64_t(d) : -1;
}

__global__ void __launch_bounds__(kThreads)
    forces_kernel(const double* __restrict__ xi, const double* __restrict__ vi, const int64_t* __restrict__ idi,
                  int64_t ni, const double* __restrict__ x, const double* __restrict__ v,
                  const double* __restrict__ m, int64_t n, int64_t first_id, double eps2, double* __restrict__ acc,
                  double* __restrict__ jerk, double* __restrict__ pot) {
  __shared__ double sh[7][kThreads];
  const int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t it = i < ni ? i : ni - 1;  // threads past the end compute a copy, store nothing
  const double px = xi[3 * it], py = xi[3 * it + 1], pz = xi[3 * it + 2];
  const double qx = vi[3 * it], qy = vi[3 * it + 1], qz = vi[3 * it + 2];
  const int64_t self = self_index(idi[it], first_id, n);
  Acc a;
  for (int64_t j0 = 0; j0 < n; j0 += kThreads) {
    const int len = int(n - j0 < kThreads ? n - j0 : kThreads);
    __syncthreads();  // the previous tile is consumed
    load_tile(sh, x, v, m, j0, len);
    __syncthreads();
    sweep(a, sh, len, self - j0, px, py, pz, qx, qy, qz, eps2);
  }
  if (i < ni) {
    acc[3 * i] = a.ax;
    acc[3 * i + 1] = a.ay;
    acc[3 * i + 2] = a.az;
    jerk[3 * i] = a.jx;
    jerk[3 * i + 1] = a.jy;
    jerk[3 * i + 2] = a.jz;
    pot[i] = a.pp;
  }
}

// CTA (blockIdx.x, blockIdx.y): the targets of tile blockIdx.x over the sources
// of chunk c = blockIdx.y, [c chunk, min(n, (c + 1) chunk)), into part: component
// q (ax ay az jx jy jz pot) of target i is part[(c * 7 + q) * ni + i].
__global__ void __launch_bounds__(kThreads)
    split_kernel(const double* __restrict__ xi, const double* __restrict__ vi, const int64_t* __restrict__ idi,
                 int64_t ni, const double* __restrict__ x, const double* __restrict__ v,
                 const double* __restrict__ m, int64_t n, int64_t first_id, double eps2, int64_t chunk,
                 double* __restrict__ part) {
  __shared__ double sh[7][kThreads];
  const int64_t base = int64_t(blockIdx.x) * kThreads;
  const int64_t i = base + threadIdx.x;
  const int64_t it = i < ni ? i : ni - 1;
  const bool live = base + (threadIdx.x & ~31u) < ni;  // this warp holds a target
  const double px = xi[3 * it], py = xi[3 * it + 1], pz = xi[3 * it + 2];
  const double qx = vi[3 * it], qy = vi[3 * it + 1], qz = vi[3 * it + 2];
  const int64_t self = self_index(idi[it], first_id, n);
  const int64_t c = blockIdx.y;
  const int64_t c0 = c * chunk, c1 = c0 + chunk < n ? c0 + chunk : n;
  Acc a;
  for (int64_t j0 = c0; j0 < c1; j0 += kThreads) {
    const int len = int(c1 - j0 < kThreads ? c1 - j0 : kThreads);
    __syncthreads();
    load_tile(sh, x, v, m, j0, len);
    __syncthreads();
    if (live) sweep(a, sh, len, self - j0, px, py, pz, qx, qy, qz, eps2);
  }
  if (i < ni) {
    double* p = part + c * 7 * ni + i;
    p[0] = a.ax;
    p[ni] = a.ay;
    p[2 * ni] = a.az;
    p[3 * ni] = a.jx;
    p[4 * ni] = a.jy;
    p[5 * ni] = a.jz;
    p[6 * ni] = a.pp;
  }
}

// One thread per (component q, target i), t = q ni + i: the partials of chunks
// 0, 1, .., chunks - 1 added in that order.
__global__ void __launch_bounds__(kSumThreads)
    sum_chunks_kernel(const double* __restrict__ part, int64_t ni, int64_t chunks, double* __restrict__ acc,
                      double* __restrict__ jerk, double* __restrict__ pot) {
  const int64_t t = int64_t(blockIdx.x) * kSumThreads + threadIdx.x;
  if (t >= 7 * ni) return;
  const int64_t q = t / ni, i = t - q * ni;
  const double* p = part + t;
  const int64_t stride = 7 * ni;
  double s = p[0];
#pragma unroll 16
  for (int64_t c = 1; c < chunks; ++c) s += p[c * stride];
  if (q < 3)
    acc[3 * i + q] = s;
  else if (q < 6)
    jerk[3 * i + q - 3] = s;
  else
    pot[i] = s;
}

int sm_count() {
  static std::array<std::atomic<int>, 64> cache{};  // per device; 0: not asked yet
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev >= 0 && dev < int(cache.size()))
    if (int c = cache[size_t(dev)].load(std::memory_order_relaxed)) return c;
  int sms = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev), "cudaDeviceGetAttribute");
  sms = std::max(sms, 1);
  if (dev >= 0 && dev < int(cache.size())) cache[size_t(dev)].store(sms, std::memory_order_relaxed);
  return sms;
}

void validate(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x, const double* v,
              const double* m, int64_t n, double* acc, double* jerk, double* pot) {
  if (ni < 0 || n < 0)
    throw InvalidArgument("nbody forces_device: ni and n must not be negative (got ni=" + std::to_string(ni) +
                          ", n=" + std::to_string(n) + ")");
  if (ni == 0) return;
  if (!(xi && vi && idi && acc && jerk && pot))
    throw InvalidArgument("nbody forces_device: a target or output pointer (xi, vi, idi, acc, jerk, pot) is null");
  if (n > 0 && !(x && v && m)) throw InvalidArgument("nbody forces_device: a source pointer (x, v, m) is null");
  if ((ni + kThreads - 1) / kThreads > int64_t(0x7fffffff))
    throw InvalidArgument("nbody forces_device: ni is too large");
}

}  // namespace

DevicePlan device_plan(int64_t ni, int64_t n, DeviceSplit split) {
  if (ni < 0 || n < 0) throw InvalidArgument("nbody device_plan: ni and n must not be negative");
  DevicePlan p;
  if (ni == 0 || n == 0 || split == DeviceSplit::off) return p;
  // chunks of at least kMinChunk sources, whole shared tiles, at most kMaxChunks of them
  const int64_t per = (n + kMaxChunks - 1) / kMaxChunks;
  p.chunk = std::max(kMinChunk, (per + kThreads - 1) / kThreads * kThreads);
  p.chunks = (n + p.chunk - 1) / p.chunk;
  if (split == DeviceSplit::automatic) {
    if (p.chunks < 2 || ni >= int64_t(kSplitCtasPerSm) * kThreads * sm_count()) return DevicePlan{};
  }
  const int64_t per_target = p.chunks * 7 * int64_t(sizeof(double));
  const int64_t slab = std::max<int64_t>(kThreads, int64_t(kPartialBudget) / per_target / kThreads * kThreads);
  p.split = true;
  p.slab = std::min(ni, slab);
  p.work_bytes = size_t(p.slab * per_target);
  return p;
}

void forces_device(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x,
                   const double* v, const double* m, int64_t n, int64_t first_id, double eps2, double* acc,
                   double* jerk, double* pot, void* stream, DeviceSplit split, void* work, size_t work_bytes) {
  validate(xi, vi, idi, ni, x, v, m, n, acc, jerk, pot);
  if (ni == 0) return;
  const auto st = static_cast<cudaStream_t>(stream);
  const DevicePlan p = device_plan(ni, n, split);
  if (!p.split) {
    const int64_t blocks = (ni + kThreads - 1) / kThreads;
    forces_kernel<<<unsigned(blocks), kThreads, 0, st>>>(xi, vi, idi, ni, x, v, m, n, first_id, eps2, acc, jerk,
                                                         pot);
    check(cudaGetLastError(), "kernel launch");
    return;
  }
  if (work && work_bytes < p.work_bytes)
    throw InvalidArgument("nbody forces_device: the scratch buffer has " + std::to_string(work_bytes) +
                          " bytes, the split needs " + std::to_string(p.work_bytes) + " (device_plan)");
  void* own = nullptr;
  if (!work) {
    check(cudaMallocAsync(&own, p.work_bytes, st), "cudaMallocAsync");
    work = own;
  }
  auto* part = static_cast<double*>(work);
  try {
    for (int64_t s0 = 0; s0 < ni; s0 += p.slab) {  // passes reuse `part` in stream order
      const int64_t ns = std::min(p.slab, ni - s0);
      const dim3 grid(unsigned((ns + kThreads - 1) / kThreads), unsigned(p.chunks));
      split_kernel<<<grid, kThreads, 0, st>>>(xi + 3 * s0, vi + 3 * s0, idi + s0, ns, x, v, m, n, first_id, eps2,
                                              p.chunk, part);
      check(cudaGetLastError(), "split kernel launch");
      const int64_t sum_blocks = (7 * ns + kSumThreads - 1) / kSumThreads;
      sum_chunks_kernel<<<unsigned(sum_blocks), kSumThreads, 0, st>>>(part, ns, p.chunks, acc + 3 * s0,
                                                                      jerk + 3 * s0, pot + s0);
      check(cudaGetLastError(), "sum kernel launch");
    }
  } catch (...) {
    if (own) cudaFreeAsync(own, st);
    throw;
  }
  if (own) check(cudaFreeAsync(own, st), "cudaFreeAsync");
}

void forces_device(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x,
                   const double* v, const double* m, int64_t n, int64_t first_id, double eps2, double* acc,
                   double* jerk, double* pot, void* stream) {
  forces_device(xi, vi, idi, ni, x, v, m, n, first_id, eps2, acc, jerk, pot, stream, device_split_default(),
                nullptr, 0);
}

}  // namespace baobab::nbody

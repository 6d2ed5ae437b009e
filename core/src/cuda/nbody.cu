// CUDA N-body forces: the device twin of core/src/nbody/forces.cpp (formulas and
// layout in baobab/nbody.hpp), float64.
//
// Design: one thread per target. A CTA of kThreads threads walks the sources
// in tiles of kThreads: each thread loads one source (AoS -> SoA) into shared
// memory, then every thread sweeps the tile in order j = 0 .. n-1 with its
// accumulators in registers. As on the host, a thread's result depends only on
// its own target, the sources and eps2 (not on ni, the grid or the batch). The
// self pair (source index = idi - first_id) adds exactly zero: (m_j, r2) are
// replaced by (0, 1) for it. 1/sqrt(r2) is CUDA's double rsqrt (max 1 ulp).
// Threads past ni help load the tiles and store nothing.
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "baobab/error.hpp"
#include "baobab/nbody.hpp"

namespace baobab::nbody {
namespace {

constexpr int kThreads = 128;  // threads per CTA = sources per shared tile

void check(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess) throw CUDAError(std::string("nbody ") + call + " failed: " + cudaGetErrorString(rc));
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
  int64_t self = -1;
  {
    const int64_t id = idi[it];
    const uint64_t d = uint64_t(id) - uint64_t(first_id);  // exact when id >= first_id
    if (id >= first_id && d < uint64_t(n)) self = int64_t(d);
  }
  double ax = 0, ay = 0, az = 0, jx = 0, jy = 0, jz = 0, pp = 0;
  for (int64_t j0 = 0; j0 < n; j0 += kThreads) {
    const int64_t len = n - j0 < kThreads ? n - j0 : kThreads;
    __syncthreads();  // the previous tile is consumed
    if (threadIdx.x < len) {
      const int64_t j = j0 + threadIdx.x;
      sh[0][threadIdx.x] = x[3 * j];
      sh[1][threadIdx.x] = x[3 * j + 1];
      sh[2][threadIdx.x] = x[3 * j + 2];
      sh[3][threadIdx.x] = v[3 * j];
      sh[4][threadIdx.x] = v[3 * j + 1];
      sh[5][threadIdx.x] = v[3 * j + 2];
      sh[6][threadIdx.x] = m[j];
    }
    __syncthreads();
    const int64_t s = self - j0;  // the self pair's place in this tile, if any
#pragma unroll 8
    for (int k = 0; k < int(len); ++k) {
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
      pp -= mr;
      ax = fma(mr3, dx, ax);
      ay = fma(mr3, dy, ay);
      az = fma(mr3, dz, az);
      jx = fma(mr3, fma(-al, dx, du), jx);
      jy = fma(mr3, fma(-al, dy, dv), jy);
      jz = fma(mr3, fma(-al, dz, dw), jz);
    }
  }
  if (i < ni) {
    acc[3 * i] = ax;
    acc[3 * i + 1] = ay;
    acc[3 * i + 2] = az;
    jerk[3 * i] = jx;
    jerk[3 * i + 1] = jy;
    jerk[3 * i + 2] = jz;
    pot[i] = pp;
  }
}

}  // namespace

void forces_device(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x,
                   const double* v, const double* m, int64_t n, int64_t first_id, double eps2, double* acc,
                   double* jerk, double* pot, void* stream) {
  if (ni < 0 || n < 0)
    throw InvalidArgument("nbody forces_device: ni and n must not be negative (got ni=" + std::to_string(ni) +
                          ", n=" + std::to_string(n) + ")");
  if (ni == 0) return;
  if (!(xi && vi && idi && acc && jerk && pot))
    throw InvalidArgument("nbody forces_device: a target or output pointer (xi, vi, idi, acc, jerk, pot) is null");
  if (n > 0 && !(x && v && m)) throw InvalidArgument("nbody forces_device: a source pointer (x, v, m) is null");
  const int64_t blocks = (ni + kThreads - 1) / kThreads;
  if (blocks > int64_t(0x7fffffff)) throw InvalidArgument("nbody forces_device: ni is too large");
  forces_kernel<<<unsigned(blocks), kThreads, 0, static_cast<cudaStream_t>(stream)>>>(
      xi, vi, idi, ni, x, v, m, n, first_id, eps2, acc, jerk, pot);
  check(cudaGetLastError(), "kernel launch");
}

}  // namespace baobab::nbody

// The log-sum-exp merge of partial attention rows [out_0 .. out_{d-1}, lse] on
// a device: the reduction of tree_decode's collective when its rows live on a
// GPU. The same formulas as the host operator (core/src/attention/merge.cpp),
// commutative to the bit: every product and sum is rounded on its own
// (__fmul_rn, __fadd_rn: never fused into an FMA, which would make
// fa*x + fb*y depend on the operand order). exp and log are the device's,
// within a few ulps of the host's: a rank merging on the host and one on a
// device agree to rounding, ranks on the same kind of device to the bit.
// One warp per row, the output columns strided over its lanes.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>

#include "baobab/device.hpp"
#include "baobab/error.hpp"

namespace baobab::cuda {
namespace {

__device__ __forceinline__ float mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float divide(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double divide(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float ex(float x) { return expf(x); }
__device__ __forceinline__ double ex(double x) { return exp(x); }
__device__ __forceinline__ float lg(float x) { return logf(x); }
__device__ __forceinline__ double lg(double x) { return log(x); }

template <class T>
__global__ void k_merge(T* dst, const T* a, const T* b, size_t rows, int64_t d) {
  const size_t warp = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  const size_t warps = size_t(gridDim.x) * blockDim.x / 32;
  const int64_t row = d + 1;
  for (size_t r = warp; r < rows; r += warps) {
    const T* x = a + r * row;
    const T* y = b + r * row;
    T* o = dst + r * row;
    const T la = x[d], lb = y[d];
    const T m = la > lb ? la : lb;
    const T inf = T(1) / T(0);
    if (m == -inf || m != m) {
      const T fill = m != m ? m : T(0);
      for (int64_t c = lane; c < d; c += 32) o[c] = fill;
      __syncwarp();
      if (lane == 0) o[d] = m;
      continue;
    }
    const T wa = ex(sub(la, m)), wb = ex(sub(lb, m));
    const T w = add(wa, wb);
    const T fa = divide(wa, w), fb = divide(wb, w);
    for (int64_t c = lane; c < d; c += 32) o[c] = add(mul(fa, x[c]), mul(fb, y[c]));
    __syncwarp();  // every lane has read x[d] and y[d] before lane 0 may overwrite them (dst == a)
    if (lane == 0) o[d] = add(m, lg(w));
  }
}

}  // namespace

void merge_rows(void* dst, const void* a, const void* b, size_t rows, int64_t d, bool dbl, void* stream) {
  if (rows == 0) return;
  const size_t warps = rows;
  const unsigned blocks = static_cast<unsigned>(std::min<size_t>((warps * 32 + 255) / 256, 4096));
  auto st = static_cast<cudaStream_t>(stream);
  if (dbl)
    k_merge<double><<<blocks, 256, 0, st>>>(static_cast<double*>(dst), static_cast<const double*>(a),
                                            static_cast<const double*>(b), rows, d);
  else
    k_merge<float><<<blocks, 256, 0, st>>>(static_cast<float*>(dst), static_cast<const float*>(a),
                                           static_cast<const float*>(b), rows, d);
  const cudaError_t rc = cudaGetLastError();
  if (rc != cudaSuccess) throw CUDAError(std::string("attention merge kernel: ") + cudaGetErrorString(rc));
}

}  // namespace baobab::cuda

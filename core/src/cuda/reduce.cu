// Device reduction kernels: dst[i] = a[i] OP b[i], with the bits of the host
// kernels (core/src/reduce/kernels.cpp) for every dtype and op, so that a
// collective gives the same result whether its buffers live on the host or on
// a device, and every rank the same bits:
//  * float32/float64 sum and product are one IEEE operation per element in
//    round-to-nearest (__fadd_rn and friends: never contracted into an FMA);
//  * float16 and bfloat16 are widened to float32 exactly, combined, and rounded
//    to nearest-even once, by the same branch-free bit conversions as the host
//    (NaN payloads included), not by the hardware's conversions;
//  * min and max propagate NaN (quiet, the OR of both payloads) and order
//    -0 < +0, which keeps them commutative down to the bits;
//  * integers wrap modulo 2^bits.
// This file is built without --use_fast_math (denormals are kept).
//
// Layout of the work: when dst, a and b are 16-byte aligned, each thread
// handles 16 bytes per step (one 128-bit load of a and of b, one store),
// grid-stride, two steps in flight; the remainder (fewer than 16 bytes of
// elements) and unaligned buffers take an element-wise kernel.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "baobab/device.hpp"
#include "baobab/error.hpp"

namespace baobab::cuda {
namespace {

__device__ __forceinline__ uint32_t sel(bool c, uint32_t x, uint32_t y) { return c ? x : y; }

__device__ __forceinline__ float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const int32_t em = h & 0x7FFF;
  const uint32_t normal = (uint32_t(em) << 13) + ((127u - 15u) << 23);
  const uint32_t special = (uint32_t(em) << 13) | 0x7F800000u | sel(em > 0x7C00, 0x00400000u, 0u);
  const uint32_t sub = __float_as_uint(__fmul_rn(float(em), 0x1p-24f));
  const uint32_t r = sel(em >= 0x7C00, special, sel(em >= 0x0400, normal, sub));
  return __uint_as_float(r | sign);
}

__device__ __forceinline__ uint16_t f32_to_f16(float f) {
  const uint32_t x = __float_as_uint(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7FFFFFFFu;
  const int32_t sax = int32_t(ax);
  const uint32_t normal = (ax - ((127u - 15u) << 23) + 0x0FFFu + ((ax >> 13) & 1u)) >> 13;
  const uint32_t sub = __float_as_uint(__fadd_rn(__uint_as_float(ax), 0.5f)) - 0x3F000000u;
  const uint32_t nan = 0x7E00u | ((ax >> 13) & 0x03FFu);
  const uint32_t r = sel(sax > 0x7F800000, nan, sel(sax >= 0x477FF000, 0x7C00u, sel(sax >= 0x38800000, normal, sub)));
  return uint16_t(r | sign);
}

__device__ __forceinline__ float bf16_to_f32(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }

__device__ __forceinline__ uint16_t f32_to_bf16(float f) {
  const uint32_t x = __float_as_uint(f);
  const uint32_t rounded = (x + 0x7FFFu + ((x >> 16) & 1u)) >> 16;
  const uint32_t nan = (x >> 16) | 0x0040u;
  return uint16_t(f != f ? nan : rounded);
}

template <class T>
struct Plain {
  using S = T;
  using C = T;
  static __device__ __forceinline__ C load(S x) { return x; }
  static __device__ __forceinline__ S store(C x) { return x; }
};
struct Half {
  using S = uint16_t;
  using C = float;
  static __device__ __forceinline__ C load(S x) { return f16_to_f32(x); }
  static __device__ __forceinline__ S store(C x) { return f32_to_f16(x); }
};
struct BHalf {
  using S = uint16_t;
  using C = float;
  static __device__ __forceinline__ C load(S x) { return bf16_to_f32(x); }
  static __device__ __forceinline__ S store(C x) { return f32_to_bf16(x); }
};

template <class T>
struct Wrap {
  using type = std::conditional_t<(sizeof(T) < sizeof(unsigned)), unsigned, std::make_unsigned_t<T>>;
};

template <class F>
__device__ __forceinline__ F fadd(F a, F b) {
  if constexpr (sizeof(F) == 4) return __fadd_rn(a, b);
  else return __dadd_rn(a, b);
}
template <class F>
__device__ __forceinline__ F fmul(F a, F b) {
  if constexpr (sizeof(F) == 4) return __fmul_rn(a, b);
  else return __dmul_rn(a, b);
}

template <class F>
using Bits = std::conditional_t<sizeof(F) == 4, uint32_t, unsigned long long>;

template <class F>
__device__ __forceinline__ Bits<F> to_bits(F x) {
  if constexpr (sizeof(F) == 4) return __float_as_uint(x);
  else return static_cast<unsigned long long>(__double_as_longlong(x));
}
template <class F>
__device__ __forceinline__ F from_bits(Bits<F> u) {
  if constexpr (sizeof(F) == 4) return __uint_as_float(u);
  else return __longlong_as_double(static_cast<long long>(u));
}

// The host's float_minmax, operation for operation.
template <class F, bool IsMin>
__device__ __forceinline__ F float_minmax(F a, F b) {
  using U = Bits<F>;
  constexpr U quiet = U(1) << (sizeof(F) == 4 ? 22 : 51);
  const U ua = to_bits(a), ub = to_bits(b);
  const U eq = U(0) - U(a == b);
  const U an = U(0) - U(a != a), bn = U(0) - U(b != b), un = an | bn;
  const U nan = (ua & an) | (ub & bn) | quiet;
  const U r = IsMin ? (to_bits(a < b ? a : b) | (eq & ua)) : (to_bits(b < a ? a : b) & (~eq | ua));
  return from_bits<F>((r & ~un) | (nan & un));
}

struct Sum {
  template <class T>
  static __device__ __forceinline__ T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      using W = typename Wrap<T>::type;
      return T(W(a) + W(b));
    } else {
      return fadd(a, b);
    }
  }
};
struct Prod {
  template <class T>
  static __device__ __forceinline__ T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) {
      using W = typename Wrap<T>::type;
      return T(W(a) * W(b));
    } else {
      return fmul(a, b);
    }
  }
};
struct Min {
  template <class T>
  static __device__ __forceinline__ T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return b < a ? b : a;
    else return float_minmax<T, true>(a, b);
  }
};
struct Max {
  template <class T>
  static __device__ __forceinline__ T f(T a, T b) {
    if constexpr (std::is_integral_v<T>) return a < b ? b : a;
    else return float_minmax<T, false>(a, b);
  }
};

template <class E, class Op>
__device__ __forceinline__ typename E::S apply(typename E::S x, typename E::S y) {
  return E::store(Op::f(E::load(x), E::load(y)));
}

// 16 bytes per step: K elements of S in one uint4.
template <class E, class Op>
__global__ void __launch_bounds__(256) k_vec(uint4* d, const uint4* a, const uint4* b, size_t nvec) {
  using S = typename E::S;
  constexpr int K = 16 / sizeof(S);
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + stride < nvec; i += 2 * stride) {  // two steps in flight
    uint4 x0 = a[i], y0 = b[i], x1 = a[i + stride], y1 = b[i + stride];
    S* p0 = reinterpret_cast<S*>(&x0);
    const S* q0 = reinterpret_cast<const S*>(&y0);
    S* p1 = reinterpret_cast<S*>(&x1);
    const S* q1 = reinterpret_cast<const S*>(&y1);
#pragma unroll
    for (int k = 0; k < K; ++k) {
      p0[k] = apply<E, Op>(p0[k], q0[k]);
      p1[k] = apply<E, Op>(p1[k], q1[k]);
    }
    d[i] = x0;
    d[i + stride] = x1;
  }
  if (i < nvec) {
    uint4 x0 = a[i], y0 = b[i];
    S* p0 = reinterpret_cast<S*>(&x0);
    const S* q0 = reinterpret_cast<const S*>(&y0);
#pragma unroll
    for (int k = 0; k < K; ++k) p0[k] = apply<E, Op>(p0[k], q0[k]);
    d[i] = x0;
  }
}

template <class E, class Op>
__global__ void __launch_bounds__(256) k_elem(typename E::S* d, const typename E::S* a, const typename E::S* b,
                                              size_t n) {
  const size_t stride = size_t(gridDim.x) * blockDim.x;
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) d[i] = apply<E, Op>(a[i], b[i]);
}

int sm_count() {
  static int n = [] {
    int dev = 0, v = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
      v = 80;
    cudaGetLastError();
    return v;
  }();
  return n;
}

unsigned grid_for(size_t items) {
  const size_t want = (items + 255) / 256;
  const size_t cap = size_t(sm_count()) * 8;
  return static_cast<unsigned>(std::max<size_t>(1, std::min(want, cap)));
}

void check_launch(const char* what) {
  const cudaError_t rc = cudaGetLastError();
  if (rc != cudaSuccess) throw CUDAError(std::string(what) + ": " + cudaGetErrorString(rc));
}

template <class E, class Op>
void launch(void* dst, const void* a, const void* b, size_t n, cudaStream_t st) {
  using S = typename E::S;
  if (n == 0) return;
  constexpr size_t K = 16 / sizeof(S);
  auto* d = static_cast<S*>(dst);
  auto* x = static_cast<const S*>(a);
  auto* y = static_cast<const S*>(b);
  const bool aligned = ((reinterpret_cast<uintptr_t>(dst) | reinterpret_cast<uintptr_t>(a) |
                         reinterpret_cast<uintptr_t>(b)) & 15u) == 0;
  size_t done = 0;
  if (aligned && n >= K) {
    const size_t nvec = n / K;
    k_vec<E, Op><<<grid_for((nvec + 1) / 2), 256, 0, st>>>(reinterpret_cast<uint4*>(d), reinterpret_cast<const uint4*>(x),
                                                          reinterpret_cast<const uint4*>(y), nvec);
    done = nvec * K;
  }
  if (done < n) k_elem<E, Op><<<grid_for(n - done), 256, 0, st>>>(d + done, x + done, y + done, n - done);
  check_launch("device reduction kernel");
}

template <class E>
void launch_op(RedOp op, void* dst, const void* a, const void* b, size_t n, cudaStream_t st) {
  switch (op) {
    case RedOp::sum: return launch<E, Sum>(dst, a, b, n, st);
    case RedOp::prod: return launch<E, Prod>(dst, a, b, n, st);
    case RedOp::min: return launch<E, Min>(dst, a, b, n, st);
    case RedOp::max: return launch<E, Max>(dst, a, b, n, st);
    default: throw InvalidArgument("device reduce: invalid op " + std::to_string(unsigned(op)));
  }
}

}  // namespace

void reduce(DType dtype, RedOp op, void* dst, const void* a, const void* b, size_t n, void* stream) {
  auto st = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::f16: return launch_op<Half>(op, dst, a, b, n, st);
    case DType::bf16: return launch_op<BHalf>(op, dst, a, b, n, st);
    case DType::f32: return launch_op<Plain<float>>(op, dst, a, b, n, st);
    case DType::f64: return launch_op<Plain<double>>(op, dst, a, b, n, st);
    case DType::i8: return launch_op<Plain<int8_t>>(op, dst, a, b, n, st);
    case DType::i16: return launch_op<Plain<int16_t>>(op, dst, a, b, n, st);
    case DType::i32: return launch_op<Plain<int32_t>>(op, dst, a, b, n, st);
    case DType::i64: return launch_op<Plain<int64_t>>(op, dst, a, b, n, st);
    case DType::u8: return launch_op<Plain<uint8_t>>(op, dst, a, b, n, st);
    case DType::u16: return launch_op<Plain<uint16_t>>(op, dst, a, b, n, st);
    case DType::u32: return launch_op<Plain<uint32_t>>(op, dst, a, b, n, st);
    case DType::u64: return launch_op<Plain<uint64_t>>(op, dst, a, b, n, st);
    default:
      throw InvalidArgument("device reduce: no kernel for dtype " + std::string(dtype_name(dtype)) +
                            (dtype == DType::byte ? " (opaque bytes cannot be reduced)" : ""));
  }
}

}  // namespace baobab::cuda

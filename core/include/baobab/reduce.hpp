// Typed elementwise reduction kernels.
//
// Every kernel computes dst[i] = a[i] OP b[i] for i < n. dst may be the same
// pointer as a or as b (in-place accumulation); buffers never partially overlap.
// Results are deterministic and independent of the instruction set chosen at run
// time: float sums and products are single IEEE operations per element (no FMA
// contraction, no reassociation); float16 and bfloat16 are computed in float32
// and rounded to nearest-even once, which is what numpy does for float16.
// min and max propagate NaN (if either operand is NaN the result is NaN), which
// keeps them commutative, so every rank of an allreduce gets the same bits.
// Integer sum and product wrap modulo 2^bits, as numpy does.
#pragma once
#include <cstddef>

#include "baobab/dtype.hpp"

namespace baobab {

using ReduceKernel = void (*)(void* dst, const void* a, const void* b, size_t n);

// The kernel for (dtype, op). Throws InvalidArgument for DType::byte or an
// out-of-range enum.
ReduceKernel reduce_kernel(DType dtype, RedOp op);

// A reduction as the collective engine sees it: an operation on elements of
// elem_size bytes. Typed kernels fill kernel; operators with parameters (the
// attention log-sum-exp merge) use fn + ctx.
struct Reduction {
  ReduceKernel kernel = nullptr;
  void (*fn)(void* dst, const void* a, const void* b, size_t n, const void* ctx) = nullptr;
  const void* ctx = nullptr;
  size_t elem_size = 0;
  uint8_t dtype = 0, op = 0;  // identify the reduction in mismatch checks

  void operator()(void* dst, const void* a, const void* b, size_t n) const {
    if (kernel) kernel(dst, a, b, n);
    else fn(dst, a, b, n, ctx);
  }
  explicit operator bool() const { return kernel != nullptr || fn != nullptr; }
};

// The op code signatures carry for the attention log-sum-exp merge.
constexpr uint8_t kLseMergeOp = 100;

inline Reduction typed_reduction(DType dtype, RedOp op) {
  Reduction r;
  r.kernel = reduce_kernel(dtype, op);
  r.elem_size = dtype_size(dtype);
  r.dtype = static_cast<uint8_t>(dtype);
  r.op = static_cast<uint8_t>(op);
  return r;
}

}  // namespace baobab

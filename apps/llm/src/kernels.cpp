// The LLM application's host kernels: see llm.hpp.
//
// Design
// ------
// Every kernel is a loop over rows (or over elements), memory bound except the
// GELU and the exponentials of the cross-entropy. A row is done start to end by
// one thread while it sits in L1: LayerNorm reads it three times (mean, centred
// variance, output), its backward twice; the fused cross-entropy reads it for
// the max, writes the exponentials in place while summing them, and scales them
// (one exp per element; the row never leaves the cache). Work goes to threads
// in items of consecutive rows handed out dynamically (baobab/parallel.hpp);
// the item size never changes a result.
//
// Column sums. dw, db and bias gradients sum n rows into c columns. Rows are
// cut into blocks of kRowBlock; each block's sum (rows in order) goes to its
// own slot of a scratch array, and the slots are added in block order after
// the threads join -- the same bits for any thread count, and float32 sums of
// about 32 + n / 32 terms deep instead of n.
//
// Instruction sets come from baobab's SIMD layer (baobab/simd.hpp): the tier
// code (kernels.inc) is written once against simd::F32 / simd::F64 and
// compiled per tier by baobab/simd_tiers.hpp; the tier is picked once per
// process with simd::select("BAOBAB_LLM_ISA"), the best the CPU runs, capped by
// BAOBAB_LLM_ISA=baseline|avx2|avx512. exp is the layer's (under 1 ulp for
// float, 4e-16 relative for double; std::exp on baseline).
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "baobab/error.hpp"
#include "baobab/parallel.hpp"
#include "baobab/simd.hpp"
#include "llm.hpp"

#if defined(__FAST_MATH__) || (defined(__FINITE_MATH_ONLY__) && __FINITE_MATH_ONLY__)
#error "the LLM kernels must not be built with -ffast-math / -ffinite-math-only (they rely on inf and NaN)"
#endif

#define BAOBAB_SIMD_BODY "kernels.inc"
#define BAOBAB_SIMD_NAMESPACE baobab::llm
#include "baobab/simd_tiers.hpp"

namespace baobab::llm {
namespace {

using simd::Tier;

// Work per thread, at least, in bytes a kernel streams (compute-bound kernels
// count theirs several times, see work()): parallel::run starts its threads for
// each call, ~28 us per extra thread here (an empty run on 2 threads), and a
// second core reads the data from L3, not from the first core's L2. Measured
// (2048 x 384 float32): bias_grad, 3 MB read, 93 us on one thread and no faster
// on two; bias_residual (9 MB) 1.6x faster on two. 2 MiB (~80 us on a core)
// per thread keeps bias_grad of that size on one thread and splits the rest.
constexpr int64_t kMinWorkPerThread = int64_t(2) << 20;
// Elements per work item handed to a thread.
constexpr int64_t kItem = 1 << 14;

Tier tier() {
  static const Tier t = simd::select("BAOBAB_LLM_ISA");
  return t;
}

void check_dims(int64_t n, int64_t c, const char* fn) {
  if (n < 0 || c < 0) throw InvalidArgument(std::string("llm ") + fn + ": negative shape");
}

// Runs fn(r0, r1) over [0, n) in items of `per` rows on up to `threads` threads.
template <class F>
void over_rows(int64_t n, int64_t per, int threads, const F& fn) {
  const int64_t items = (n + per - 1) / per;
  parallel::run(threads, items, [&](int, int64_t it) { fn(it * per, std::min(n, (it + 1) * per)); });
}

// Rows per item for rows of c elements.
int64_t rows_per_item(int64_t c) { return std::max<int64_t>(1, kItem / std::max<int64_t>(c, 1)); }

// The work of a kernel over `elements` elements of T for plan_threads: the bytes
// it streams (`passes` arrays of the size), times `weight` for the compute-bound
// ones (measured time per byte against a streaming kernel's).
template <class T>
int64_t work(int64_t elements, int passes, int weight = 1) {
  return elements * int64_t(sizeof(T)) * passes * weight;
}

// Column sums over row blocks: block(r0, r1, slot) fills a slot of k vectors
// of c (k = outs.size()) from rows [r0, r1); then vector q of every slot is
// summed in block order into outs[q].
template <class T, class F>
void blocked_col_sums(int64_t n, int64_t c, int threads, const std::vector<T*>& outs, const F& block) {
  const int64_t blocks = (n + kRowBlock - 1) / kRowBlock;
  const int64_t k = int64_t(outs.size());
  if (blocks == 0) {
    for (T* o : outs) std::fill(o, o + c, T(0));
    return;
  }
  parallel::AlignedArray<T> part(size_t(blocks * k * c));
  T* p = part.get();
  parallel::run(threads, blocks, [&](int, int64_t b) {
    block(b * kRowBlock, std::min(n, (b + 1) * kRowBlock), p + b * k * c);
  });
  const Tier t = tier();
  for (int64_t q = 0; q < k; ++q)
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::col_sum(p + q * c, k * c, c, outs[size_t(q)], 0, blocks));
}

template <class T>
void need(const T* p, int64_t count, const char* fn, const char* name) {
  if (count > 0 && !p) throw InvalidArgument(std::string("llm ") + fn + ": " + name + " is null");
}

void check_vocab(int64_t n, int64_t v, int64_t valid, const char* fn) {
  check_dims(n, v, fn);
  if (n > 0 && (valid < 1 || valid > v))
    throw InvalidArgument(std::string("llm ") + fn + ": valid must be in 1.." + std::to_string(v) + ", got " +
                          std::to_string(valid));
}

}  // namespace

int plan_threads(int64_t work, int threads) {
  const int64_t want = threads > 0 ? threads : parallel::usable_cpus();
  const int64_t cap = std::max<int64_t>(1, work / kMinWorkPerThread);
  return int(std::max<int64_t>(1, std::min(want, cap)));
}

template <class T>
void layernorm_forward(const T* x, const T* w, const T* b, int64_t n, int64_t c, T eps, T* y, T* mean, T* rstd,
                       int threads) {
  check_dims(n, c, "layernorm_forward");
  if (n == 0) return;
  if (c == 0) throw InvalidArgument("llm layernorm_forward: rows of 0 columns have no mean");
  need(x, n * c, "layernorm_forward", "x");
  need(w, c, "layernorm_forward", "w");
  need(b, c, "layernorm_forward", "b");
  need(y, n * c, "layernorm_forward", "y");
  need(mean, n, "layernorm_forward", "mean");
  need(rstd, n, "layernorm_forward", "rstd");
  const Tier t = tier();
  over_rows(n, rows_per_item(c), plan_threads(work<T>(n * c, 2), threads), [&](int64_t r0, int64_t r1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::ln_forward(x, w, b, c, eps, y, mean, rstd, r0, r1));
  });
}

template <class T>
void layernorm_backward(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, int64_t n, int64_t c,
                        T* dx, T* dw, T* db, int threads) {
  check_dims(n, c, "layernorm_backward");
  need(dy, n * c, "layernorm_backward", "dy");
  need(x, n * c, "layernorm_backward", "x");
  need(w, c, "layernorm_backward", "w");
  need(mean, n, "layernorm_backward", "mean");
  need(rstd, n, "layernorm_backward", "rstd");
  need(dx, n * c, "layernorm_backward", "dx");
  need(dw, c, "layernorm_backward", "dw");
  need(db, c, "layernorm_backward", "db");
  if (c == 0) return;
  const Tier t = tier();
  blocked_col_sums<T>(n, c, plan_threads(work<T>(n * c, 3), threads), {dw, db}, [&](int64_t r0, int64_t r1, T* slot) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::ln_backward(dy, x, w, mean, rstd, c, dx, slot, slot + c, r0, r1));
  });
}

template <class T>
void bias_gelu_forward(const T* h, const T* bias, int64_t n, int64_t c, T* u, T* a, int threads) {
  check_dims(n, c, "bias_gelu_forward");
  need(h, n * c, "bias_gelu_forward", "h");
  need(a, n * c, "bias_gelu_forward", "a");
  if (bias) need(u, n * c, "bias_gelu_forward", "u");
  const Tier t = tier();
  over_rows(n, rows_per_item(c), plan_threads(work<T>(n * c, 3, 4), threads), [&](int64_t r0, int64_t r1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::bias_gelu(h, bias, c, u, a, r0, r1));
  });
}

template <class T>
void gelu_backward(const T* da, const T* u, int64_t count, T* du, int threads) {
  check_dims(count, 0, "gelu_backward");
  need(da, count, "gelu_backward", "da");
  need(u, count, "gelu_backward", "u");
  need(du, count, "gelu_backward", "du");
  const Tier t = tier();
  over_rows(count, kItem, plan_threads(work<T>(count, 3, 4), threads), [&](int64_t i0, int64_t i1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::gelu_back(da, u, du, i0, i1));
  });
}

template <class T>
void bias_residual(const T* h, const T* bias, const T* res, int64_t n, int64_t c, T* out, int threads) {
  check_dims(n, c, "bias_residual");
  need(h, n * c, "bias_residual", "h");
  need(res, n * c, "bias_residual", "residual");
  need(out, n * c, "bias_residual", "out");
  const Tier t = tier();
  over_rows(n, rows_per_item(c), plan_threads(work<T>(n * c, 3), threads), [&](int64_t r0, int64_t r1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::bias_res(h, bias, res, c, out, r0, r1));
  });
}

template <class T>
void bias_grad(const T* dy, int64_t n, int64_t c, T* db, int threads) {
  check_dims(n, c, "bias_grad");
  need(dy, n * c, "bias_grad", "dy");
  need(db, c, "bias_grad", "db");
  if (c == 0) return;
  const Tier t = tier();
  blocked_col_sums<T>(n, c, plan_threads(work<T>(n * c, 1), threads), {db}, [&](int64_t r0, int64_t r1, T* slot) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::col_sum(dy, c, c, slot, r0, r1));
  });
}

template <class T>
void xent_forward_backward(T* logits, const int64_t* targets, int64_t n, int64_t v, int64_t valid, T scale,
                           T* losses, int threads) {
  check_vocab(n, v, valid, "xent_forward_backward");
  need(logits, n * v, "xent_forward_backward", "logits");
  need(targets, n, "xent_forward_backward", "targets");
  need(losses, n, "xent_forward_backward", "losses");
  for (int64_t i = 0; i < n; ++i)
    if (targets[i] < 0 || targets[i] >= valid)
      throw InvalidArgument("llm xent_forward_backward: targets[" + std::to_string(i) + "] = " +
                            std::to_string(targets[i]) + " is outside [0, " + std::to_string(valid) + ")");
  const Tier t = tier();
  over_rows(n, rows_per_item(v), plan_threads(work<T>(n * v, 2, 2), threads), [&](int64_t r0, int64_t r1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::xent_fused(logits, targets, v, valid, scale, losses, r0, r1));
  });
}

template <class T>
void xent_local_max(const T* logits, int64_t n, int64_t v, int64_t valid, T* rowmax, int threads) {
  check_vocab(n, v, valid, "xent_local_max");
  need(logits, n * v, "xent_local_max", "logits");
  need(rowmax, n, "xent_local_max", "rowmax");
  const Tier t = tier();
  over_rows(n, rows_per_item(v), plan_threads(work<T>(n * v, 1), threads), [&](int64_t r0, int64_t r1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::xent_max(logits, v, valid, rowmax, r0, r1));
  });
}

template <class T>
void xent_local_sumexp(const T* logits, const int64_t* targets, int64_t n, int64_t v, int64_t valid,
                       int64_t vocab_start, const T* gmax, T* sumexp, T* target_logit, int threads) {
  check_vocab(n, v, valid, "xent_local_sumexp");
  if (vocab_start < 0) throw InvalidArgument("llm xent_local_sumexp: vocab_start must not be negative");
  need(logits, n * v, "xent_local_sumexp", "logits");
  need(targets, n, "xent_local_sumexp", "targets");
  need(gmax, n, "xent_local_sumexp", "gmax");
  need(sumexp, n, "xent_local_sumexp", "sumexp");
  need(target_logit, n, "xent_local_sumexp", "target_logit");
  for (int64_t i = 0; i < n; ++i)
    if (targets[i] < 0)
      throw InvalidArgument("llm xent_local_sumexp: targets[" + std::to_string(i) + "] is negative");
  const Tier t = tier();
  over_rows(n, rows_per_item(v), plan_threads(work<T>(n * v, 1, 3), threads), [&](int64_t r0, int64_t r1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::xent_sumexp(logits, targets, v, valid, vocab_start, gmax, sumexp,
                                                 target_logit, r0, r1));
  });
}

template <class T>
void xent_grad(T* logits, const int64_t* targets, int64_t n, int64_t v, int64_t valid, int64_t vocab_start,
               const T* lse, T scale, int threads) {
  check_vocab(n, v, valid, "xent_grad");
  if (vocab_start < 0) throw InvalidArgument("llm xent_grad: vocab_start must not be negative");
  need(logits, n * v, "xent_grad", "logits");
  need(targets, n, "xent_grad", "targets");
  need(lse, n, "xent_grad", "lse");
  for (int64_t i = 0; i < n; ++i)
    if (targets[i] < 0) throw InvalidArgument("llm xent_grad: targets[" + std::to_string(i) + "] is negative");
  const Tier t = tier();
  over_rows(n, rows_per_item(v), plan_threads(work<T>(n * v, 2, 2), threads), [&](int64_t r0, int64_t r1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::xent_grad(logits, targets, v, valid, vocab_start, lse, scale, r0, r1));
  });
}

namespace {

template <class T>
void to_bf16_any(const T* x, int64_t count, uint16_t* out, int threads) {
  check_dims(count, 0, "to_bfloat16");
  need(x, count, "to_bfloat16", "x");
  need(out, count, "to_bfloat16", "out");
  const Tier t = tier();
  over_rows(count, kItem, plan_threads(count * int64_t(sizeof(T) + 2), threads), [&](int64_t i0, int64_t i1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::to_bf16(x, out, i0, i1));
  });
}

template <class T>
void from_bf16_any(const uint16_t* x, int64_t count, T* out, int threads) {
  check_dims(count, 0, "from_bfloat16");
  need(x, count, "from_bfloat16", "x");
  need(out, count, "from_bfloat16", "out");
  const Tier t = tier();
  over_rows(count, kItem, plan_threads(count * int64_t(sizeof(T) + 2), threads), [&](int64_t i0, int64_t i1) {
    BAOBAB_SIMD_DISPATCH(t, Kern<T>::from_bf16(x, out, i0, i1));
  });
}

}  // namespace

void to_bfloat16(const float* x, int64_t count, uint16_t* out, int threads) { to_bf16_any(x, count, out, threads); }
void to_bfloat16(const double* x, int64_t count, uint16_t* out, int threads) { to_bf16_any(x, count, out, threads); }
void from_bfloat16(const uint16_t* x, int64_t count, float* out, int threads) {
  from_bf16_any(x, count, out, threads);
}
void from_bfloat16(const uint16_t* x, int64_t count, double* out, int threads) {
  from_bf16_any(x, count, out, threads);
}

std::string isa() { return simd::name(tier()); }

std::vector<std::string> tiers() {
  std::vector<std::string> r;
  for (Tier t : simd::tiers()) r.emplace_back(simd::name(t));
  return r;
}

#define BAOBAB_LLM_INSTANTIATE(T)                                                                                   \
  template void layernorm_forward<T>(const T*, const T*, const T*, int64_t, int64_t, T, T*, T*, T*, int);         \
  template void layernorm_backward<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, \
                                      T*, int);                                                                   \
  template void bias_gelu_forward<T>(const T*, const T*, int64_t, int64_t, T*, T*, int);                          \
  template void gelu_backward<T>(const T*, const T*, int64_t, T*, int);                                           \
  template void bias_residual<T>(const T*, const T*, const T*, int64_t, int64_t, T*, int);                        \
  template void bias_grad<T>(const T*, int64_t, int64_t, T*, int);                                                \
  template void xent_forward_backward<T>(T*, const int64_t*, int64_t, int64_t, int64_t, T, T*, int);              \
  template void xent_local_max<T>(const T*, int64_t, int64_t, int64_t, T*, int);                                  \
  template void xent_local_sumexp<T>(const T*, const int64_t*, int64_t, int64_t, int64_t, int64_t, const T*, T*,  \
                                     T*, int);                                                                    \
  template void xent_grad<T>(T*, const int64_t*, int64_t, int64_t, int64_t, int64_t, const T*, T, int);
BAOBAB_LLM_INSTANTIATE(float)
BAOBAB_LLM_INSTANTIATE(double)
#undef BAOBAB_LLM_INSTANTIATE

}  // namespace baobab::llm

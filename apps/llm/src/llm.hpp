// The LLM application's host kernels (apps/llm/src, built into the extension
// module baobab_apps._llm): the memory-bound pieces of a GPT's forward and
// backward pass that numpy would run as several passes with temporaries --
// LayerNorm, bias + GELU (tanh), bias + residual, bias gradients, and the
// softmax cross-entropy, whole or split over vocabulary shards -- and the
// float32 <-> bfloat16 conversions. apps/llm/ops.py is their Python face.
//
// Layout: T is float or double; matrices are row-major (n rows, c columns),
// dense (row stride c); vectors have c (per column) or n (per row) elements.
// Outputs are overwritten. `threads`: 0 = all usable cores, k = at most k;
// fewer run when the work is too small to pay for a thread (plan_threads).
//
// Reproducibility. Every kernel gives the same bits for any thread count (for
// one instruction-set tier): row kernels compute a row with the same code
// wherever it lands, and the column sums (dw, db, bias_grad) add fixed blocks
// of kRowBlock consecutive rows each, then the block sums in block order --
// neither depends on which thread did what. Tiers agree to round-off (FMA,
// vector widths).
//
// The pointers are not checked here beyond null with a non-zero size; the
// module (module.cpp) checks dtypes, shapes and layouts.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace baobab::llm {

// Rows per block of the column sums; fixed, so that the sums do not depend on
// the thread count.
inline constexpr int64_t kRowBlock = 32;

// LayerNorm over each row: mean, rstd = 1 / sqrt(var + eps) (biased variance,
// from the centred values), y = (x - mean) rstd w + b.
template <class T>
void layernorm_forward(const T* x, const T* w, const T* b, int64_t n, int64_t c, T eps, T* y, T* mean, T* rstd,
                       int threads);

// Its backward: with xh = (x - mean) rstd and g = dy w,
//   dx = rstd (g - mean_j(g) - xh mean_j(g xh)),  dw = sum_rows dy xh,  db = sum_rows dy.
template <class T>
void layernorm_backward(const T* dy, const T* x, const T* w, const T* mean, const T* rstd, int64_t n, int64_t c,
                        T* dx, T* dw, T* db, int threads);

// u = h + bias (bias null: u is not written; the GELU reads h), a = gelu(u)
// with gelu(u) = 0.5 u (1 + tanh(z)), z = sqrt(2/pi) (u + 0.044715 u^3),
// evaluated as u / (1 + exp(-2 z)) (no cancellation for u << 0); for u <= -10
// (float) resp. -20 (double), where gelu and its slope are below 1e-37 resp.
// 1e-260, both are their limit 0 (kernels.inc, Gelu).
template <class T>
void bias_gelu_forward(const T* h, const T* bias, int64_t n, int64_t c, T* u, T* a, int threads);

// du = da gelu'(u) over `count` elements.
template <class T>
void gelu_backward(const T* da, const T* u, int64_t count, T* du, int threads);

// out = (h + bias) + res (bias null: h + res); out may be h or res.
template <class T>
void bias_residual(const T* h, const T* bias, const T* res, int64_t n, int64_t c, T* out, int threads);

// db = column sums of dy (n, c).
template <class T>
void bias_grad(const T* dy, int64_t n, int64_t c, T* db, int threads);

// Softmax cross-entropy over rows of logits (n, v); only the columns [0, valid)
// take part (the rest are padding: gradient 0). targets: column indices in
// [0, valid). One pass per row: losses[i] = logsumexp(row) - row[t], then the
// row becomes scale (softmax(row) - onehot(t)).
template <class T>
void xent_forward_backward(T* logits, const int64_t* targets, int64_t n, int64_t v, int64_t valid, T scale,
                           T* losses, int threads);

// The vocabulary-parallel pieces: each rank holds columns [vocab_start,
// vocab_start + valid) of the vocabulary in its logits (n, v).
//   local_max: the max of each row's valid columns.
//   local_sumexp: sum_j<valid exp(row_j - gmax[i]), and row[t - vocab_start]
//     when the target t is in the shard, else 0.
//   grad: row := scale (exp(row - lse[i]) - onehot(t - vocab_start)), padding 0.
template <class T>
void xent_local_max(const T* logits, int64_t n, int64_t v, int64_t valid, T* rowmax, int threads);
template <class T>
void xent_local_sumexp(const T* logits, const int64_t* targets, int64_t n, int64_t v, int64_t valid,
                       int64_t vocab_start, const T* gmax, T* sumexp, T* target_logit, int threads);
template <class T>
void xent_grad(T* logits, const int64_t* targets, int64_t n, int64_t v, int64_t valid, int64_t vocab_start,
               const T* lse, T scale, int threads);

// float32 / float64 -> bfloat16 bits, rounded to nearest even once (a float64
// is not rounded to float32 first); NaN stays NaN (sign kept, made quiet).
// bfloat16 -> float32 / float64 is exact.
void to_bfloat16(const float* x, int64_t count, uint16_t* out, int threads);
void to_bfloat16(const double* x, int64_t count, uint16_t* out, int threads);
void from_bfloat16(const uint16_t* x, int64_t count, float* out, int threads);
void from_bfloat16(const uint16_t* x, int64_t count, double* out, int threads);

// The threads a kernel uses for `work` (the bytes it streams, weighted up for
// compute-bound kernels; at least 2 MiB per thread) when asked for `threads`
// (0 = all usable cores).
int plan_threads(int64_t work, int threads);

// The instruction-set tier: "avx512", "avx2" or "baseline", the best the CPU
// runs, capped by BAOBAB_LLM_ISA=baseline|avx2|avx512 (read once per process;
// InvalidArgument for another value).
std::string isa();
// The tiers this build and CPU can run.
std::vector<std::string> tiers();

}  // namespace baobab::llm

// baobab_apps._llm: the LLM application's extension module, over its kernels
// (llm.hpp). Arrays arrive as nb::ndarray without conversion; outputs are
// allocated by the caller (apps/llm/ops.py, which also checks the
// arguments for users and names them). The checks here keep the module
// memory-safe on its own: dtypes (float32 or float64, all alike; targets
// int64; bfloat16 as uint16), shapes and C order. Errors are baobab's
// exception classes (InvalidArgument).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>

#include "app_module.hpp"
#include "baobab/error.hpp"
#include "llm.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using baobab::InvalidArgument;

namespace {

using Arr = nb::ndarray<nb::device::cpu>;
using RoArr = nb::ndarray<nb::ro, nb::device::cpu>;

const char* dtype_name(nb::dlpack::dtype d) {
  if (d == nb::dtype<float>()) return "float32";
  if (d == nb::dtype<double>()) return "float64";
  if (d == nb::dtype<int64_t>()) return "int64";
  if (d == nb::dtype<uint16_t>()) return "uint16";
  return "another dtype";
}

// Checks a's dtype, shape (-1: any extent) and C order.
template <class A>
void check(const A& a, const char* fn, const char* name, nb::dlpack::dtype dt, std::initializer_list<int64_t> shape) {
  const std::string f = std::string("llm ") + fn + ": " + name;
  if (a.dtype() != dt) throw InvalidArgument(f + " must be " + dtype_name(dt) + ", got " + dtype_name(a.dtype()));
  if (a.ndim() != shape.size())
    throw InvalidArgument(f + " must be " + std::to_string(shape.size()) + "-d, got " + std::to_string(a.ndim()) +
                          "-d");
  size_t d = 0;
  for (int64_t s : shape) {
    if (s >= 0 && int64_t(a.shape(d)) != s)
      throw InvalidArgument(f + " has extent " + std::to_string(a.shape(d)) + " in dimension " + std::to_string(d) +
                            ", expected " + std::to_string(s));
    ++d;
  }
  if (a.size() == 0) return;  // no element is read or written (numpy gives such arrays any strides)
  int64_t expect = 1;
  for (size_t k = a.ndim(); k-- > 0;) {
    if (a.shape(k) > 1 && a.stride(k) != expect) throw InvalidArgument(f + " is not C-contiguous");
    expect *= int64_t(a.shape(k));
  }
}

int64_t dim(const RoArr& a, size_t k) { return int64_t(a.shape(k)); }

template <class T>
const T* cp(const RoArr& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
T* wp(const Arr& a) {
  return static_cast<T*>(a.data());
}

// float32 or float64: the kernel's element type is the first float input's.
template <class A>
bool is_f64(const A& a, const char* fn, const char* name) {
  if (a.dtype() == nb::dtype<double>()) return true;
  if (a.dtype() == nb::dtype<float>()) return false;
  throw InvalidArgument(std::string("llm ") + fn + ": " + name + " must be float32 or float64, got " +
                        dtype_name(a.dtype()));
}

int nthreads(int threads, const char* fn) {
  if (threads < 0) throw InvalidArgument(std::string("llm ") + fn + ": threads must not be negative");
  return threads;
}

// out may be exactly `a` or `b`, or disjoint from both.
void check_alias(const Arr& out, const RoArr& a, const RoArr& b, size_t bytes, const char* fn) {
  auto lo = reinterpret_cast<uintptr_t>(out.data());
  auto disjoint_or_same = [&](const void* p) {
    auto q = reinterpret_cast<uintptr_t>(p);
    return q == lo || q + bytes <= lo || lo + bytes <= q;
  };
  if (!disjoint_or_same(a.data()) || !disjoint_or_same(b.data()))
    throw InvalidArgument(std::string("llm ") + fn + ": out overlaps an input without being it");
}

template <class T>
void layernorm_forward(const RoArr& x, const RoArr& w, const RoArr& b, double eps, const Arr& y, const Arr& mean,
                       const Arr& rstd, int threads) {
  const char* fn = "layernorm_forward";
  const auto dt = nb::dtype<T>();
  check(x, fn, "x", dt, {-1, -1});
  const int64_t n = dim(x, 0), c = dim(x, 1);
  check(w, fn, "w", dt, {c});
  check(b, fn, "b", dt, {c});
  check(y, fn, "y", dt, {n, c});
  check(mean, fn, "mean", dt, {n});
  check(rstd, fn, "rstd", dt, {n});
  nb::gil_scoped_release nogil;
  baobab::llm::layernorm_forward<T>(cp<T>(x), cp<T>(w), cp<T>(b), n, c, T(eps), wp<T>(y), wp<T>(mean), wp<T>(rstd),
                                    threads);
}

template <class T>
void layernorm_backward(const RoArr& dy, const RoArr& x, const RoArr& w, const RoArr& mean, const RoArr& rstd,
                        const Arr& dx, const Arr& dw, const Arr& db, int threads) {
  const char* fn = "layernorm_backward";
  const auto dt = nb::dtype<T>();
  check(dy, fn, "dy", dt, {-1, -1});
  const int64_t n = dim(dy, 0), c = dim(dy, 1);
  check(x, fn, "x", dt, {n, c});
  check(w, fn, "w", dt, {c});
  check(mean, fn, "mean", dt, {n});
  check(rstd, fn, "rstd", dt, {n});
  check(dx, fn, "dx", dt, {n, c});
  check(dw, fn, "dw", dt, {c});
  check(db, fn, "db", dt, {c});
  nb::gil_scoped_release nogil;
  baobab::llm::layernorm_backward<T>(cp<T>(dy), cp<T>(x), cp<T>(w), cp<T>(mean), cp<T>(rstd), n, c, wp<T>(dx),
                                     wp<T>(dw), wp<T>(db), threads);
}

template <class T>
void bias_gelu_forward(const RoArr& h, std::optional<RoArr> bias, std::optional<Arr> u, const Arr& a, int threads) {
  const char* fn = "bias_gelu_forward";
  const auto dt = nb::dtype<T>();
  check(h, fn, "h", dt, {-1, -1});
  const int64_t n = dim(h, 0), c = dim(h, 1);
  if (bool(bias) != bool(u)) throw InvalidArgument("llm bias_gelu_forward: u is given exactly when bias is");
  if (bias) {
    check(*bias, fn, "bias", dt, {c});
    check(*u, fn, "u", dt, {n, c});
  }
  check(a, fn, "a", dt, {n, c});
  nb::gil_scoped_release nogil;
  baobab::llm::bias_gelu_forward<T>(cp<T>(h), bias ? cp<T>(*bias) : nullptr, n, c, u ? wp<T>(*u) : nullptr,
                                    wp<T>(a), threads);
}

template <class T>
void gelu_backward(const RoArr& da, const RoArr& u, const Arr& du, int threads) {
  const char* fn = "gelu_backward";
  const auto dt = nb::dtype<T>();
  check(da, fn, "da", dt, {-1, -1});
  const int64_t n = dim(da, 0), c = dim(da, 1);
  check(u, fn, "u", dt, {n, c});
  check(du, fn, "du", dt, {n, c});
  nb::gil_scoped_release nogil;
  baobab::llm::gelu_backward<T>(cp<T>(da), cp<T>(u), n * c, wp<T>(du), threads);
}

template <class T>
void bias_residual(const RoArr& h, std::optional<RoArr> bias, const RoArr& res, const Arr& out, int threads) {
  const char* fn = "bias_residual";
  const auto dt = nb::dtype<T>();
  check(h, fn, "h", dt, {-1, -1});
  const int64_t n = dim(h, 0), c = dim(h, 1);
  if (bias) check(*bias, fn, "bias", dt, {c});
  check(res, fn, "residual", dt, {n, c});
  check(out, fn, "out", dt, {n, c});
  check_alias(out, h, res, size_t(n * c) * sizeof(T), fn);
  nb::gil_scoped_release nogil;
  baobab::llm::bias_residual<T>(cp<T>(h), bias ? cp<T>(*bias) : nullptr, cp<T>(res), n, c, wp<T>(out), threads);
}

template <class T>
void bias_grad(const RoArr& dy, const Arr& db, int threads) {
  const char* fn = "bias_grad";
  const auto dt = nb::dtype<T>();
  check(dy, fn, "dy", dt, {-1, -1});
  const int64_t n = dim(dy, 0), c = dim(dy, 1);
  check(db, fn, "db", dt, {c});
  nb::gil_scoped_release nogil;
  baobab::llm::bias_grad<T>(cp<T>(dy), n, c, wp<T>(db), threads);
}

template <class T>
void xent_forward_backward(const Arr& logits, const RoArr& targets, double scale, int64_t valid, const Arr& losses,
                           int threads) {
  const char* fn = "xent_forward_backward";
  const auto dt = nb::dtype<T>();
  check(logits, fn, "logits", dt, {-1, -1});
  const int64_t n = int64_t(logits.shape(0)), v = int64_t(logits.shape(1));
  check(targets, fn, "targets", nb::dtype<int64_t>(), {n});
  check(losses, fn, "losses", dt, {n});
  nb::gil_scoped_release nogil;
  baobab::llm::xent_forward_backward<T>(wp<T>(logits), cp<int64_t>(targets), n, v, valid, T(scale), wp<T>(losses),
                                        threads);
}

template <class T>
void xent_local_max(const RoArr& logits, int64_t valid, const Arr& rowmax, int threads) {
  const char* fn = "xent_local_max";
  const auto dt = nb::dtype<T>();
  check(logits, fn, "logits", dt, {-1, -1});
  const int64_t n = dim(logits, 0), v = dim(logits, 1);
  check(rowmax, fn, "rowmax", dt, {n});
  nb::gil_scoped_release nogil;
  baobab::llm::xent_local_max<T>(cp<T>(logits), n, v, valid, wp<T>(rowmax), threads);
}

template <class T>
void xent_local_sumexp(const RoArr& logits, const RoArr& targets, int64_t vocab_start, const RoArr& gmax,
                       int64_t valid, const Arr& sumexp, const Arr& target_logit, int threads) {
  const char* fn = "xent_local_sumexp";
  const auto dt = nb::dtype<T>();
  check(logits, fn, "logits", dt, {-1, -1});
  const int64_t n = dim(logits, 0), v = dim(logits, 1);
  check(targets, fn, "targets", nb::dtype<int64_t>(), {n});
  check(gmax, fn, "gmax", dt, {n});
  check(sumexp, fn, "sumexp", dt, {n});
  check(target_logit, fn, "target_logit", dt, {n});
  nb::gil_scoped_release nogil;
  baobab::llm::xent_local_sumexp<T>(cp<T>(logits), cp<int64_t>(targets), n, v, valid, vocab_start, cp<T>(gmax),
                                    wp<T>(sumexp), wp<T>(target_logit), threads);
}

template <class T>
void xent_grad(const Arr& logits, const RoArr& targets, int64_t vocab_start, const RoArr& lse, double scale,
               int64_t valid, int threads) {
  const char* fn = "xent_grad_";
  const auto dt = nb::dtype<T>();
  check(logits, fn, "logits", dt, {-1, -1});
  const int64_t n = int64_t(logits.shape(0)), v = int64_t(logits.shape(1));
  check(targets, fn, "targets", nb::dtype<int64_t>(), {n});
  check(lse, fn, "lse", dt, {n});
  nb::gil_scoped_release nogil;
  baobab::llm::xent_grad<T>(wp<T>(logits), cp<int64_t>(targets), n, v, valid, vocab_start, cp<T>(lse), T(scale),
                            threads);
}

}  // namespace

NB_MODULE(_llm, m) {
  m.doc() = "The LLM application's kernels (apps/llm/src); apps/llm/ops.py (its kernels) is their Python face.";
  baobab::bindings::register_exceptions();

  m.def(
      "layernorm_forward",
      [](RoArr x, RoArr w, RoArr b, double eps, Arr y, Arr mean, Arr rstd, int threads) {
        const int th = nthreads(threads, "layernorm_forward");
        if (is_f64(x, "layernorm_forward", "x")) layernorm_forward<double>(x, w, b, eps, y, mean, rstd, th);
        else layernorm_forward<float>(x, w, b, eps, y, mean, rstd, th);
      },
      "x"_a.noconvert(), "w"_a.noconvert(), "b"_a.noconvert(), "eps"_a, "y"_a.noconvert(), "mean"_a.noconvert(),
      "rstd"_a.noconvert(), "threads"_a = 0, "LayerNorm of the rows of x into y, mean, rstd (see llm.hpp).");
  m.def(
      "layernorm_backward",
      [](RoArr dy, RoArr x, RoArr w, RoArr mean, RoArr rstd, Arr dx, Arr dw, Arr db, int threads) {
        const int th = nthreads(threads, "layernorm_backward");
        if (is_f64(dy, "layernorm_backward", "dy")) layernorm_backward<double>(dy, x, w, mean, rstd, dx, dw, db, th);
        else layernorm_backward<float>(dy, x, w, mean, rstd, dx, dw, db, th);
      },
      "dy"_a.noconvert(), "x"_a.noconvert(), "w"_a.noconvert(), "mean"_a.noconvert(), "rstd"_a.noconvert(),
      "dx"_a.noconvert(), "dw"_a.noconvert(), "db"_a.noconvert(), "threads"_a = 0,
      "LayerNorm backward into dx, dw, db (column sums reproducible for any thread count).");
  m.def(
      "bias_gelu_forward",
      [](RoArr h, std::optional<RoArr> bias, std::optional<Arr> u, Arr a, int threads) {
        const int th = nthreads(threads, "bias_gelu_forward");
        if (is_f64(h, "bias_gelu_forward", "h")) bias_gelu_forward<double>(h, bias, u, a, th);
        else bias_gelu_forward<float>(h, bias, u, a, th);
      },
      "h"_a.noconvert(), "bias"_a.noconvert().none(), "u"_a.noconvert().none(), "a"_a.noconvert(),
      "threads"_a = 0, "u = h + bias (bias None: no u), a = gelu_tanh(u).");
  m.def(
      "gelu_backward",
      [](RoArr da, RoArr u, Arr du, int threads) {
        const int th = nthreads(threads, "gelu_backward");
        if (is_f64(da, "gelu_backward", "da")) gelu_backward<double>(da, u, du, th);
        else gelu_backward<float>(da, u, du, th);
      },
      "da"_a.noconvert(), "u"_a.noconvert(), "du"_a.noconvert(), "threads"_a = 0,
      "du = da gelu_tanh'(u) (2-d arrays).");
  m.def(
      "bias_residual",
      [](RoArr h, std::optional<RoArr> bias, RoArr res, Arr out, int threads) {
        const int th = nthreads(threads, "bias_residual");
        if (is_f64(h, "bias_residual", "h")) bias_residual<double>(h, bias, res, out, th);
        else bias_residual<float>(h, bias, res, out, th);
      },
      "h"_a.noconvert(), "bias"_a.noconvert().none(), "residual"_a.noconvert(), "out"_a.noconvert(),
      "threads"_a = 0, "out = h + bias + residual; out may be h or residual.");
  m.def(
      "bias_grad",
      [](RoArr dy, Arr db, int threads) {
        const int th = nthreads(threads, "bias_grad");
        if (is_f64(dy, "bias_grad", "dy")) bias_grad<double>(dy, db, th);
        else bias_grad<float>(dy, db, th);
      },
      "dy"_a.noconvert(), "db"_a.noconvert(), "threads"_a = 0,
      "Column sums of dy into db (reproducible for any thread count).");
  m.def(
      "xent_forward_backward",
      [](Arr logits, RoArr targets, double scale, int64_t valid, Arr losses, int threads) {
        const int th = nthreads(threads, "xent_forward_backward");
        if (is_f64(logits, "xent_forward_backward", "logits"))
          xent_forward_backward<double>(logits, targets, scale, valid, losses, th);
        else xent_forward_backward<float>(logits, targets, scale, valid, losses, th);
      },
      "logits"_a.noconvert(), "targets"_a.noconvert(), "scale"_a, "valid"_a, "losses"_a.noconvert(),
      "threads"_a = 0, "Per-row softmax cross-entropy into losses; logits become scale (softmax - onehot).");
  m.def(
      "xent_local_max",
      [](RoArr logits, int64_t valid, Arr rowmax, int threads) {
        const int th = nthreads(threads, "xent_local_max");
        if (is_f64(logits, "xent_local_max", "logits")) xent_local_max<double>(logits, valid, rowmax, th);
        else xent_local_max<float>(logits, valid, rowmax, th);
      },
      "logits"_a.noconvert(), "valid"_a, "rowmax"_a.noconvert(), "threads"_a = 0,
      "Max of each row's first `valid` columns.");
  m.def(
      "xent_local_sumexp",
      [](RoArr logits, RoArr targets, int64_t vocab_start, RoArr gmax, int64_t valid, Arr sumexp, Arr target_logit,
         int threads) {
        const int th = nthreads(threads, "xent_local_sumexp");
        if (is_f64(logits, "xent_local_sumexp", "logits"))
          xent_local_sumexp<double>(logits, targets, vocab_start, gmax, valid, sumexp, target_logit, th);
        else xent_local_sumexp<float>(logits, targets, vocab_start, gmax, valid, sumexp, target_logit, th);
      },
      "logits"_a.noconvert(), "targets"_a.noconvert(), "vocab_start"_a, "gmax"_a.noconvert(), "valid"_a,
      "sumexp"_a.noconvert(), "target_logit"_a.noconvert(), "threads"_a = 0,
      "Per row: sum of exp(row - gmax) over the valid columns, and the target's logit if in this shard, else 0.");
  m.def(
      "xent_grad",
      [](Arr logits, RoArr targets, int64_t vocab_start, RoArr lse, double scale, int64_t valid, int threads) {
        const int th = nthreads(threads, "xent_grad_");
        if (is_f64(logits, "xent_grad_", "logits"))
          xent_grad<double>(logits, targets, vocab_start, lse, scale, valid, th);
        else xent_grad<float>(logits, targets, vocab_start, lse, scale, valid, th);
      },
      "logits"_a.noconvert(), "targets"_a.noconvert(), "vocab_start"_a, "lse"_a.noconvert(), "scale"_a, "valid"_a,
      "threads"_a = 0, "logits := scale (exp(logits - lse) - onehot(targets - vocab_start)), padding 0.");
  m.def(
      "to_bfloat16",
      [](RoArr x, Arr out, int threads) {
        const int th = nthreads(threads, "to_bfloat16");
        const bool f64 = is_f64(x, "to_bfloat16", "x");
        check(x, "to_bfloat16", "x", f64 ? nb::dtype<double>() : nb::dtype<float>(), {-1});
        const int64_t count = int64_t(x.shape(0));
        check(out, "to_bfloat16", "out", nb::dtype<uint16_t>(), {count});
        nb::gil_scoped_release nogil;
        if (f64) baobab::llm::to_bfloat16(cp<double>(x), count, wp<uint16_t>(out), th);
        else baobab::llm::to_bfloat16(cp<float>(x), count, wp<uint16_t>(out), th);
      },
      "x"_a.noconvert(), "out"_a.noconvert(), "threads"_a = 0,
      "bfloat16 bits (uint16, 1-d) of float32/float64 x (1-d), rounded to nearest even once; NaN stays NaN.");
  m.def(
      "from_bfloat16",
      [](RoArr x, Arr out, int threads) {
        const int th = nthreads(threads, "from_bfloat16");
        check(x, "from_bfloat16", "x", nb::dtype<uint16_t>(), {-1});
        const int64_t count = int64_t(x.shape(0));
        const bool f64 = out.dtype() == nb::dtype<double>();
        check(out, "from_bfloat16", "out", f64 ? nb::dtype<double>() : nb::dtype<float>(), {count});
        nb::gil_scoped_release nogil;
        if (f64) baobab::llm::from_bfloat16(cp<uint16_t>(x), count, wp<double>(out), th);
        else baobab::llm::from_bfloat16(cp<uint16_t>(x), count, wp<float>(out), th);
      },
      "x"_a.noconvert(), "out"_a.noconvert(), "threads"_a = 0,
      "float32/float64 values (out, 1-d) of bfloat16 bits x (uint16, 1-d), exact.");
  m.def("plan_threads", &baobab::llm::plan_threads, "work"_a, "threads"_a = 0,
        "The threads a kernel runs for `work` (bytes streamed, weighted for compute) when asked for `threads` "
        "(0: all cores); bias_grad's work is the bytes of dy.");
  m.def("isa", &baobab::llm::isa,
        "The instruction-set tier of the kernels: 'avx512', 'avx2' or 'baseline' (BAOBAB_LLM_ISA caps it).");
  m.def("tiers", &baobab::llm::tiers, "The tiers this build and CPU can run.");
  m.attr("row_block") = baobab::llm::kRowBlock;
}

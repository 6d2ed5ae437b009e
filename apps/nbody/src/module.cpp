// baobab_apps._nbody: the N-body application's extension module, over its
// kernels (nbody.hpp). Host arrays arrive as nb::ndarray without conversion and
// are checked here (float64 / int64, C-contiguous, shapes (n, 3) and (n,));
// device arrays arrive as integer pointers, checked by the Python layer
// (apps/nbody/kernels.py). Errors are baobab's exception classes.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>

#include "app_module.hpp"
#include "baobab/error.hpp"
#include "nbody.hpp"

namespace nb = nanobind;
using namespace nb::literals;
using baobab::InvalidArgument;

namespace {

using Array = nb::ndarray<nb::device::cpu>;
using RoArray = nb::ndarray<nb::ro, nb::device::cpu>;

// Checks dtype T, shape (rows, 3) (cols = 3) or (rows,) (cols = 0) and C order;
// rows < 0: any, returned.
template <class T, class A>
int64_t check(const A& a, const char* name, int64_t rows, int cols) {
  const std::string f = std::string("nbody forces: ") + name;
  const char* tname = std::is_same_v<T, double> ? "float64" : "int64";
  if (a.dtype() != nb::dtype<T>()) throw InvalidArgument(f + " must be " + tname);
  const size_t ndim = cols ? 2 : 1;
  const std::string shape = cols ? "(n, 3)" : "(n,)";
  if (a.ndim() != ndim || (cols && a.shape(1) != size_t(cols)))
    throw InvalidArgument(f + " must have shape " + shape + ", got " + std::to_string(a.ndim()) + "-d");
  const int64_t r = int64_t(a.shape(0));
  if (rows >= 0 && r != rows)
    throw InvalidArgument(f + " has " + std::to_string(r) + " rows, expected " + std::to_string(rows));
  // numpy calls an array with one row C-contiguous whatever its row stride
  if (r > 0 && ((r > 1 && a.stride(0) != (cols ? cols : 1)) || (cols && a.stride(1) != 1)))
    throw InvalidArgument(f + " is not C-contiguous; pass numpy.ascontiguousarray(...)");
  return r;
}

template <class T>
const T* ptr(uintptr_t p) {
  return reinterpret_cast<const T*>(p);
}

}  // namespace

NB_MODULE(_nbody, m) {
  m.doc() = "The N-body application's kernels (apps/nbody/src); apps/nbody/kernels.py is their Python face.";
  baobab::bindings::register_exceptions();
  m.def(
      "forces",
      [](RoArray xi, RoArray vi, RoArray idi, RoArray x, RoArray v, RoArray ms, int64_t first_id, double eps2,
         Array acc, Array jerk, Array pot, int threads) {
        const int64_t ni = check<double>(xi, "xi", -1, 3);
        check<double>(vi, "vi", ni, 3);
        check<int64_t>(idi, "idi", ni, 0);
        const int64_t n = check<double>(x, "x", -1, 3);
        check<double>(v, "v", n, 3);
        check<double>(ms, "m", n, 0);
        check<double>(acc, "acc", ni, 3);
        check<double>(jerk, "jerk", ni, 3);
        check<double>(pot, "pot", ni, 0);
        if (threads < 0) throw InvalidArgument("nbody forces: threads must not be negative");
        nb::gil_scoped_release nogil;
        baobab::nbody::forces(static_cast<const double*>(xi.data()), static_cast<const double*>(vi.data()),
                              static_cast<const int64_t*>(idi.data()), ni, static_cast<const double*>(x.data()),
                              static_cast<const double*>(v.data()), static_cast<const double*>(ms.data()), n,
                              first_id, eps2, static_cast<double*>(acc.data()), static_cast<double*>(jerk.data()),
                              static_cast<double*>(pot.data()), threads);
      },
      "xi"_a.noconvert(), "vi"_a.noconvert(), "idi"_a.noconvert(), "x"_a.noconvert(), "v"_a.noconvert(),
      "m"_a.noconvert(), "first_id"_a, "eps2"_a, "acc"_a.noconvert(), "jerk"_a.noconvert(), "pot"_a.noconvert(),
      "threads"_a = 0,
      "Direct-summation N-body acc, jerk and potential of targets (xi, vi, idi) due to sources (x, v, m) with ids "
      "first_id + j; outputs overwritten (see nbody.hpp).");
  m.def(
      "predict",
      [](RoArray x, RoArray v, RoArray a, RoArray j, RoArray t, nb::object idx, int64_t lo, int64_t hi, double t_now,
         Array xp, Array vp) {
        const int64_t n = check<double>(x, "x", -1, 3);
        check<double>(v, "v", n, 3);
        check<double>(a, "a", n, 3);
        check<double>(j, "j", n, 3);
        check<double>(t, "t", n, 0);
        const int64_t* ids = nullptr;
        int64_t k = hi - lo;
        RoArray ia;
        if (!idx.is_none()) {
          ia = nb::cast<RoArray>(idx);
          k = check<int64_t>(ia, "idx", -1, 0);
          ids = static_cast<const int64_t*>(ia.data());
          for (int64_t r = 0; r < k; ++r)
            if (ids[r] < 0 || ids[r] >= n) throw InvalidArgument("nbody predict: index out of range");
        } else if (lo < 0 || hi > n || lo > hi) {
          throw InvalidArgument("nbody predict: range [lo, hi) outside the bodies");
        }
        check<double>(xp, "xp", k, 3);
        check<double>(vp, "vp", k, 3);
        nb::gil_scoped_release nogil;
        baobab::nbody::predict(static_cast<const double*>(x.data()), static_cast<const double*>(v.data()),
                               static_cast<const double*>(a.data()), static_cast<const double*>(j.data()),
                               static_cast<const double*>(t.data()), ids, lo, k, t_now,
                               static_cast<double*>(xp.data()), static_cast<double*>(vp.data()));
      },
      "x"_a.noconvert(), "v"_a.noconvert(), "a"_a.noconvert(), "j"_a.noconvert(), "t"_a.noconvert(),
      "idx"_a.none(), "lo"_a, "hi"_a, "t_now"_a, "xp"_a.noconvert(), "vp"_a.noconvert(),
      "Hermite predictor of bodies idx (or lo..hi) at t_now into xp, vp (see nbody.hpp).");
  m.def(
      "correct",
      [](RoArray act, RoArray xp, RoArray vp, RoArray a1, RoArray j1, RoArray pot1, double t1, double eta,
         double dt_max, double dt_min, Array x, Array v, Array a, Array j, Array a2, Array pot, Array t, Array dt) {
        const int64_t k = check<int64_t>(act, "act", -1, 0);
        for (const auto* q : {&xp, &vp, &a1, &j1}) check<double>(*q, "xp/vp/a1/j1", k, 3);
        check<double>(pot1, "pot1", k, 0);
        const int64_t n = check<double>(x, "x", -1, 3);
        for (auto* q : {&v, &a, &j, &a2}) check<double>(*q, "v/a/j/a2", n, 3);
        for (auto* q : {&pot, &t, &dt}) check<double>(*q, "pot/t/dt", n, 0);
        const auto* ids = static_cast<const int64_t*>(act.data());
        for (int64_t r = 0; r < k; ++r)
          if (ids[r] < 0 || ids[r] >= n) throw InvalidArgument("nbody correct: active index out of range");
        if (!(eta > 0) || !(dt_max > 0) || !(dt_min > 0)) throw InvalidArgument("nbody correct: eta, dt_max, dt_min > 0");
        nb::gil_scoped_release nogil;
        auto d = [](const RoArray& q) { return static_cast<const double*>(q.data()); };
        auto w = [](Array& q) { return static_cast<double*>(q.data()); };
        baobab::nbody::correct(ids, k, d(xp), d(vp), d(a1), d(j1), d(pot1), t1, eta, dt_max, dt_min, w(x), w(v), w(a),
                               w(j), w(a2), w(pot), w(t), w(dt));
      },
      "act"_a.noconvert(), "xp"_a.noconvert(), "vp"_a.noconvert(), "a1"_a.noconvert(), "j1"_a.noconvert(),
      "pot1"_a.noconvert(), "t1"_a, "eta"_a, "dt_max"_a, "dt_min"_a, "x"_a.noconvert(), "v"_a.noconvert(),
      "a"_a.noconvert(), "j"_a.noconvert(), "a2"_a.noconvert(), "pot"_a.noconvert(), "t"_a.noconvert(),
      "dt"_a.noconvert(),
      "Hermite corrector and next block steps of the active bodies, in place (see nbody.hpp).");
  m.def(
      "active",
      [](RoArray t, RoArray dt, Array act) {
        const int64_t n = check<double>(t, "t", -1, 0);
        check<double>(dt, "dt", n, 0);
        check<int64_t>(act, "act", n, 0);
        double t1 = 0;
        int64_t k = 0;
        {
          nb::gil_scoped_release nogil;
          k = baobab::nbody::active(static_cast<const double*>(t.data()), static_cast<const double*>(dt.data()), n,
                                    &t1, static_cast<int64_t*>(act.data()));
        }
        return std::make_pair(t1, k);
      },
      "t"_a.noconvert(), "dt"_a.noconvert(), "act"_a.noconvert(),
      "(next block time, number of bodies due then); their indices fill act[:k].");
  m.def(
      "block_steps",
      [](RoArray crit, double t1, double dt_max, double dt_min, Array dt) {
        const int64_t n = check<double>(crit, "crit", -1, 0);
        check<double>(dt, "dt", n, 0);
        if (!(dt_max > 0) || !(dt_min > 0)) throw InvalidArgument("nbody block_steps: dt_max, dt_min > 0");
        const double* c = static_cast<const double*>(crit.data());
        double* d = static_cast<double*>(dt.data());
        for (int64_t i = 0; i < n; ++i) d[i] = baobab::nbody::block_step(c[i], INFINITY, t1, dt_max, dt_min);
      },
      "crit"_a.noconvert(), "t1"_a, "dt_max"_a, "dt_min"_a, "dt"_a.noconvert(),
      "Starting block steps from step criteria, into dt (see nbody.hpp).");
  m.def("forces_isa", &baobab::nbody::forces_isa,
        "The instruction-set tier of the host kernel: 'avx512', 'avx2' or 'baseline' (BAOBAB_NBODY_ISA caps it).");
  m.def("check_environment", &baobab::nbody::check_environment,
        "Checks BAOBAB_NBODY_ISA and BAOBAB_NBODY_SPLIT (baobab.InvalidArgument naming the first bad one).");
  m.def(
      "forces_device",
      [](uintptr_t xi, uintptr_t vi, uintptr_t idi, int64_t ni, uintptr_t x, uintptr_t v, uintptr_t ms, int64_t n,
         int64_t first_id, double eps2, uintptr_t acc, uintptr_t jerk, uintptr_t pot, uintptr_t stream,
         std::optional<std::string> split, uintptr_t work, size_t work_bytes) {
        const auto mode = split ? baobab::nbody::device_split(*split) : baobab::nbody::device_split_default();
        nb::gil_scoped_release nogil;
        baobab::nbody::forces_device(ptr<double>(xi), ptr<double>(vi), ptr<int64_t>(idi), ni, ptr<double>(x),
                                     ptr<double>(v), ptr<double>(ms), n, first_id, eps2,
                                     reinterpret_cast<double*>(acc), reinterpret_cast<double*>(jerk),
                                     reinterpret_cast<double*>(pot), reinterpret_cast<void*>(stream), mode,
                                     reinterpret_cast<void*>(work), work_bytes);
      },
      "xi_ptr"_a, "vi_ptr"_a, "idi_ptr"_a, "ni"_a, "x_ptr"_a, "v_ptr"_a, "m_ptr"_a, "n"_a, "first_id"_a, "eps2"_a,
      "acc_ptr"_a, "jerk_ptr"_a, "pot_ptr"_a, "stream"_a = 0, "split"_a = nb::none(), "work_ptr"_a = 0,
      "work_bytes"_a = 0,
      "The CUDA kernel on device pointers, on `stream`, without synchronising. split: 'auto', 'on' (the j-split), "
      "'off' (one thread per target) or None (BAOBAB_NBODY_SPLIT); work_ptr: device scratch of work_bytes >= "
      "device_plan(...)['work_bytes'], or 0 (allocated in stream order). See nbody.hpp.");
  m.def(
      "device_plan",
      [](int64_t ni, int64_t n, std::optional<std::string> split) {
        const auto mode = split ? baobab::nbody::device_split(*split) : baobab::nbody::device_split_default();
        const auto p = baobab::nbody::device_plan(ni, n, mode);
        nb::dict d;
        d["split"] = p.split;
        d["chunk"] = p.chunk;
        d["chunks"] = p.chunks;
        d["slab"] = p.slab;
        d["work_bytes"] = p.work_bytes;
        return d;
      },
      "ni"_a, "n"_a, "split"_a = nb::none(),
      "What forces_device does for ni targets and n sources on the current device: "
      "{split, chunk, chunks, slab, work_bytes}.");
  m.def(
      "device_split",
      [] { return std::string(baobab::nbody::device_split_name(baobab::nbody::device_split_default())); },
      "The default device split from BAOBAB_NBODY_SPLIT: 'auto', 'on' or 'off'.");
}

// baobab._core: the N-body kernels (baobab/nbody.hpp). Host arrays arrive as
// nb::ndarray without conversion and are checked here (float64 / int64,
// C-contiguous, shapes (n, 3) and (n,)); device arrays arrive as integer
// pointers, checked by the Python layer (apps/nbody/kernels.py).
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>

#include <cstdint>
#include <string>
#include <type_traits>

#include "baobab/error.hpp"
#include "baobab/nbody.hpp"

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
  const std::string f = std::string("nbody_forces: ") + name;
  const char* tname = std::is_same_v<T, double> ? "float64" : "int64";
  if (a.dtype() != nb::dtype<T>()) throw InvalidArgument(f + " must be " + tname);
  const size_t ndim = cols ? 2 : 1;
  const std::string shape = cols ? "(n, 3)" : "(n,)";
  if (a.ndim() != ndim || (cols && a.shape(1) != size_t(cols)))
    throw InvalidArgument(f + " must have shape " + shape + ", got " + std::to_string(a.ndim()) + "-d");
  const int64_t r = int64_t(a.shape(0));
  if (rows >= 0 && r != rows)
    throw InvalidArgument(f + " has " + std::to_string(r) + " rows, expected " + std::to_string(rows));
  if (r > 0 && (a.stride(0) != (cols ? cols : 1) || (cols && a.stride(1) != 1)))
    throw InvalidArgument(f + " is not C-contiguous; pass numpy.ascontiguousarray(...)");
  return r;
}

template <class T>
const T* ptr(uintptr_t p) {
  return reinterpret_cast<const T*>(p);
}

}  // namespace

void bind_nbody(nb::module_& m) {
  m.def(
      "nbody_forces",
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
        if (threads < 0) throw InvalidArgument("nbody_forces: threads must not be negative");
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
      "first_id + j; outputs overwritten (see baobab/nbody.hpp).");
  m.def("nbody_forces_isa", &baobab::nbody::forces_isa);
  m.def(
      "nbody_forces_device",
      [](uintptr_t xi, uintptr_t vi, uintptr_t idi, int64_t ni, uintptr_t x, uintptr_t v, uintptr_t ms, int64_t n,
         int64_t first_id, double eps2, uintptr_t acc, uintptr_t jerk, uintptr_t pot, uintptr_t stream) {
        baobab::nbody::forces_device(ptr<double>(xi), ptr<double>(vi), ptr<int64_t>(idi), ni, ptr<double>(x),
                                     ptr<double>(v), ptr<double>(ms), n, first_id, eps2,
                                     reinterpret_cast<double*>(acc), reinterpret_cast<double*>(jerk),
                                     reinterpret_cast<double*>(pot), reinterpret_cast<void*>(stream));
      },
      "xi_ptr"_a, "vi_ptr"_a, "idi_ptr"_a, "ni"_a, "x_ptr"_a, "v_ptr"_a, "m_ptr"_a, "n"_a, "first_id"_a, "eps2"_a,
      "acc_ptr"_a, "jerk_ptr"_a, "pot_ptr"_a, "stream"_a = 0, nb::call_guard<nb::gil_scoped_release>());
}

// What an application's extension module (apps/<app>/, built by
// baobab_add_app in CMakeLists.txt) shares with baobab._core: baobab's C++
// exceptions arrive in Python as baobab's exception classes.
//
//   NB_MODULE(_myapp, m) {
//     baobab::bindings::register_exceptions();
//     m.def(...);
//   }
//
// The classes are looked up by name in the Python package `baobab` when the
// first exception is raised (so the module imports without baobab, e.g. for
// stub generation); without it they fall back to ValueError, TimeoutError and
// RuntimeError.
#pragma once
#include <nanobind/nanobind.h>

#include <exception>

#include "baobab/error.hpp"

namespace baobab::bindings {

namespace detail {

// baobab.<name>, or `fallback` when baobab cannot be imported (a new reference).
inline PyObject* exception_class(const char* name, PyObject* fallback) {
  PyObject* mod = PyImport_ImportModule("baobab");
  PyObject* cls = mod ? PyObject_GetAttrString(mod, name) : nullptr;
  Py_XDECREF(mod);
  if (!cls) {
    PyErr_Clear();
    Py_INCREF(fallback);
    return fallback;
  }
  return cls;
}

inline void raise(const char* name, const char* what, PyObject* fallback) {
  PyObject* cls = exception_class(name, fallback);
  PyErr_SetString(cls, what);
  Py_DECREF(cls);
}

inline void translate(const std::exception_ptr& p, void*) {
  try {
    std::rethrow_exception(p);
  } catch (const InvalidArgument& e) {
    raise("InvalidArgument", e.what(), PyExc_ValueError);
  } catch (const MismatchError& e) {
    raise("MismatchError", e.what(), PyExc_RuntimeError);
  } catch (const TimeoutError& e) {
    namespace nb = nanobind;
    nb::object cls = nb::steal(exception_class("TimeoutError", PyExc_TimeoutError));
    nb::list missing;
    for (int r : e.missing()) missing.append(r);
    nb::object exc = cls(nb::str(e.what()));
    nb::setattr(exc, "op", nb::str(e.op().c_str()));
    nb::setattr(exc, "seq", nb::int_(e.seq()));
    nb::setattr(exc, "missing", missing);
    PyErr_SetObject(cls.ptr(), exc.ptr());
  } catch (const MPIError& e) {
    raise("MPIError", e.what(), PyExc_RuntimeError);
  } catch (const CUDAError& e) {
    raise("CUDAError", e.what(), PyExc_RuntimeError);
  } catch (const Error& e) {
    raise("Error", e.what(), PyExc_RuntimeError);
  }
}

}  // namespace detail

// Call once in NB_MODULE.
inline void register_exceptions() { nanobind::register_exception_translator(detail::translate); }

}  // namespace baobab::bindings

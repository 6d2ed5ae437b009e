// What the graph module's binding files (module.cpp, sssp.cpp, analytics.cpp)
// share: the array types they accept and return, a vector handed to numpy
// without a copy, and the size check that raises baobab's InvalidArgument.
#pragma once
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <string>
#include <utility>
#include <vector>

#include "baobab/error.hpp"

namespace baobab::graph::bind {

namespace nb = nanobind;

template <class T>
using In = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
template <class T>
using Out = nb::ndarray<T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
template <class T>
using NpArr = nb::ndarray<nb::numpy, T, nb::ndim<1>>;

// A numpy array owning the vector's storage.
template <class T>
NpArr<T> to_numpy(std::vector<T>&& v) {
  auto* heap = new std::vector<T>(std::move(v));
  nb::capsule owner(heap, [](void* p) noexcept { delete static_cast<std::vector<T>*>(p); });
  return NpArr<T>(heap->data(), {heap->size()}, owner);
}

// A check; with a literal message (the per-element loops) no string is made unless it fails.
inline void need(bool ok, const char* what) {
  if (!ok) throw InvalidArgument(std::string("graph kernel: ") + what);
}
inline void need(bool ok, const std::string& what) {
  if (!ok) throw InvalidArgument("graph kernel: " + what);
}

}  // namespace baobab::graph::bind

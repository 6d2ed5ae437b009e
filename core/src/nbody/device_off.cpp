// The CUDA entry points of baobab/nbody.hpp that core/src/cuda/nbody.cu defines,
// for builds without CUDA: they throw CUDAError. (The forces_device overload
// without a split argument has its stub in core/src/runtime/cuda_off.cpp.)
#ifndef BAOBAB_HAVE_CUDA
#include "baobab/error.hpp"
#include "baobab/nbody.hpp"

namespace baobab::nbody {
namespace {
[[noreturn]] void off() { throw CUDAError("this baobab was built without CUDA (no nvcc, or BAOBAB_CUDA=OFF)"); }
}  // namespace

DevicePlan device_plan(int64_t, int64_t, DeviceSplit) { off(); }

void forces_device(const double*, const double*, const int64_t*, int64_t, const double*, const double*,
                   const double*, int64_t, int64_t, double, double*, double*, double*, void*, DeviceSplit, void*,
                   size_t) {
  off();
}

}  // namespace baobab::nbody
#endif

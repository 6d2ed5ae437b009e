// Built instead of forces.cu when baobab is built without CUDA (no CUDA toolkit,
// or BAOBAB_CUDA=OFF): the device entry points of nbody.hpp say so.
#include <cstddef>
#include <cstdint>

#include "baobab/error.hpp"
#include "nbody.hpp"

namespace baobab::nbody {

namespace {
[[noreturn]] void off() {
  throw CUDAError("nbody: the CUDA kernels were not compiled (no CUDA toolkit at build time, or BAOBAB_CUDA=OFF)");
}
}  // namespace

void forces_device(const double*, const double*, const int64_t*, int64_t, const double*, const double*,
                   const double*, int64_t, int64_t, double, double*, double*, double*, void*) {
  off();
}
void forces_device(const double*, const double*, const int64_t*, int64_t, const double*, const double*,
                   const double*, int64_t, int64_t, double, double*, double*, double*, void*, DeviceSplit, void*,
                   size_t) {
  off();
}
DevicePlan device_plan(int64_t, int64_t, DeviceSplit) { off(); }

}  // namespace baobab::nbody

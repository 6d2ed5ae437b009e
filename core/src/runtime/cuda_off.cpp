// Built when no CUDA toolkit was found or BAOBAB_CUDA=OFF.
#include <string>

#include "baobab/cuda.hpp"
#include "baobab/device.hpp"
#include "baobab/error.hpp"

namespace baobab {
int cuda_device_count() { return 0; }
std::string cuda_status() { return "not compiled (no CUDA toolkit at build time, or BAOBAB_CUDA=OFF)"; }

namespace {
[[noreturn]] void off() { throw CUDAError("this baobab was built without CUDA (no nvcc, or BAOBAB_CUDA=OFF)"); }
}  // namespace

namespace cuda {
bool available() { return false; }
int pointer_device(const void*) { return -1; }
void pack(const Layout&, const void*, void*, int64_t, void*) { off(); }
void unpack(const Layout&, const void*, void*, int64_t, void*) { off(); }
void synchronize(void*) { off(); }
void* alloc_pinned(size_t) { off(); }
void free_pinned(void*) { off(); }
void copy(void*, const void*, size_t, void*) { off(); }
void reduce(DType, RedOp, void*, const void*, const void*, size_t, void*) { off(); }
void merge_rows(void*, const void*, const void*, size_t, int64_t, bool, void*) { off(); }
}  // namespace cuda

DeviceOps& cuda_device_ops() { off(); }
}  // namespace baobab

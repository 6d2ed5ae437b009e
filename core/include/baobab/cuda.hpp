// CUDA side of the datatype engine. Compiled only when a CUDA toolkit is found
// (BAOBAB_HAVE_CUDA); without it every function throws CUDAError.
#pragma once
#include <cstdint>
#include <string>

#include "baobab/datatype.hpp"

namespace baobab {
// Whether the MPI library takes device pointers, and how that was decided
// (core/src/runtime/cuda_aware.cpp; independent of the CUDA build).
std::string mpi_cuda_aware_reason(bool& aware);
// Devices the CUDA runtime sees (0 without a driver, a device, or a CUDA build).
int cuda_device_count();
}  // namespace baobab

namespace baobab::cuda {

// True if the build has CUDA and a device is usable.
bool available();
// The device a pointer lives on, or -1 for host memory (pageable or pinned).
int pointer_device(const void* p);

// Packs / unpacks `count` elements of a layout between device buffers
// (src/dst are device pointers; dst/src contiguous). Runs on `stream`
// (a cudaStream_t, 0 = the default stream) and returns without synchronising.
void pack(const Layout& l, const void* src, void* dst, int64_t count, void* stream);
void unpack(const Layout& l, const void* src, void* dst, int64_t count, void* stream);
void synchronize(void* stream);

// Pinned host staging memory (cudaMallocHost / cudaFreeHost) and copies.
void* alloc_pinned(size_t bytes);
void free_pinned(void* p);
void copy(void* dst, const void* src, size_t bytes, void* stream);  // any direction (cudaMemcpyDefault)

}  // namespace baobab::cuda

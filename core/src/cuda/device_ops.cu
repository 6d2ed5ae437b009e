// The CUDA backend of DeviceOps (baobab/device.hpp): streams that do not
// synchronise with the legacy default stream, events without timing, copies
// through cudaMemcpyAsync (cudaMemcpyDefault: unified addressing decides the
// direction), the reduction kernels of reduce.cu, cudaMalloc / cudaMallocHost.
// Every CUDA error becomes a CUDAError naming the call.
#include <cuda_runtime.h>

#include <cstring>
#include <string>

#include "baobab/cuda.hpp"
#include "baobab/device.hpp"
#include "baobab/error.hpp"

namespace baobab {
std::string cuda_status();  // device.cu

namespace {

void check(cudaError_t rc, const char* what) {
  if (rc != cudaSuccess) {
    cudaGetLastError();
    throw CUDAError(std::string(what) + ": " + cudaGetErrorString(rc));
  }
}

// Teardown: the runtime may already be unloading (at exit); nothing to free then.
void check_free(cudaError_t rc, const char* what) {
  if (rc == cudaErrorCudartUnloading || rc == cudaSuccess) return;
  check(rc, what);
}

class CudaOps final : public DeviceOps {
 public:
  const char* name() const override { return "cuda"; }
  void* stream_create() override {
    cudaStream_t s = nullptr;
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    return s;
  }
  void stream_destroy(void* s) override {
    if (s) check_free(cudaStreamDestroy(static_cast<cudaStream_t>(s)), "cudaStreamDestroy");
  }
  void* event_create() override {
    cudaEvent_t e = nullptr;
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    return e;
  }
  void event_destroy(void* e) override {
    if (e) check_free(cudaEventDestroy(static_cast<cudaEvent_t>(e)), "cudaEventDestroy");
  }
  void record(void* e, void* s) override {
    check(cudaEventRecord(static_cast<cudaEvent_t>(e), static_cast<cudaStream_t>(s)), "cudaEventRecord");
  }
  bool query(void* e) override {
    const cudaError_t rc = cudaEventQuery(static_cast<cudaEvent_t>(e));
    if (rc == cudaErrorNotReady) {
      cudaGetLastError();
      return false;
    }
    check(rc, "cudaEventQuery");
    return true;
  }
  void wait_event(void* s, void* e) override {
    check(cudaStreamWaitEvent(static_cast<cudaStream_t>(s), static_cast<cudaEvent_t>(e), 0), "cudaStreamWaitEvent");
  }
  void copy(void* dst, const void* src, size_t bytes, void* s) override {
    if (bytes == 0 || dst == src) return;
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(s)), "cudaMemcpyAsync");
  }
  void reduce(DType dtype, RedOp op, void* dst, const void* a, const void* b, size_t n, void* s) override {
    cuda::reduce(dtype, op, dst, a, b, n, s);
  }
  void merge_rows(void* dst, const void* a, const void* b, size_t rows, int64_t d, bool dbl, void* s) override {
    cuda::merge_rows(dst, a, b, rows, d, dbl, s);
  }
  void* alloc(size_t bytes) override {
    void* p = nullptr;
    check(cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc");
    return p;
  }
  void release(void* p) override {
    if (p) check_free(cudaFree(p), "cudaFree");
  }
  void* alloc_host(size_t bytes) override { return cuda::alloc_pinned(bytes ? bytes : 1); }
  void release_host(void* p) override {
    if (p) check_free(cudaFreeHost(p), "cudaFreeHost");
  }
  void* alloc_ipc(size_t bytes, IpcHandle& h) override {
    static_assert(sizeof(cudaIpcMemHandle_t) <= sizeof(IpcHandle::bytes), "IPC handle does not fit");
    void* p = alloc(bytes);
    cudaIpcMemHandle_t mh;
    const cudaError_t rc = cudaIpcGetMemHandle(&mh, p);
    if (rc != cudaSuccess) {
      cudaFree(p);
      check(rc, "cudaIpcGetMemHandle");
    }
    std::memcpy(h.bytes, &mh, sizeof mh);
    return p;
  }
  void release_ipc(void* p, size_t, const IpcHandle&) override { release(p); }
  void* open_ipc(const IpcHandle& h, size_t) override {
    cudaIpcMemHandle_t mh;
    std::memcpy(&mh, h.bytes, sizeof mh);
    void* p = nullptr;
    check(cudaIpcOpenMemHandle(&p, mh, cudaIpcMemLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
    return p;
  }
  void close_ipc(void* p, size_t) override {
    if (p) check_free(cudaIpcCloseMemHandle(p), "cudaIpcCloseMemHandle");
  }
};

}  // namespace

DeviceOps& cuda_device_ops() {
  if (!cuda::available()) throw CUDAError("no usable CUDA device: " + cuda_status());
  static CudaOps ops;
  return ops;
}

}  // namespace baobab

// CUDA device discovery. Compiled only when a CUDA toolkit is found; the module
// still imports without a GPU or driver and reports why no device is usable.
#include <cuda_runtime.h>

#include <string>

namespace baobab {

std::string cuda_status() {
  int n = 0;
  cudaError_t rc = cudaGetDeviceCount(&n);
  if (rc != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error
    return std::string("compiled (CUDA ") + std::to_string(CUDART_VERSION / 1000) + "." +
           std::to_string(CUDART_VERSION % 1000 / 10) + "), no device: " + cudaGetErrorString(rc);
  }
  if (n == 0) return "compiled, no device";
  std::string out = "compiled, " + std::to_string(n) + " device" + (n > 1 ? "s" : "");
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    out += ": " + std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
  return out;
}

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace baobab

// Built when no CUDA toolkit was found or BAOBAB_CUDA=OFF.
#include <string>

namespace baobab {
std::string cuda_status() { return "not compiled (no CUDA toolkit at build time, or BAOBAB_CUDA=OFF)"; }
}  // namespace baobab

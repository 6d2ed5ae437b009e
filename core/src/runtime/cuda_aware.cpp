// Whether the MPI library accepts device pointers ("CUDA-aware"). Asked at run
// time so that one build serves both kinds of MPI:
//   BAOBAB_CUDA_AWARE=0|1          the user's word, when given
//   MPIX_Query_cuda_support()      MPICH 4+, Open MPI (mpi-ext), MVAPICH: looked up
//                                  with dlsym, since mpi.h need not declare it
//   MPICH_GPU_SUPPORT_ENABLED=1    Cray MPICH (also set for MPICH with GPU support)
//   OMPI_MCA_opal_cuda_support=1   Open MPI's switch for its CUDA support
//   MV2_USE_CUDA=1                 MVAPICH2
#include <dlfcn.h>

#include <cstdlib>
#include <string>

#include "baobab/config.hpp"

namespace baobab {

std::string mpi_cuda_aware_reason(bool& aware) {
  auto env = [](const char* n) -> std::string {
    const char* v = std::getenv(n);
    return v ? v : "";
  };
  auto yes = [](const std::string& v) { return v == "1" || v == "true" || v == "yes" || v == "on"; };
  if (const std::string v = env("BAOBAB_CUDA_AWARE"); !v.empty()) {
    aware = parse_flag("BAOBAB_CUDA_AWARE", v);
    return "BAOBAB_CUDA_AWARE=" + v;
  }
  using Query = int (*)();
  if (auto q = reinterpret_cast<Query>(dlsym(RTLD_DEFAULT, "MPIX_Query_cuda_support"))) {
    aware = q() != 0;
    return std::string("MPIX_Query_cuda_support() = ") + (aware ? "1" : "0");
  }
  for (const char* n : {"MPICH_GPU_SUPPORT_ENABLED", "OMPI_MCA_opal_cuda_support", "MV2_USE_CUDA"}) {
    if (yes(env(n))) {
      aware = true;
      return std::string(n) + "=" + env(n);
    }
  }
  aware = false;
  return "no CUDA support reported by the MPI library (stage through pinned host memory)";
}

}  // namespace baobab

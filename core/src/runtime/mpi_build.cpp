// The MPI the core was compiled against, from mpi.h. Compared at import with
// the library mpi4py loaded: when two MPI libraries end up in one process the
// dynamic linker resolves both modules' MPI symbols to the first one, so only
// compile-time facts can reveal that the core was built for another MPI.
#include <mpi.h>

#include <string>

namespace baobab {

std::string mpi_build_family() {
#if defined(OPEN_MPI) && OPEN_MPI
  return "openmpi";
#elif defined(MPICH_VERSION) || defined(MPICH_NAME) || defined(I_MPI_VERSION)
  return "mpich";
#else
  return "unknown";
#endif
}

std::string mpi_build_version() {
#if defined(OPEN_MPI) && OPEN_MPI
  return std::to_string(OMPI_MAJOR_VERSION) + "." + std::to_string(OMPI_MINOR_VERSION) + "." +
         std::to_string(OMPI_RELEASE_VERSION);
#elif defined(I_MPI_VERSION)
  return I_MPI_VERSION;
#elif defined(MPICH_VERSION)
  return MPICH_VERSION;
#else
  return std::to_string(MPI_VERSION) + "." + std::to_string(MPI_SUBVERSION);
#endif
}

}  // namespace baobab

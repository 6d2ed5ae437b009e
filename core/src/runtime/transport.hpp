// Point-to-point transport over MPI: messages larger than MPI's int count are
// split into chunks of at most 1 GiB (same tag: MPI keeps them in order), and
// every MPI error is turned into an MPIError.
#pragma once
#include <mpi.h>

#include <string>
#include <vector>

#include "baobab/error.hpp"

namespace baobab {

inline std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "MPI error " + std::to_string(code);
  return std::string(buf, len);
}

inline void check_mpi(int rc, const char* what) {
  if (rc != MPI_SUCCESS) throw MPIError(std::string(what) + ": " + mpi_error_string(rc), rc);
}

constexpr size_t kMaxChunk = size_t{1} << 30;

inline void post_send(MPI_Comm comm, const void* p, size_t bytes, int peer, int tag, std::vector<MPI_Request>& reqs) {
  const char* c = static_cast<const char*>(p);
  size_t done = 0;
  do {
    const size_t n = std::min(kMaxChunk, bytes - done);
    MPI_Request r;
    check_mpi(MPI_Isend(c + done, static_cast<int>(n), MPI_BYTE, peer, tag, comm, &r), "MPI_Isend");
    reqs.push_back(r);
    done += n;
  } while (done < bytes);
}

inline void post_recv(MPI_Comm comm, void* p, size_t bytes, int peer, int tag, std::vector<MPI_Request>& reqs) {
  char* c = static_cast<char*>(p);
  size_t done = 0;
  do {
    const size_t n = std::min(kMaxChunk, bytes - done);
    MPI_Request r;
    check_mpi(MPI_Irecv(c + done, static_cast<int>(n), MPI_BYTE, peer, tag, comm, &r), "MPI_Irecv");
    reqs.push_back(r);
    done += n;
  } while (done < bytes);
}

inline size_t chunks(size_t bytes) { return bytes == 0 ? 1 : (bytes + kMaxChunk - 1) / kMaxChunk; }

}  // namespace baobab

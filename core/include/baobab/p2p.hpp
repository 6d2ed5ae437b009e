// Non-contiguous point-to-point messages over a duplicated MPI communicator.
//
// Each message either packs its layout into a contiguous staging buffer and
// moves plain bytes, or hands MPI a derived datatype of bytes describing the
// layout (TEMPI's choice). Both sides decide independently, since both forms
// carry the same type signature (n MPI_BYTEs). The choice compares, for the
// layout's block size, the packer's measured rate with the MPI library's own
// datatype rate (defaults measured with MPICH 5, or `baobab tune` values);
// BAOBAB_PACK=always|never|auto overrides. Every wait has a deadline.
#pragma once
#include <mpi.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "baobab/config.hpp"
#include "baobab/datatype.hpp"

namespace baobab {

enum class PackMode : uint8_t { automatic, always, never };

// Bytes per second of packing, by block size (log-linear between the points).
struct RateCurve {
  std::vector<std::pair<double, double>> points;  // (block bytes, GB/s), by block size
  double at(double block) const;
};

struct PackModel {
  RateCurve ours;  // baobab's packer
  RateCurve mpi;   // the MPI library's datatype engine (MPI_Pack)
  PackMode mode = PackMode::automatic;
  static PackModel from(const Config& cfg);  // defaults, tuning keys pack.ours.<B>, pack.mpi.<B>, BAOBAB_PACK
  // Whether a message of this layout should be packed by baobab.
  bool pack(const Layout& l) const;
};

class Transfer {
 public:
  virtual ~Transfer() = default;
  virtual bool test() = 0;                // true once complete; throws on error
  virtual void wait(double timeout) = 0;  // seconds; throws TimeoutError naming the peer
  virtual bool packed() const = 0;        // baobab packed (or will unpack) this message
  virtual int64_t bytes() const = 0;
};

class PointToPoint {
 public:
  PointToPoint(MPI_Comm comm, const Config& cfg);  // duplicates comm (collective over it)
  ~PointToPoint();
  int rank() const { return rank_; }
  int size() const { return size_; }
  const PackModel& model() const { return model_; }
  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t messages_sent() const { return messages_sent_; }
  double timeout() const { return timeout_; }

  // base: the buffer pointer the layout's offsets are relative to (host memory).
  std::shared_ptr<Transfer> isend(const void* base, const Layout& l, int dest, int tag);
  std::shared_ptr<Transfer> irecv(void* base, const Layout& l, int source, int tag);
  void free();

 private:
  MPI_Datatype mpi_type(const Layout& l);  // cached per layout
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  double timeout_ = 300;
  PackModel model_;
  std::map<std::string, MPI_Datatype> types_;
  uint64_t bytes_sent_ = 0, messages_sent_ = 0;
};

// Waits for all transfers with one deadline; throws TimeoutError naming the
// peers whose messages are outstanding.
void wait_all(const std::vector<std::shared_ptr<Transfer>>& ts, double timeout);

}  // namespace baobab

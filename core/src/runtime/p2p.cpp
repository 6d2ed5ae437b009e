#include "baobab/p2p.hpp"

#include <sched.h>
#include <time.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "baobab/communicator.hpp"
#include "baobab/error.hpp"
#include "baobab/mpi_datatype.hpp"
#include "transport.hpp"

namespace baobab {

namespace {
using Clock = std::chrono::steady_clock;
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void backoff(int& spins, Clock::time_point t0) {
  if (++spins < 100) return;
  if (since(t0) < 1e-3) {
    sched_yield();
  } else {
    struct timespec ts {0, 20000};
    nanosleep(&ts, nullptr);
  }
}

std::string layout_key(const Layout& l) {
  std::ostringstream o;
  o << (l.kind == Layout::Kind::strided ? 's' : 'r') << l.lb << ':' << l.extent << ':';
  if (l.kind == Layout::Kind::strided) {
    o << l.sb.start;
    for (int d = 0; d < l.sb.ndims(); ++d) o << ',' << l.sb.counts[d] << '/' << l.sb.strides[d];
  } else {
    for (const auto& r : l.runs) o << ',' << r.off << '+' << r.len;
  }
  return o.str();
}

class MpiTransfer : public Transfer {
 public:
  MpiTransfer(bool send, int peer, int tag, int64_t bytes, bool packed, double deadline)
      : send_(send), peer_(peer), tag_(tag), bytes_(bytes), packed_(packed), deadline_(deadline) {}
  ~MpiTransfer() override {
    if (!done_ && !reqs_.empty()) {
      int finalized = 0;
      MPI_Finalized(&finalized);
      if (!finalized) {
        try {
          wait(-1);
        } catch (const std::exception&) {
        }
      }
    }
  }
  bool test() override {
    if (done_) return true;
    int flag = 0;
    std::vector<MPI_Status> sts(reqs_.size());
    int rc = MPI_Testall(static_cast<int>(reqs_.size()), reqs_.data(), &flag, sts.data());
    if (rc != MPI_SUCCESS) {
      int cls = 0;
      if (rc == MPI_ERR_IN_STATUS)
        for (const auto& s : sts)
          if (s.MPI_ERROR != MPI_SUCCESS) rc = s.MPI_ERROR;
      MPI_Error_class(rc, &cls);
      done_ = true;
      if (cls == MPI_ERR_TRUNCATE)
        throw InvalidArgument("the message from rank " + std::to_string(peer_) + " (tag " + std::to_string(tag_) +
                              ") is larger than the receive layout's " + std::to_string(bytes_) + " bytes");
      throw MPIError(std::string(send_ ? "send to" : "receive from") + " rank " + std::to_string(peer_) + ": " +
                         mpi_error_string(rc),
                     rc);
    }
    if (!flag) return false;
    done_ = true;
    if (!send_) {
      int64_t got = 0;
      for (const auto& s : sts) {
        int n = 0;
        MPI_Get_count(&s, MPI_BYTE, &n);
        got += n;
      }
      if (got != bytes_)
        throw InvalidArgument("received " + std::to_string(got) + " bytes from rank " + std::to_string(peer_) +
                              " (tag " + std::to_string(tag_) + ") into a layout of " + std::to_string(bytes_) +
                              " bytes: the sender's and receiver's element counts differ");
      if (on_done) on_done();
    }
    on_done = nullptr;
    staging.clear();
    staging.shrink_to_fit();
    return true;
  }
  // timeout < 0: the communicator's BAOBAB_TIMEOUT (+inf: no deadline).
  void wait(double timeout) override {
    if (timeout < 0) timeout = deadline_;
    const auto t0 = Clock::now();
    int spins = 0;
    while (!test()) {
      if (since(t0) > timeout) {
        // The message can no longer be waited for: cancel a receive, drop a send.
        for (auto& r : reqs_) {
          if (r == MPI_REQUEST_NULL) continue;
          if (!send_) {
            MPI_Cancel(&r);
            MPI_Wait(&r, MPI_STATUS_IGNORE);
          } else {
            MPI_Request_free(&r);
          }
        }
        done_ = true;
        std::ostringstream m;
        m.setf(std::ios::fixed);
        m.precision(2);
        m << (send_ ? "send to" : "receive from") << " rank " << peer_ << " (tag " << tag_ << ", " << bytes_
          << " bytes) did not complete within " << timeout << " s; rank " << peer_ << " did not post the matching "
          << (send_ ? "receive" : "send");
        throw TimeoutError(m.str(), send_ ? "send" : "recv", 0, {peer_});
      }
      progress_all();
      backoff(spins, t0);
    }
  }
  bool packed() const override { return packed_; }
  int64_t bytes() const override { return bytes_; }

  std::vector<MPI_Request> reqs_;  // chunks of at most 1 GiB (same tag: kept in order)
  std::vector<char> staging;
  std::function<void()> on_done;  // unpack on receive completion
  bool send_;
  int peer_, tag_;
  int64_t bytes_;
  bool packed_;
  double deadline_;
  bool done_ = false;
};

}  // namespace

double RateCurve::at(double block) const {
  if (points.empty()) return 1.0;
  if (block <= points.front().first) return points.front().second;
  if (block >= points.back().first) return points.back().second;
  for (size_t i = 1; i < points.size(); ++i)
    if (block <= points[i].first) {
      const auto [x0, y0] = points[i - 1];
      const auto [x1, y1] = points[i];
      const double f = (std::log(block) - std::log(x0)) / (std::log(x1) - std::log(x0));
      return y0 + f * (y1 - y0);
    }
  return points.back().second;
}

PackModel PackModel::from(const Config& cfg) {
  PackModel m;
  // Defaults measured on a 2-vCPU EPYC VM with MPICH 5.0.2 (docs/performance.md).
  m.ours.points = {{8, 9.0}, {64, 20.0}, {512, 30.0}, {4096, 35.0}};
  m.mpi.points = {{8, 3.4}, {64, 4.8}, {512, 4.0}, {4096, 4.2}};
  std::map<double, double> ours, mpi;
  for (const auto& [k, v] : cfg.tuned) {
    double b = 0;
    if (std::sscanf(k.c_str(), "pack.ours.%lf_GBps", &b) == 1 && v > 0) ours[b] = v;
    else if (std::sscanf(k.c_str(), "pack.mpi.%lf_GBps", &b) == 1 && v > 0) mpi[b] = v;
  }
  if (!ours.empty()) m.ours.points.assign(ours.begin(), ours.end());
  if (!mpi.empty()) m.mpi.points.assign(mpi.begin(), mpi.end());
  const char* v = std::getenv("BAOBAB_PACK");
  std::string mode = v ? v : "auto";
  if (mode == "always") m.mode = PackMode::always;
  else if (mode == "never") m.mode = PackMode::never;
  else if (mode == "auto" || mode.empty()) m.mode = PackMode::automatic;
  else throw InvalidArgument("BAOBAB_PACK='" + mode + "': expected always, never or auto");
  return m;
}

bool PackModel::pack(const Layout& l) const {
  if (mode == PackMode::always) return true;
  if (mode == PackMode::never) return false;
  // Both paths move the same bytes over the link; they differ in who walks the
  // layout, on both sides. Pack when baobab's packer is the faster walker.
  const double b = static_cast<double>(std::max<int64_t>(l.block_bytes(), 1));
  return ours.at(b) >= mpi.at(b);
}

PointToPoint::PointToPoint(MPI_Comm comm, const Config& cfg) : timeout_(cfg.timeout), model_(PackModel::from(cfg)) {
  // The duplicate is the one collective step: non-blocking, with a deadline,
  // so that a rank that never creates its context cannot hang the others. If
  // it expires, the pending duplication can be neither cancelled nor freed;
  // its handle is left allocated (a late rank may still complete it).
  auto* pending = new MPI_Comm(MPI_COMM_NULL);
  MPI_Request req;
  check_mpi(MPI_Comm_idup(comm, pending, &req), "MPI_Comm_idup");
  const auto t0 = Clock::now();
  int spins = 0;
  for (;;) {
    int flag = 0;
    check_mpi(MPI_Test(&req, &flag, MPI_STATUS_IGNORE), "MPI_Test (MPI_Comm_idup)");
    if (flag) break;
    if (since(t0) > timeout_ + 0.5) {
      int size = 0;
      MPI_Comm_size(comm, &size);
      std::ostringstream m;
      m.setf(std::ios::fixed);
      m.precision(2);
      m << "point-to-point context: not every rank of the communicator (size " << size << ") arrived within "
        << timeout_ << " s (BAOBAB_TIMEOUT); it is created collectively, by every rank, the first time the "
        << "communicator is used for messages";
      throw TimeoutError(m.str(), "p2p context", 0, {});
    }
    backoff(spins, t0);
  }
  comm_ = *pending;
  delete pending;
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

PointToPoint::~PointToPoint() { free(); }

void PointToPoint::free() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (auto& [k, t] : types_) MPI_Type_free(&t);
  types_.clear();
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

MPI_Datatype PointToPoint::mpi_type(const Layout& l) {
  const std::string key = layout_key(l);
  auto it = types_.find(key);
  if (it != types_.end()) return it->second;
  if (types_.size() > 256) {
    for (auto& [k, t] : types_) MPI_Type_free(&t);
    types_.clear();
  }
  MPI_Datatype t = layout_to_mpi(l);
  types_.emplace(key, t);
  return t;
}

std::shared_ptr<Transfer> PointToPoint::isend(const void* base, const Layout& l, int dest, int tag) {
  if (comm_ == MPI_COMM_NULL) throw Error("point-to-point context has been freed");
  if (dest < 0 || dest >= size_) throw InvalidArgument("destination rank " + std::to_string(dest) + " out of range");
  const bool contiguous = l.contiguous();
  const bool do_pack = !contiguous && (l.size > INT32_MAX || model_.pack(l));
  auto t = std::make_shared<MpiTransfer>(true, dest, tag, l.size, do_pack, timeout_);
  const char* b = static_cast<const char*>(base);
  bytes_sent_ += static_cast<uint64_t>(l.size);
  messages_sent_ += 1;
  const bool huge = l.size > INT32_MAX;
  if (contiguous) {
    post_send(comm_, b + l.sb.start, static_cast<size_t>(l.size), dest, tag, t->reqs_);
  } else if (do_pack || huge) {
    t->staging.resize(static_cast<size_t>(l.size));
    pack(l, b, t->staging.data());
    post_send(comm_, t->staging.data(), static_cast<size_t>(l.size), dest, tag, t->reqs_);
  } else {
    t->reqs_.emplace_back();
    check_mpi(MPI_Isend(b, 1, mpi_type(l), dest, tag, comm_, &t->reqs_.back()), "MPI_Isend");
  }
  return t;
}

std::shared_ptr<Transfer> PointToPoint::irecv(void* base, const Layout& l, int source, int tag) {
  if (comm_ == MPI_COMM_NULL) throw Error("point-to-point context has been freed");
  if (source < 0 || source >= size_)
    throw InvalidArgument("source rank " + std::to_string(source) + " out of range");
  if (l.overlaps()) throw InvalidArgument("the receive layout overlaps itself (zero or overlapping strides)");
  const bool contiguous = l.contiguous();
  const bool huge = l.size > INT32_MAX;
  const bool do_pack = !contiguous && (huge || model_.pack(l));
  auto t = std::make_shared<MpiTransfer>(false, source, tag, l.size, do_pack, timeout_);
  char* b = static_cast<char*>(base);
  if (contiguous) {
    post_recv(comm_, b + l.sb.start, static_cast<size_t>(l.size), source, tag, t->reqs_);
  } else if (do_pack) {
    t->staging.resize(static_cast<size_t>(l.size));
    post_recv(comm_, t->staging.data(), static_cast<size_t>(l.size), source, tag, t->reqs_);
    Layout copy = l;
    MpiTransfer* raw = t.get();
    t->on_done = [copy, raw, b]() { unpack(copy, raw->staging.data(), b); };
  } else {
    // A byte datatype: the count check still works (MPI_Get_count in bytes).
    t->reqs_.emplace_back();
    check_mpi(MPI_Irecv(b, 1, mpi_type(l), source, tag, comm_, &t->reqs_.back()), "MPI_Irecv");
  }
  return t;
}

void wait_all(const std::vector<std::shared_ptr<Transfer>>& ts, double timeout) {
  const auto t0 = Clock::now();
  int spins = 0;
  for (;;) {
    bool all = true;
    for (const auto& t : ts) all = t->test() && all;
    if (all) return;
    if (timeout >= 0 && since(t0) > timeout) {
      std::vector<int> peers;
      for (const auto& t : ts)
        if (!t->test()) {
          auto* m = dynamic_cast<MpiTransfer*>(t.get());
          if (m) peers.push_back(m->peer_);
        }
      for (const auto& t : ts)
        if (!t->test()) {
          try {
            t->wait(0);
          } catch (const TimeoutError&) {
          }
        }
      std::ostringstream m;
      m.setf(std::ios::fixed);
      m.precision(2);
      m << ts.size() << " transfers did not complete within " << timeout << " s; outstanding with ranks [";
      for (size_t i = 0; i < peers.size(); ++i) m << (i ? ", " : "") << peers[i];
      m << "]";
      throw TimeoutError(m.str(), "p2p", 0, peers);
    }
    progress_all();
    backoff(spins, t0);
  }
}

}  // namespace baobab

// The host emulation of DeviceOps (see baobab/device.hpp): "device" memory is
// host memory, copies and reductions run at once with the host's kernels, and
// an event reports that it was reached only on its second query after a
// record, so that every wait of the device lanes (the caller's stream at
// start, each round's staging copies, a lane's last event) is exercised by the
// polling path it takes on a real device. Exported ("IPC") memory is a POSIX
// shared-memory object that peers map by name, so the IPC transport's
// protocol runs between real processes too. Also: device_path_name.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "baobab/attention.hpp"
#include "baobab/device.hpp"
#include "baobab/error.hpp"
#include "baobab/reduce.hpp"

namespace baobab {

const char* device_path_name(DevicePath p) {
  switch (p) {
    case DevicePath::aware: return "cuda-aware";
    case DevicePath::staged: return "staged";
    case DevicePath::automatic: return "auto";
  }
  return "?";
}

DevicePath device_path_from_name(const std::string& name) {
  if (name == "cuda-aware" || name == "aware") return DevicePath::aware;
  if (name == "staged") return DevicePath::staged;
  if (name == "auto") return DevicePath::automatic;
  throw InvalidArgument("unknown device transport '" + name + "': expected 'cuda-aware', 'staged' or 'auto'");
}

namespace {

struct EmuEvent {
  int queries_left = 0;  // queries that still answer "not reached"
};

class EmulatedOps final : public DeviceOps {
 public:
  const char* name() const override { return "emulated"; }
  void* stream_create() override { return nullptr; }
  void stream_destroy(void*) override {}
  void* event_create() override { return new EmuEvent; }
  void event_destroy(void* e) override { delete static_cast<EmuEvent*>(e); }
  void record(void* e, void*) override { static_cast<EmuEvent*>(e)->queries_left = 1; }
  bool query(void* e) override {
    auto* ev = static_cast<EmuEvent*>(e);
    if (ev->queries_left > 0) {
      ev->queries_left--;
      return false;
    }
    return true;
  }
  void wait_event(void*, void*) override {}
  void copy(void* dst, const void* src, size_t bytes, void*) override {
    if (bytes && dst != src) std::memmove(dst, src, bytes);
    if (bytes && in_peer(src)) copied_ += bytes;
  }
  void reduce(DType dtype, RedOp op, void* dst, const void* a, const void* b, size_t n, void*) override {
    reduce_kernel(dtype, op)(dst, a, b, n);
    const size_t bytes = n * dtype_size(dtype);
    reduced_ += bytes * (in_peer(a) + in_peer(b));
  }
  void merge_rows(void* dst, const void* a, const void* b, size_t rows, int64_t d, bool dbl, void*) override {
    attention::merge_rows(dst, a, b, rows, d, dbl);
    const size_t bytes = rows * static_cast<size_t>(d + 1) * (dbl ? 8 : 4);
    reduced_ += bytes * (in_peer(a) + in_peer(b));
  }
  EmulatedPeerTraffic traffic() const { return {copied_.load(), reduced_.load()}; }
  void* alloc(size_t bytes) override { return alloc_host(bytes); }
  void release(void* p) override { release_host(p); }
  void* alloc_host(size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) throw Error("out of host memory for " + std::to_string(bytes) + " bytes of emulated device memory");
    return p;
  }
  void release_host(void* p) override { std::free(p); }
  void* alloc_ipc(size_t bytes, IpcHandle& h) override {
    static std::atomic<unsigned long> counter{0};
    std::snprintf(h.bytes, sizeof h.bytes, "/baobab-emu.%ld.%lu", static_cast<long>(getpid()), counter++);
    const int fd = shm_open(h.bytes, O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) throw Error(std::string("shm_open ") + h.bytes + ": " + std::strerror(errno));
    if (ftruncate(fd, static_cast<off_t>(bytes ? bytes : 1)) != 0) {
      const int err = errno;
      close(fd);
      shm_unlink(h.bytes);
      throw Error(std::string("ftruncate of shared memory: ") + std::strerror(err));
    }
    void* p = map(fd, bytes);
    if (!p) shm_unlink(h.bytes);
    if (!p) throw Error(std::string("mmap of shared memory: ") + std::strerror(errno));
    return p;
  }
  void release_ipc(void* p, size_t bytes, const IpcHandle& h) override {
    munmap(p, bytes ? bytes : 1);
    shm_unlink(h.bytes);
  }
  void* open_ipc(const IpcHandle& h, size_t bytes) override {
    char name[sizeof h.bytes + 1] = {0};
    std::memcpy(name, h.bytes, sizeof h.bytes);
    const int fd = shm_open(name, O_RDWR, 0600);
    if (fd < 0) throw CUDAError(std::string("cannot map a peer's exported memory ") + name + ": " + std::strerror(errno));
    void* p = map(fd, bytes);
    if (!p) throw CUDAError(std::string("mmap of a peer's exported memory: ") + std::strerror(errno));
    std::lock_guard<std::mutex> g(mu_);
    peers_.push_back({static_cast<const char*>(p), bytes});
    return p;
  }
  void close_ipc(void* p, size_t bytes) override {
    {
      std::lock_guard<std::mutex> g(mu_);
      for (size_t k = 0; k < peers_.size(); ++k)
        if (peers_[k].first == p) {
          peers_.erase(peers_.begin() + static_cast<long>(k));
          break;
        }
    }
    munmap(p, bytes ? bytes : 1);
  }

 private:
  bool in_peer(const void* q) {
    const char* c = static_cast<const char*>(q);
    std::lock_guard<std::mutex> g(mu_);
    for (const auto& [base, n] : peers_)
      if (c >= base && c < base + n) return true;
    return false;
  }
  std::mutex mu_;
  std::vector<std::pair<const char*, size_t>> peers_;  // mapped peers' exported memory
  std::atomic<uint64_t> copied_{0}, reduced_{0};

  static void* map(int fd, size_t bytes) {
    void* p = mmap(nullptr, bytes ? bytes : 1, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? nullptr : p;
  }
};

}  // namespace

namespace {
EmulatedOps& emulated() {
  static EmulatedOps ops;
  return ops;
}
}  // namespace

DeviceOps& emulated_device_ops() { return emulated(); }
EmulatedPeerTraffic emulated_peer_traffic() { return emulated().traffic(); }

}  // namespace baobab

// Device resources of a communicator's device collectives, reused across
// operations: streams, events, pinned host staging and device scratch memory
// (cudaMalloc and cudaMallocHost cost far more than a collective of a few
// kilobytes). Like the host Pool, at most kLimit bytes of each kind are kept.
// Buffers of a failed operation may still be read by sends MPI has not
// completed, or written by copies still queued: they are kept (dead) until the
// communicator goes.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "baobab/device.hpp"

namespace baobab::runtime {

struct DeviceBuf {
  void* p = nullptr;
  size_t cap = 0;
  char* data() const { return static_cast<char*>(p); }
};

// Exported device memory (the IPC transport): peers map it by handle, once per id.
struct IpcBuf {
  void* p = nullptr;
  size_t cap = 0;
  uint64_t id = 0;
  IpcHandle handle;
  char* data() const { return static_cast<char*>(p); }
};

// What a receiver needs to map a peer's exported buffer.
struct IpcRef {
  uint64_t id = 0;
  uint64_t cap = 0;
  const IpcHandle* handle = nullptr;
};

class DevicePool {
 public:
  explicit DevicePool(DeviceOps& o) : ops(&o) {}
  DevicePool(const DevicePool&) = delete;
  DevicePool& operator=(const DevicePool&) = delete;
  ~DevicePool() {
    // At process exit the CUDA runtime may be gone already; the backend
    // ignores that, and nothing here may throw.
    try {
      for (void* s : streams_) ops->stream_destroy(s);
      for (void* e : events_) ops->event_destroy(e);
      for (auto& b : host_) ops->release_host(b.p);
      for (auto& b : dev_) ops->release(b.p);
      for (auto& b : dead_host_) ops->release_host(b.p);
      for (auto& b : dead_dev_) ops->release(b.p);
      for (auto& [key, m] : mapped_) ops->close_ipc(m.first, m.second);
      for (auto& b : exported_) ops->release_ipc(b.p, b.cap, b.handle);
    } catch (...) {
    }
  }

  DeviceOps* ops;

  void* stream() {
    if (streams_.empty()) return ops->stream_create();
    void* s = streams_.back();
    streams_.pop_back();
    return s;
  }
  void put_stream(void* s) { streams_.push_back(s); }
  void* event() {
    if (events_.empty()) return ops->event_create();
    void* e = events_.back();
    events_.pop_back();
    return e;
  }
  void put_event(void* e) {
    if (e) events_.push_back(e);
  }
  DeviceBuf host(size_t bytes) { return get(host_, held_host_, bytes, true); }
  void put_host(DeviceBuf b) { put(host_, held_host_, b, true); }
  DeviceBuf device(size_t bytes) { return get(dev_, held_dev_, bytes, false); }
  void put_device(DeviceBuf b) { put(dev_, held_dev_, b, false); }
  // Exported buffers are never freed before the pool (a peer may hold a
  // mapping); a lane takes one and gives it back once its peers acknowledged.
  IpcBuf ipc(size_t bytes) {
    size_t best = ipc_free_.size();
    for (size_t i = 0; i < ipc_free_.size(); ++i)
      if (ipc_free_[i].cap >= bytes && (best == ipc_free_.size() || ipc_free_[i].cap < ipc_free_[best].cap)) best = i;
    if (best < ipc_free_.size()) {
      IpcBuf b = ipc_free_[best];
      ipc_free_.erase(ipc_free_.begin() + static_cast<long>(best));
      return b;
    }
    IpcBuf b;
    b.cap = std::max<size_t>((bytes + 4095) / 4096 * 4096, 4096);
    b.id = next_id_++;
    b.p = ops->alloc_ipc(b.cap, b.handle);
    exported_.push_back(b);
    return b;
  }
  void put_ipc(IpcBuf b) {
    if (b.p) ipc_free_.push_back(b);
  }
  // A peer's exported buffer, mapped here (once per peer and id).
  char* peer(int rank, const IpcRef& d) {
    auto key = std::make_pair(rank, d.id);
    auto it = mapped_.find(key);
    if (it == mapped_.end()) it = mapped_.emplace(key, std::make_pair(ops->open_ipc(*d.handle, d.cap), d.cap)).first;
    return static_cast<char*>(it->second.first);
  }

  // Buffers of a cancelled operation: freed with the pool.
  void bury_host(DeviceBuf b) {
    if (b.p) dead_host_.push_back(b);
  }
  void bury_device(DeviceBuf b) {
    if (b.p) dead_dev_.push_back(b);
  }

 private:
  static constexpr size_t kLimit = size_t{1} << 30;

  DeviceBuf get(std::vector<DeviceBuf>& free, size_t& held, size_t bytes, bool host) {
    size_t best = free.size();
    for (size_t i = 0; i < free.size(); ++i)
      if (free[i].cap >= bytes && (best == free.size() || free[i].cap < free[best].cap)) best = i;
    if (best < free.size()) {
      DeviceBuf b = free[best];
      free.erase(free.begin() + static_cast<long>(best));
      held -= b.cap;
      return b;
    }
    DeviceBuf b;
    b.cap = std::max<size_t>((bytes + 255) / 256 * 256, 256);
    b.p = host ? ops->alloc_host(b.cap) : ops->alloc(b.cap);
    return b;
  }
  void put(std::vector<DeviceBuf>& free, size_t& held, DeviceBuf b, bool host) {
    if (!b.p) return;
    held += b.cap;
    free.push_back(b);
    while (held > kLimit && !free.empty()) {
      auto it = std::min_element(free.begin(), free.end(),
                                 [](const DeviceBuf& a, const DeviceBuf& c) { return a.cap < c.cap; });
      held -= it->cap;
      if (host) ops->release_host(it->p);
      else ops->release(it->p);
      free.erase(it);
    }
  }

  std::vector<IpcBuf> ipc_free_, exported_;
  std::map<std::pair<int, uint64_t>, std::pair<void*, size_t>> mapped_;
  uint64_t next_id_ = 1;
  std::vector<void*> streams_, events_;
  std::vector<DeviceBuf> host_, dev_, dead_host_, dead_dev_;
  size_t held_host_ = 0, held_dev_ = 0;
};

}  // namespace baobab::runtime

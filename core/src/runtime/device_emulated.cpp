// The host emulation of DeviceOps (see baobab/device.hpp): "device" memory is
// host memory, copies and reductions run at once with the host's kernels, and
// an event reports that it was reached only on its second query after a
// record, so that every wait of the device lanes (the caller's stream at
// start, each round's staging copies, a lane's last event) is exercised by the
// polling path it takes on a real device. Also: device_path_name.
#include <cstdlib>
#include <cstring>
#include <string>

#include "baobab/attention.hpp"
#include "baobab/device.hpp"
#include "baobab/error.hpp"
#include "baobab/reduce.hpp"

namespace baobab {

const char* device_path_name(DevicePath p) {
  switch (p) {
    case DevicePath::aware: return "cuda-aware";
    case DevicePath::staged: return "staged";
  }
  return "?";
}

DevicePath device_path_from_name(const std::string& name) {
  if (name == "cuda-aware" || name == "aware") return DevicePath::aware;
  if (name == "staged") return DevicePath::staged;
  throw InvalidArgument("unknown device transport '" + name + "': expected 'cuda-aware' or 'staged'");
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
  }
  void reduce(DType dtype, RedOp op, void* dst, const void* a, const void* b, size_t n, void*) override {
    reduce_kernel(dtype, op)(dst, a, b, n);
  }
  void merge_rows(void* dst, const void* a, const void* b, size_t rows, int64_t d, bool dbl, void*) override {
    attention::merge_rows(dst, a, b, rows, d, dbl);
  }
  void* alloc(size_t bytes) override { return alloc_host(bytes); }
  void release(void* p) override { release_host(p); }
  void* alloc_host(size_t bytes) override {
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (!p) throw Error("out of host memory for " + std::to_string(bytes) + " bytes of emulated device memory");
    return p;
  }
  void release_host(void* p) override { std::free(p); }
};

}  // namespace

DeviceOps& emulated_device_ops() {
  static EmulatedOps ops;
  return ops;
}

}  // namespace baobab

// measure_device (baobab/device.hpp): the device model's rates, measured
// through a DeviceOps backend (CUDA, or the host emulation).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "baobab/device.hpp"
#include "baobab/error.hpp"

namespace baobab {

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

DeviceRates measure_device(DeviceOps& ops, size_t bytes, int reps) {
  if (bytes < 4096) throw InvalidArgument("measure_device: bytes must be at least 4096");
  if (reps < 2) throw InvalidArgument("measure_device: reps must be at least 2");
  bytes = bytes / 4 * 4;
  void* stream = ops.stream_create();
  void* ev = ops.event_create();
  void* d1 = ops.alloc(bytes);
  void* d2 = ops.alloc(bytes);
  void* d3 = ops.alloc(bytes);
  void* h = ops.alloc_host(bytes);
  auto sync = [&] {
    ops.record(ev, stream);
    while (!ops.query(ev)) {
    }
  };
  // Seconds for k back-to-back operations and one wait, the best of three.
  auto timed = [&](int k, auto&& op) {
    double best = 1e300;
    for (int t = 0; t < 3; ++t) {
      sync();
      const double t0 = now();
      for (int i = 0; i < k; ++i) op();
      sync();
      best = std::min(best, now() - t0);
    }
    return best;
  };
  // bytes per second from the slope between 1 and reps operations
  auto rate = [&](auto&& op) {
    op();  // first touch
    sync();
    const double one = timed(1, op), many = timed(reps, op);
    const double dt = many - one;
    return dt > 0 ? static_cast<double>(bytes) * (reps - 1) / dt : static_cast<double>(bytes) * reps / many;
  };
  // released however the measurement ends
  struct Release {
    DeviceOps& ops;
    void *stream, *ev, *d1, *d2, *d3, *h;
    ~Release() {
      ops.release_host(h);
      ops.release(d3);
      ops.release(d2);
      ops.release(d1);
      ops.event_destroy(ev);
      ops.stream_destroy(stream);
    }
  } release{ops, stream, ev, d1, d2, d3, h};
  DeviceRates r;
  {
    std::memset(h, 0, bytes);  // pinned host memory: the host writes it; zeros, so no denormals or NaNs
    ops.copy(d1, h, bytes, stream);
    ops.copy(d2, h, bytes, stream);
    r.d2h = rate([&] { ops.copy(h, d1, bytes, stream); });
    r.h2d = rate([&] { ops.copy(d1, h, bytes, stream); });
    r.copy = rate([&] { ops.copy(d3, d1, bytes, stream); });
    r.reduce = rate([&] { ops.reduce(DType::f32, RedOp::sum, d3, d1, d2, bytes / 4, stream); });
    std::vector<double> lat;
    for (int i = 0; i < std::max(reps, 5); ++i) {
      sync();
      const double t0 = now();
      ops.copy(h, d1, 8, stream);
      sync();
      lat.push_back(now() - t0);
    }
    std::nth_element(lat.begin(), lat.begin() + lat.size() / 2, lat.end());
    r.latency = lat[lat.size() / 2];
  }
  return r;
}

}  // namespace baobab

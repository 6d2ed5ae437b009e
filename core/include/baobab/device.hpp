// Collectives on device buffers: what the executor needs of a device, behind
// one interface (DeviceOps), so that the executor's device lanes are written
// once for every backend.
//
// Backends
//   cuda      core/src/cuda/runtime.cu: streams, events, cudaMemcpyAsync,
//             the reduction kernels of core/src/cuda/reduce.cu, cudaMalloc and
//             pinned host memory. Only in builds with CUDA.
//   emulated  core/src/runtime/device_emulated.cpp: host memory standing in for
//             device memory, every copy and reduction done at once on the
//             host, events that report completion only on their second query.
//             It runs the device lanes' whole protocol (staging, events,
//             device scratch, every transport) with real MPI on machines
//             without a GPU; the test suite uses it, users have no reason to.
//
// Transports (the caller says which are available; the cost model picks one
// per message, CostModel::device_route; explain shows them):
//   aware     device pointers go to MPI (CUDA-aware MPI). Payloads of at most
//             kInline bytes that travel inside a signature message are staged.
//   staged    every payload goes through pinned host memory: the round's sends
//             are copied device-to-host first, its receives land in pinned
//             memory and are copied host-to-device before the round's local
//             operations. Lanes (segments) in flight overlap each other's
//             copies and messages, one stream per lane.
//   ipc       (with either of the above, for peers on the same node and host)
//             the sender copies a payload into a device buffer it exports
//             (CUDA IPC), and MPI carries only a 128-byte descriptor of it;
//             the receiver copies the payload out of the mapped buffer with
//             a device-to-device copy and then acknowledges, so the sender
//             may reuse the buffer. Exported buffers are pooled and each peer
//             maps each of them once.
//
// Stream order: a collective on a device starts after the work queued on the
// caller's stream when it was started (an event recorded there, waited for by
// every lane's stream), and its result is complete on the device once the
// Work completes (every lane's last event has been reached). No host
// synchronisation happens at start.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "baobab/dtype.hpp"

namespace baobab {

// What a call may hand to MPI between ranks: device pointers (aware), pinned
// copies (staged), or either, message by message, as the cost model finds
// cheaper (automatic: a CUDA-aware MPI whose transport was not forced).
enum class DevicePath : uint8_t { aware = 0, staged = 1, automatic = 2 };

// What names exported device memory: a cudaIpcMemHandle_t (64 bytes), or
// the emulation's shared-memory object name.
struct IpcHandle {
  char bytes[64] = {0};
};
const char* device_path_name(DevicePath p);
DevicePath device_path_from_name(const std::string& name);  // throws InvalidArgument

class DeviceOps {
 public:
  virtual ~DeviceOps() = default;
  virtual const char* name() const = 0;
  virtual void* stream_create() = 0;
  virtual void stream_destroy(void* s) = 0;
  virtual void* event_create() = 0;
  virtual void event_destroy(void* e) = 0;
  virtual void record(void* event, void* stream) = 0;
  virtual bool query(void* event) = 0;                 // true once the event has been reached
  virtual void wait_event(void* stream, void* event) = 0;  // stream waits for event (no host wait)
  virtual void copy(void* dst, const void* src, size_t bytes, void* stream) = 0;  // any direction
  // dst[i] = a[i] OP b[i] for i < n, the bits the host kernels give.
  virtual void reduce(DType dtype, RedOp op, void* dst, const void* a, const void* b, size_t n, void* stream) = 0;
  // The attention log-sum-exp merge of `rows` rows [out_0 .. out_{d-1}, lse]
  // (float64 if dbl, else float32): tree_decode's reduction.
  virtual void merge_rows(void* dst, const void* a, const void* b, size_t rows, int64_t d, bool dbl,
                          void* stream) = 0;
  virtual void* alloc(size_t bytes) = 0;       // device memory
  virtual void release(void* p) = 0;
  virtual void* alloc_host(size_t bytes) = 0;  // pinned host memory
  virtual void release_host(void* p) = 0;
  // Device memory other processes of the node can map: `handle` names it.
  virtual void* alloc_ipc(size_t bytes, IpcHandle& handle) = 0;
  virtual void release_ipc(void* p, size_t bytes, const IpcHandle& handle) = 0;
  // Maps a peer's exported memory into this process (cached by the caller).
  virtual void* open_ipc(const IpcHandle& handle, size_t bytes) = 0;
  virtual void close_ipc(void* p, size_t bytes) = 0;
};

// The CUDA backend (throws CUDAError in builds without CUDA or without a device).
DeviceOps& cuda_device_ops();
// The host emulation (see above).
DeviceOps& emulated_device_ops();
// What the host emulation moved out of peers' exported memory since the
// process started: bytes copied out of it, and bytes reductions (and the
// attention merge) read straight from it. A testing aid.
struct EmulatedPeerTraffic {
  uint64_t copied = 0, reduced = 0;
};
EmulatedPeerTraffic emulated_peer_traffic();

// The device model's rates measured through `ops` (baobab tune --device),
// each the slope between one and `reps` back-to-back operations of `bytes`
// on one stream, so that the latency of queueing them and seeing them done
// does not count in the rate: copies device -> pinned host, pinned host ->
// device and device -> device (bytes copied per second), the float32 sum
// kernel (bytes of the result per second), and that latency itself (an
// 8-byte copy queued and seen done by the host; median of `reps`, seconds).
struct DeviceRates {
  double d2h = 0, h2d = 0, copy = 0, reduce = 0, latency = 0;
};
DeviceRates measure_device(DeviceOps& ops, size_t bytes, int reps);

// Where a collective's buffers live and how their bytes travel.
struct DeviceCall {
  DeviceOps* ops = nullptr;
  DevicePath path = DevicePath::staged;
  void* stream = nullptr;  // the caller's stream (cudaStream_t; nullptr: the legacy default stream)
  bool ipc = false;        // same-node peers exchange through exported device memory
};

namespace cuda {
// Launches dst[i] = a[i] OP b[i] on `stream` (device pointers, n elements).
void reduce(DType dtype, RedOp op, void* dst, const void* a, const void* b, size_t n, void* stream);
void merge_rows(void* dst, const void* a, const void* b, size_t rows, int64_t d, bool dbl, void* stream);
}  // namespace cuda

}  // namespace baobab

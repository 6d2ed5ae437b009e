// CUDA packers of the datatype engine: gather the bytes a Layout describes from
// device memory into a contiguous buffer (pack) and scatter them back (unpack),
// byte for byte in the order of the CPU packer; plus the small runtime helpers
// of cuda.hpp (device query, pointer attributes, pinned memory, copies).
//
// Design
// * Shape (host). A StridedBlock and the element count become one contiguous
//   block of `block` bytes repeated over "outer" dimensions (count, stride),
//   innermost first, with the element count (stride = extent) outermost.
//   Dimensions of count 1 are dropped and neighbours whose strides compose
//   (stride[d+1] == count[d] * stride[d]) are merged, also into the block
//   itself. A layout that collapses to one block is a cudaMemcpyAsync; a run
//   list with a single run takes the same path with the run as the block.
// * Word size. Threads copy words of W bytes, W the largest of 16/8/4/2/1 that
//   divides the block length, every remaining outer stride and the addresses of
//   the layout origin (base + start) and of the packed buffer. Every access is
//   then naturally aligned (W = 16: one 128-bit load or store per word), and a
//   block is a whole number of words on both sides.
// * Thread mapping. With G threads in the grid, thread t copies packed words
//   t, t + G, t + 2G, ... Consecutive threads thus take consecutive words: of
//   one block when blocks are long, of successive blocks when they are short,
//   and the packed side is always fully coalesced. The layout offset of packed
//   word t follows from its mixed-radix digits (word in block, then one digit
//   per outer dimension, the outermost unbounded). They are divided out once
//   per thread; each grid-stride step then adds the precomputed digits of G
//   with carries (compare, subtract) and adjusts the offset by precomputed
//   deltas, so the loop has no division. Each thread issues kUnroll loads
//   before its stores, to keep enough bytes in flight. Kernels are specialised
//   on the number of outer dimensions, 1 to 4 (a 1-, 2- or 3-d StridedBlock
//   with or without the element count), so the digits live in registers; more
//   take a generic kernel (each outer dimension has count >= 2 and their
//   product fits in int64, so there are at most 62).
// * Run lists. Runs are cut into chunks of at most kChunk words; a group of
//   1..32 consecutive lanes (a power of two near the mean chunk length) copies
//   one chunk of one element, groups walking the (chunk, element) pairs
//   grid-stride with the same carry trick. A short list travels in the kernel
//   parameters and is staged in shared memory; a longer one goes to a
//   stream-ordered device allocation (cudaMallocAsync/cudaFreeAsync) per call.
//
// Layout::size must equal the bytes the layout describes (InvalidArgument
// otherwise: the packed buffer is sized from it). Unpacking into a layout that
// visits a byte twice (zero or overlapping strides, overlapping runs) is a data
// race here: which copy lands is unspecified.
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "baobab/cuda.hpp"
#include "baobab/error.hpp"

namespace baobab::cuda {
namespace {

constexpr int kThreads = 256;     // threads per CTA
constexpr int kUnroll = 4;        // words in flight per thread in the strided kernel
constexpr int kMaxOuter = 64;     // capacity of the generic strided kernel (62 can occur)
constexpr int kInlineRuns = 64;   // run chunks passed in the kernel parameters
constexpr int64_t kChunk = 1024;  // longest run chunk, in words
constexpr int kMaxDevices = 64;   // per-device caches

void check(cudaError_t rc, const char* call) {
  if (rc != cudaSuccess) throw CUDAError(std::string(call) + " failed: " + cudaGetErrorString(rc));
}

// a * b, throwing on int64 overflow (counts come from user datatypes).
int64_t mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw InvalidArgument("cuda pack: layout size overflows int64");
  return r;
}

// A device attribute of the current device, cached (value + 1; 0 = not queried).
int device_attr(cudaDeviceAttr attr, std::atomic<int> (&cache)[kMaxDevices]) {
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev >= 0 && dev < kMaxDevices) {
    if (int v = cache[dev].load(std::memory_order_relaxed)) return v - 1;
  }
  int v = 0;
  check(cudaDeviceGetAttribute(&v, attr, dev), "cudaDeviceGetAttribute");
  if (dev >= 0 && dev < kMaxDevices) cache[dev].store(v + 1, std::memory_order_relaxed);
  return v;
}

// CTAs that fill the current device with `kernel` (all resident at once: the
// grid-stride loops then balance the work), cached per device in `cache`.
template <class Kernel>
int64_t full_grid(Kernel kernel, std::atomic<int> (&cache)[kMaxDevices]) {
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  const bool cacheable = dev >= 0 && dev < kMaxDevices;
  if (cacheable) {
    if (int v = cache[dev].load(std::memory_order_relaxed)) return v;
  }
  static std::atomic<int> sms_cache[kMaxDevices];
  const int sms = device_attr(cudaDevAttrMultiProcessorCount, sms_cache);
  int per_sm = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads, 0),
        "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  const int v = std::max(1, sms * per_sm);
  if (cacheable) cache[dev].store(v, std::memory_order_relaxed);
  return v;
}

// ---- strided kernels ---------------------------------------------------------------

// q = a / b, r = a % b for a >= 0, b > 0; 32-bit division when both fit (a
// 64-bit one is a long subroutine). Used once per thread, outside the loops.
__device__ inline void divmod(int64_t a, int64_t b, int64_t& q, int64_t& r) {
  if (((a | b) >> 32) == 0) {
    const uint32_t q32 = uint32_t(a) / uint32_t(b);
    q = q32;
    r = uint32_t(a) - q32 * uint32_t(b);
  } else {
    q = a / b;
    r = a - q * b;
  }
}

// All sizes in words. Digit d < n-1 of a packed index has radix count[d]; the
// last (outermost) digit is unbounded.
template <int Cap>
struct StridedArgs {
  int64_t total;     // words to copy
  int64_t block;     // words per block: radix of the word digit
  int64_t step;      // threads in the grid
  int64_t step_w;    // digits of `step`: word digit ...
  int64_t step_off;  // ... and the layout offset they add before carries
  int64_t carry_w;   // offset change when the word digit wraps: stride[0] - block
  int n;             // outer dimensions
  int64_t count[Cap], stride[Cap];
  int64_t step_d[Cap];   // digits of `step` per outer dimension (d < n-1)
  int64_t carry_d[Cap];  // offset change when digit d wraps: stride[d+1] - count[d]*stride[d]
};

// N = number of outer dimensions, or 0 for the generic kernel (a.n of them).
// Pack: src is the layout origin, dst the packed buffer; unpack: the reverse.
template <class W, int N, bool kUnpack>
__global__ void __launch_bounds__(kThreads)
    strided_kernel(const W* __restrict__ src, W* __restrict__ dst, const StridedArgs<N ? N : kMaxOuter> a) {
  constexpr int kCap = N ? N : kMaxOuter;
  const int n = N ? N : a.n;
  int64_t t = int64_t(blockIdx.x) * kThreads + threadIdx.x;
  if (t >= a.total) return;

  int64_t digit[kCap], q, w;
  divmod(t, a.block, q, w);
  int64_t off = w;
#pragma unroll
  for (int d = 0; d < n - 1; ++d) {
    divmod(q, a.count[d], q, digit[d]);
    off += digit[d] * a.stride[d];
  }
  off += q * a.stride[n - 1];

  for (;;) {
    int64_t packed[kUnroll], layout[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      packed[u] = t;
      layout[u] = off;
      t += a.step;
      off += a.step_off;
      w += a.step_w;
      bool carry = w >= a.block;
      if (carry) {
        w -= a.block;
        off += a.carry_w;
      }
#pragma unroll
      for (int d = 0; d < n - 1; ++d) {
        digit[d] += a.step_d[d] + carry;  // < 2 * count[d]: one subtraction wraps it
        carry = digit[d] >= a.count[d];
        if (carry) {
          digit[d] -= a.count[d];
          off += a.carry_d[d];
        }
      }
    }
    W v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (packed[u] < a.total) v[u] = src[kUnpack ? packed[u] : layout[u]];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (packed[u] < a.total) dst[kUnpack ? layout[u] : packed[u]] = v[u];
    if (t >= a.total) return;
  }
}

// A layout reduced to one block repeated over outer dimensions (bytes).
struct Shape {
  int64_t start = 0, block = 0;
  std::vector<std::array<int64_t, 2>> outer;  // {count, stride}, innermost first
};

// Drops count-1 dimensions and merges the ones whose strides compose.
void simplify(Shape& s) {
  std::vector<std::array<int64_t, 2>> out;
  for (const auto& o : s.outer) {
    if (o[0] == 1) continue;
    int64_t span;  // stride a merge with the previous dimension needs
    if (!out.empty() && !__builtin_mul_overflow(out.back()[0], out.back()[1], &span) && o[1] == span)
      out.back()[0] = mul(out.back()[0], o[0]);
    else
      out.push_back(o);
  }
  // A dimension whose stride is the block length extends the block; once one
  // does not, none after it can (each stride would have to be the product).
  size_t i = 0;
  while (i < out.size() && out[i][1] == s.block) s.block = mul(s.block, out[i++][0]);
  out.erase(out.begin(), out.begin() + i);
  s.outer = std::move(out);
}

template <class W, int N>
void launch_strided(const Shape& s, int64_t total, const char* src, char* dst, bool unpack, cudaStream_t stream) {
  constexpr int64_t kW = sizeof(W);
  StridedArgs<N ? N : kMaxOuter> a{};
  const int n = int(s.outer.size());
  a.n = n;
  a.total = total / kW;
  a.block = s.block / kW;
  for (int d = 0; d < n; ++d) {
    a.count[d] = s.outer[d][0];
    a.stride[d] = s.outer[d][1] / kW;
  }
  const auto kernel = unpack ? strided_kernel<W, N, true> : strided_kernel<W, N, false>;
  static std::atomic<int> grid[2][kMaxDevices];
  const int64_t blocks = std::min((a.total + kThreads - 1) / kThreads, full_grid(kernel, grid[unpack]));
  a.step = blocks * kThreads;
  // The offset arithmetic wraps modulo 2^64 like the device's; do it unsigned.
  using U = uint64_t;
  a.step_w = a.step % a.block;
  int64_t q = a.step / a.block;
  U off = U(a.step_w);
  for (int d = 0; d < n - 1; ++d) {
    a.step_d[d] = q % a.count[d];
    q /= a.count[d];
    off += U(a.step_d[d]) * U(a.stride[d]);
    a.carry_d[d] = int64_t(U(a.stride[d + 1]) - U(a.count[d]) * U(a.stride[d]));
  }
  a.step_off = int64_t(off + U(q) * U(a.stride[n - 1]));
  a.carry_w = int64_t(U(a.stride[0]) - U(a.block));

  kernel<<<unsigned(blocks), kThreads, 0, stream>>>(reinterpret_cast<const W*>(src), reinterpret_cast<W*>(dst), a);
  check(cudaGetLastError(), unpack ? "unpack kernel launch" : "pack kernel launch");
}

template <class W>
void launch_strided_w(const Shape& s, int64_t total, const char* src, char* dst, bool unpack, cudaStream_t stream) {
  switch (s.outer.size()) {
    case 1: return launch_strided<W, 1>(s, total, src, dst, unpack, stream);
    case 2: return launch_strided<W, 2>(s, total, src, dst, unpack, stream);
    case 3: return launch_strided<W, 3>(s, total, src, dst, unpack, stream);
    case 4: return launch_strided<W, 4>(s, total, src, dst, unpack, stream);
    default:
      if (s.outer.size() > size_t(kMaxOuter)) throw InvalidArgument("cuda pack: too many dimensions");
      return launch_strided<W, 0>(s, total, src, dst, unpack, stream);
  }
}

// The largest of 16/8/4/2/1 dividing every value whose low bits are or-ed in `bits`.
int word_size(uint64_t bits) {
  int w = 16;
  while (w > 1 && (bits & uint64_t(w - 1))) w /= 2;
  return w;
}

// Copies `total` bytes between the layout `s` at `base` and the packed buffer.
void copy_shape(Shape s, int64_t total, char* base, char* packed, bool unpack, cudaStream_t stream) {
  simplify(s);
  char* origin = base + s.start;
  const char* src = unpack ? packed : origin;
  char* dst = unpack ? origin : packed;
  if (s.outer.empty()) {  // one contiguous block
    check(cudaMemcpyAsync(dst, src, size_t(total), cudaMemcpyDefault, stream), "cudaMemcpyAsync");
    return;
  }
  uint64_t bits = uint64_t(s.block) | reinterpret_cast<uintptr_t>(origin) | reinterpret_cast<uintptr_t>(packed);
  for (const auto& o : s.outer) bits |= uint64_t(o[1]);
  switch (word_size(bits)) {
    case 16: return launch_strided_w<uint4>(s, total, src, dst, unpack, stream);
    case 8: return launch_strided_w<uint64_t>(s, total, src, dst, unpack, stream);
    case 4: return launch_strided_w<uint32_t>(s, total, src, dst, unpack, stream);
    case 2: return launch_strided_w<uint16_t>(s, total, src, dst, unpack, stream);
    default: return launch_strided_w<uint8_t>(s, total, src, dst, unpack, stream);
  }
}

// ---- run-list kernel -----------------------------------------------------------------

struct Chunk {
  int64_t off, len, pos;  // words: layout offset, length, offset in the packed element
};

struct RunArgs {
  const Chunk* chunks;                 // device list, or null: it is `inline_chunks`
  int64_t nchunks, groups;             // chunks per element; chunks x elements
  int64_t extent, size;                // words per element: layout extent, packed size
  int64_t step, step_c, step_k;        // groups in the grid, and its (chunk, element) digits
  int lanes_log2;                      // lanes per group
  Chunk inline_chunks[kInlineRuns];
};

template <class W, bool kUnpack>
__global__ void __launch_bounds__(kThreads)
    runs_kernel(const W* __restrict__ src, W* __restrict__ dst, const RunArgs a) {
  __shared__ Chunk staged[kInlineRuns];
  const Chunk* chunks = a.chunks;
  if (!chunks) {  // uniform over the grid; param space is slow under divergent indexing
    for (int i = threadIdx.x; i < a.nchunks; i += kThreads) staged[i] = a.inline_chunks[i];
    __syncthreads();
    chunks = staged;
  }
  const int lanes = 1 << a.lanes_log2;
  const int lane = threadIdx.x & (lanes - 1);
  int64_t g = (int64_t(blockIdx.x) * kThreads + threadIdx.x) >> a.lanes_log2;
  int64_t k, c;
  divmod(g, a.nchunks, k, c);
  for (; g < a.groups; g += a.step) {
    const Chunk ch = chunks[c];
    const int64_t lo = k * a.extent + ch.off, po = k * a.size + ch.pos;
#pragma unroll 4
    for (int64_t i = lane; i < ch.len; i += lanes) {
      if (kUnpack)
        dst[lo + i] = src[po + i];
      else
        dst[po + i] = src[lo + i];
    }
    c += a.step_c;
    k += a.step_k;
    if (c >= a.nchunks) {
      c -= a.nchunks;
      ++k;
    }
  }
}

template <class W>
void launch_runs(const Layout& l, int64_t count, const char* src, char* dst, bool unpack, cudaStream_t stream) {
  constexpr int64_t kW = sizeof(W);
  RunArgs a{};
  std::vector<Chunk> list;
  int64_t pos = 0;
  for (const ByteRun& r : l.runs) {
    for (int64_t o = 0; o < r.len / kW; o += kChunk)
      list.push_back({r.off / kW + o, std::min(kChunk, r.len / kW - o), pos + o});
    pos += r.len / kW;
  }
  a.nchunks = int64_t(list.size());
  a.groups = mul(a.nchunks, count);
  a.extent = l.extent / kW;
  a.size = pos;
  const int64_t mean = pos / a.nchunks;
  while (a.lanes_log2 < 5 && (int64_t(2) << a.lanes_log2) <= mean) ++a.lanes_log2;
  const int64_t lanes = int64_t(1) << a.lanes_log2;
  const auto kernel = unpack ? runs_kernel<W, true> : runs_kernel<W, false>;
  static std::atomic<int> grid[2][kMaxDevices];
  const int64_t blocks = std::min((mul(a.groups, lanes) + kThreads - 1) / kThreads, full_grid(kernel, grid[unpack]));
  a.step = blocks * kThreads / lanes;
  a.step_c = a.step % a.nchunks;
  a.step_k = a.step / a.nchunks;

  auto launch = [&] {
    kernel<<<unsigned(blocks), kThreads, 0, stream>>>(reinterpret_cast<const W*>(src), reinterpret_cast<W*>(dst), a);
    check(cudaGetLastError(), unpack ? "unpack kernel launch" : "pack kernel launch");
  };
  if (list.size() <= size_t(kInlineRuns)) {
    std::copy(list.begin(), list.end(), a.inline_chunks);
    return launch();
  }

  const size_t bytes = list.size() * sizeof(Chunk);
  Chunk* dev = nullptr;
  static std::atomic<int> pools[kMaxDevices];
  if (device_attr(cudaDevAttrMemoryPoolsSupported, pools)) {
    check(cudaMallocAsync(reinterpret_cast<void**>(&dev), bytes, stream), "cudaMallocAsync");
    try {
      // From pageable memory this returns once the list is staged: `list` may go.
      check(cudaMemcpyAsync(dev, list.data(), bytes, cudaMemcpyHostToDevice, stream), "cudaMemcpyAsync");
      a.chunks = dev;
      launch();
    } catch (...) {
      cudaFreeAsync(dev, stream);
      throw;
    }
    check(cudaFreeAsync(dev, stream), "cudaFreeAsync");
  } else {  // no stream-ordered allocator: synchronous fallback
    check(cudaMalloc(reinterpret_cast<void**>(&dev), bytes), "cudaMalloc");
    try {
      check(cudaMemcpy(dev, list.data(), bytes, cudaMemcpyHostToDevice), "cudaMemcpy");
      a.chunks = dev;
      launch();
      check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
    } catch (...) {
      cudaFree(dev);
      throw;
    }
    check(cudaFree(dev), "cudaFree");
  }
}

// ---- entry ---------------------------------------------------------------------------------

void transfer(const Layout& l, const void* src, void* dst, int64_t count, void* stream, bool unpack) {
  const char* what = unpack ? "cuda::unpack" : "cuda::pack";
  if (count < 0) throw InvalidArgument(std::string(what) + ": negative count");
  if (count == 0 || l.size == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  // Only the side named by `unpack` is written; the kernels take both as char*.
  char* base = const_cast<char*>(static_cast<const char*>(unpack ? dst : src));
  char* packed = const_cast<char*>(static_cast<const char*>(unpack ? src : dst));

  Shape shape;
  int64_t size = 0;  // bytes per element, recomputed from the layout itself
  if (l.kind == Layout::Kind::strided) {
    const StridedBlock& sb = l.sb;
    if (sb.counts.empty() || sb.strides.size() != sb.counts.size())
      throw InvalidArgument(std::string(what) + ": malformed StridedBlock");
    size = 1;
    for (int64_t c : sb.counts) {
      if (c < 0) throw InvalidArgument(std::string(what) + ": negative count in StridedBlock");
      size = mul(size, c);
    }
    shape.start = sb.start;
    shape.block = sb.counts[0];
    for (int d = 1; d < sb.ndims(); ++d) shape.outer.push_back({sb.counts[d], sb.strides[d]});
  } else {
    int nonempty = 0;
    for (const ByteRun& r : l.runs) {
      if (r.len < 0) throw InvalidArgument(std::string(what) + ": negative run length");
      if (__builtin_add_overflow(size, r.len, &size)) throw InvalidArgument(std::string(what) + ": size overflows");
      if (r.len > 0 && nonempty++ == 0) {
        shape.start = r.off;
        shape.block = r.len;
      }
    }
    if (nonempty > 1) {
      if (size != l.size) throw InvalidArgument(std::string(what) + ": Layout::size does not match its runs");
      mul(size, count);  // overflow check
      uint64_t bits = reinterpret_cast<uintptr_t>(base) | reinterpret_cast<uintptr_t>(packed);
      if (count > 1) bits |= uint64_t(l.extent);
      for (const ByteRun& r : l.runs)
        if (r.len > 0) bits |= uint64_t(r.off) | uint64_t(r.len);
      const char* from = unpack ? packed : base;
      char* to = unpack ? base : packed;
      switch (word_size(bits)) {
        case 16: return launch_runs<uint4>(l, count, from, to, unpack, s);
        case 8: return launch_runs<uint64_t>(l, count, from, to, unpack, s);
        case 4: return launch_runs<uint32_t>(l, count, from, to, unpack, s);
        case 2: return launch_runs<uint16_t>(l, count, from, to, unpack, s);
        default: return launch_runs<uint8_t>(l, count, from, to, unpack, s);
      }
    }
  }
  if (size != l.size) throw InvalidArgument(std::string(what) + ": Layout::size does not match its layout");
  shape.outer.push_back({count, l.extent});
  copy_shape(std::move(shape), mul(size, count), base, packed, unpack, s);
}

}  // namespace

bool available() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error (no driver, no device)
    return false;
  }
  return n > 0;
}

int pointer_device(const void* p) {
  cudaPointerAttributes attr{};
  if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
    cudaGetLastError();  // a plain host pointer (older runtimes) or no driver
    return -1;
  }
  // Managed memory reports the device it was allocated against: the kernels can
  // read it there. Pinned and unregistered host memory count as host.
  if (attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged) return attr.device;
  return -1;
}

void pack(const Layout& l, const void* src, void* dst, int64_t count, void* stream) {
  transfer(l, src, dst, count, stream, false);
}

void unpack(const Layout& l, const void* src, void* dst, int64_t count, void* stream) {
  transfer(l, src, dst, count, stream, true);
}

void synchronize(void* stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "cudaStreamSynchronize");
}

void* alloc_pinned(size_t bytes) {
  void* p = nullptr;
  check(cudaMallocHost(&p, bytes), "cudaMallocHost");
  return p;
}

void free_pinned(void* p) {
  if (!p) return;
  cudaError_t rc = cudaFreeHost(p);
  if (rc == cudaErrorCudartUnloading) return;  // process teardown: the runtime frees it
  check(rc, "cudaFreeHost");
}

void copy(void* dst, const void* src, size_t bytes, void* stream) {
  if (bytes == 0) return;
  check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, static_cast<cudaStream_t>(stream)), "cudaMemcpyAsync");
}

}  // namespace baobab::cuda

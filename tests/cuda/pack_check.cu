// Standalone check and benchmark of the CUDA packers (core/src/cuda/pack.cu).
//
// Checks baobab::cuda::pack / unpack byte for byte against a CPU reference kept
// in this file (plain nested loops, no code shared with the kernels) on random
// layouts: StridedBlocks of 1 to 5 dimensions (negative and zero strides on
// pack; non-overlapping ones on unpack), run lists (short, long enough to be
// chunked, many enough to go to device memory), counts 1..3, every alignment
// unit from 1 to 16 bytes, misaligned buffers, the default and a created
// stream; plus edge cases (count 0, contiguous layouts, 6-20 dimensions, a
// size that does not match). Pack must not write outside the packed bytes,
// unpack outside the layout's bytes. Then measures pack and unpack of 64 MiB
// through 2-D and 3-D layouts with 8 to 4096-byte blocks against a
// device-to-device cudaMemcpy of the same bytes in the same run (and checks
// those results too).
//
// Build (on a machine with a GPU):
//   nvcc -std=c++20 -O3 -arch=native -I core/include core/src/cuda/pack.cu tests/cuda/pack_check.cu -o pack_check
// Usage: pack_check [--seed N] [--cases N] [--no-bench]
// Exit status 0 when every check passes, or when there is no CUDA device.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "baobab/cuda.hpp"
#include "baobab/datatype.hpp"
#include "baobab/error.hpp"

using baobab::ByteRun;
using baobab::Layout;
using Bytes = std::vector<uint8_t>;

namespace {

void cuda_ok(cudaError_t rc, const char* what, int line) {
  if (rc != cudaSuccess) {
    std::fprintf(stderr, "pack_check.cu:%d: %s: %s\n", line, what, cudaGetErrorString(rc));
    std::exit(1);
  }
}
#define CK(call) cuda_ok((call), #call, __LINE__)

// ---- CPU reference -----------------------------------------------------------------

// Calls fn(offset, length) for every contiguous piece of `count` elements, in
// packing order; offsets are bytes from the buffer origin.
void visit(const Layout& l, int64_t count, const std::function<void(int64_t, int64_t)>& fn) {
  for (int64_t k = 0; k < count; ++k) {
    const int64_t base = k * l.extent;
    if (l.kind == Layout::Kind::runs) {
      for (const ByteRun& r : l.runs) fn(base + r.off, r.len);
      continue;
    }
    const auto& c = l.sb.counts;
    const auto& s = l.sb.strides;
    std::function<void(int, int64_t)> dim = [&](int d, int64_t off) {
      if (d == 0) return fn(off, c[0]);
      for (int64_t i = 0; i < c[d]; ++i) dim(d - 1, off + i * s[d]);
    };
    dim(int(c.size()) - 1, base + l.sb.start);
  }
}

void ref_pack(const Layout& l, const uint8_t* origin, uint8_t* out, int64_t count) {
  visit(l, count, [&](int64_t off, int64_t len) {
    std::memcpy(out, origin + off, size_t(len));
    out += len;
  });
}

void ref_unpack(const Layout& l, const uint8_t* in, uint8_t* origin, int64_t count) {
  visit(l, count, [&](int64_t off, int64_t len) {
    std::memcpy(origin + off, in, size_t(len));
    in += len;
  });
}

// [lo, hi): the bytes the layout touches, relative to the origin.
std::pair<int64_t, int64_t> bounds(const Layout& l, int64_t count) {
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  visit(l, count, [&](int64_t off, int64_t len) {
    if (len == 0) return;
    lo = std::min(lo, off);
    hi = std::max(hi, off + len);
  });
  if (lo > hi) lo = hi = 0;
  return {lo, hi};
}

// ---- random layouts ------------------------------------------------------------------

std::mt19937_64 rng;
int64_t uni(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); }
bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng) < p; }
int64_t unit() { return int64_t(1) << uni(0, 4); }  // alignment unit: 1..16 bytes

void fill_random(uint8_t* p, size_t n) {
  uint64_t x = rng() | 1;
  for (size_t i = 0; i < n; ++i) {
    if (i % 8 == 0) {  // xorshift: fast enough for the 100+ MiB benchmark buffers
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
    }
    p[i] = uint8_t(x >> (8 * (i % 8)));
  }
}

Layout strided_layout(std::vector<int64_t> counts, std::vector<int64_t> strides, int64_t start, int64_t extent) {
  Layout l;
  l.kind = Layout::Kind::strided;
  l.sb.start = start;
  l.sb.counts = std::move(counts);
  l.sb.strides = std::move(strides);
  l.size = std::accumulate(l.sb.counts.begin(), l.sb.counts.end(), int64_t(1), std::multiplies<>());
  l.extent = extent;
  return l;
}

// writable: no byte visited twice (nested strides, |extent| >= span).
Layout random_strided(bool writable) {
  const int64_t a = unit();
  const int nd = int(uni(1, 5));
  std::vector<int64_t> c(nd), s(nd, 0);
  c[0] = a * (chance(0.15) ? uni(64, 600) : uni(1, 8));
  s[0] = 1;
  for (int d = 1; d < nd; ++d) c[d] = chance(0.1) ? 1 : uni(2, 5);
  int64_t span = c[0], extent;
  if (writable) {
    std::vector<int> order(nd - 1);
    std::iota(order.begin(), order.end(), 1);
    std::shuffle(order.begin(), order.end(), rng);
    for (int d : order) {
      const int64_t m = span + (chance(0.3) ? 0 : a * uni(1, 3));  // gap 0: may merge
      s[d] = chance(0.25) ? -m : m;
      span += m * (c[d] - 1);
    }
    extent = span + (chance(0.3) ? 0 : a * uni(1, 4));
    if (chance(0.15)) extent = -extent;
  } else {
    for (int d = 1; d < nd; ++d) s[d] = a * uni(-12, 12);
    extent = a * uni(-40, 40);
  }
  return strided_layout(c, s, a * uni(-8, 8), extent);
}

Layout random_runs(bool writable) {
  const int64_t a = unit();
  const int64_t nr = chance(0.1) ? uni(60, 200) : uni(1, 12);
  Layout l;
  l.kind = Layout::Kind::runs;
  std::vector<int64_t> lens(nr);
  for (auto& len : lens) len = chance(0.03) ? 0 : a * (chance(0.05) ? uni(1000, 3000) : uni(1, 8));
  if (writable) {  // laid out in memory with gaps, packed in a shuffled order
    const int64_t first = a * uni(-4, 4);
    int64_t pos = first;
    for (int64_t len : lens) {
      l.runs.push_back({pos, len});
      pos += len + (chance(0.3) ? 0 : a * uni(1, 3));
    }
    std::shuffle(l.runs.begin(), l.runs.end(), rng);
    l.extent = pos - first + a * uni(0, 4);
  } else {
    for (int64_t len : lens) l.runs.push_back({a * uni(-50, 50), len});
    l.extent = a * uni(-40, 40);
  }
  for (int64_t len : lens) l.size += len;
  return l;
}

std::string describe(const Layout& l, int64_t count) {
  std::string s;
  auto num = [&](const char* sep, int64_t v) {
    s += sep;
    s += std::to_string(v);
  };
  auto list = [&](const char* name, const std::vector<int64_t>& v) {
    s += name;
    for (size_t i = 0; i < v.size(); ++i) num(i ? "," : "[", v[i]);
    s += "]";
  };
  if (l.kind == Layout::Kind::strided) {
    num("strided start=", l.sb.start);
    list(" counts=", l.sb.counts);
    list(" strides=", l.sb.strides);
  } else {
    num("runs(", int64_t(l.runs.size()));
    s += ")";
    for (size_t i = 0; i < std::min<size_t>(l.runs.size(), 8); ++i) {
      num(" ", l.runs[i].off);
      num(":", l.runs[i].len);
    }
    if (l.runs.size() > 8) s += " ...";
  }
  num(" size=", l.size);
  num(" extent=", l.extent);
  num(" count=", count);
  return s;
}

// ---- one check -------------------------------------------------------------------------

int failures = 0, checks = 0;

void fail(const std::string& what, const Layout& l, int64_t count, const Bytes& got, const Bytes& want) {
  size_t i = 0;
  while (i < got.size() && got[i] == want[i]) ++i;
  if (++failures <= 20)
    std::printf("FAIL %s: %s: first difference at byte %zu of %zu (got %d, want %d)\n", what.c_str(),
                describe(l, count).c_str(), i, got.size(), i < got.size() ? got[i] : -1, i < want.size() ? want[i] : -1);
}

// Packs (and, if `unpack`, unpacks) `count` elements with the layout origin at
// an address = layout_mis (mod 16) and the packed buffer at packed_mis (mod 16).
void check_case(const Layout& l, int64_t count, int layout_mis, int packed_mis, bool unpack, cudaStream_t stream) {
  constexpr int64_t kGuard = 32;
  const auto [lo, hi] = bounds(l, count);
  // origin = buffer + P with P = layout_mis (mod 16) and P + lo >= kGuard
  int64_t P = kGuard - lo;
  P += ((layout_mis - P) % 16 + 16) % 16;
  const int64_t lbytes = P + hi + kGuard;
  const int64_t total = l.size * count;
  const int64_t pbytes = kGuard + packed_mis + total + kGuard;

  Bytes hl(static_cast<size_t>(lbytes), 0), hp(static_cast<size_t>(pbytes), 0xA5);
  fill_random(hl.data(), hl.size());
  uint8_t *dl = nullptr, *dp = nullptr;
  CK(cudaMalloc(&dl, size_t(lbytes)));
  CK(cudaMalloc(&dp, size_t(pbytes)));
  CK(cudaMemcpy(dl, hl.data(), size_t(lbytes), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dp, hp.data(), size_t(pbytes), cudaMemcpyHostToDevice));

  // pack
  Bytes want_p = hp;
  ref_pack(l, hl.data() + P, want_p.data() + kGuard + packed_mis, count);
  try {
    baobab::cuda::pack(l, dl + P, dp + kGuard + packed_mis, count, stream);
    baobab::cuda::synchronize(stream);
  } catch (const baobab::Error& e) {
    ++failures;
    std::printf("FAIL pack threw %s: %s\n", e.what(), describe(l, count).c_str());
    CK(cudaFree(dl));
    CK(cudaFree(dp));
    return;
  }
  Bytes got(static_cast<size_t>(pbytes)), got_l(static_cast<size_t>(lbytes));
  CK(cudaMemcpy(got.data(), dp, size_t(pbytes), cudaMemcpyDeviceToHost));
  CK(cudaMemcpy(got_l.data(), dl, size_t(lbytes), cudaMemcpyDeviceToHost));
  ++checks;
  if (got != want_p) fail("pack", l, count, got, want_p);
  if (got_l != hl) fail("pack wrote its source", l, count, got_l, hl);

  // unpack fresh random packed bytes over the random layout buffer
  if (unpack) {
    Bytes src(static_cast<size_t>(pbytes));
    fill_random(src.data(), src.size());
    CK(cudaMemcpy(dp, src.data(), size_t(pbytes), cudaMemcpyHostToDevice));
    Bytes want_l = hl;
    ref_unpack(l, src.data() + kGuard + packed_mis, want_l.data() + P, count);
    try {
      baobab::cuda::unpack(l, dp + kGuard + packed_mis, dl + P, count, stream);
      baobab::cuda::synchronize(stream);
      CK(cudaMemcpy(got_l.data(), dl, size_t(lbytes), cudaMemcpyDeviceToHost));
      ++checks;
      if (got_l != want_l) fail("unpack", l, count, got_l, want_l);
    } catch (const baobab::Error& e) {
      ++failures;
      std::printf("FAIL unpack threw %s: %s\n", e.what(), describe(l, count).c_str());
    }
  }
  CK(cudaFree(dl));
  CK(cudaFree(dp));
}

int random_mis(const Layout& l) {
  switch (uni(0, 2)) {
    case 0: return 0;
    case 1: return int(uni(0, 15));
    default: {  // a multiple of the layout's alignment unit
      int64_t g = l.kind == Layout::Kind::strided ? l.sb.counts[0] : 0;
      for (const ByteRun& r : l.runs) g = std::gcd(g, r.len);
      g = std::gcd(std::max<int64_t>(g, 1), 16);
      return int(g * uni(0, 16 / g - 1));
    }
  }
}

void check_random(int cases, cudaStream_t created) {
  for (int i = 0; i < cases; ++i) {
    const bool runs = i % 3 == 2, writable = chance(0.6);
    const Layout l = runs ? random_runs(writable) : random_strided(writable);
    const int64_t count = uni(1, 3);
    check_case(l, count, random_mis(l), random_mis(l), writable, chance(0.5) ? created : nullptr);
  }
}

void check_edges(cudaStream_t stream) {
  // many non-mergeable dimensions: the generic kernel
  for (int nd : {6, 8, 12, 16}) {
    for (int64_t block : {int64_t(3), int64_t(16), int64_t(48)}) {
      std::vector<int64_t> c(nd, 2), s(nd, 1);
      c[0] = block;
      int64_t span = block;
      for (int d = 1; d < nd; ++d) {
        s[d] = (d % 3 == 0 ? -1 : 1) * (span + 16);
        span += (span + 16);
      }
      for (int64_t count : {1, 3}) check_case(strided_layout(c, s, 16, span + 32), count, 0, 0, true, stream);
    }
  }
  // contiguous after merging (memcpy path), with and without the count merging
  check_case(strided_layout({16, 4, 3}, {1, 16, 64}, 8, 192), 3, 0, 0, true, stream);
  check_case(strided_layout({16, 4, 3}, {1, 16, 64}, 8, 200), 3, 0, 0, true, stream);
  check_case(strided_layout({5, 7}, {1, 5}, 0, 35), 2, 3, 1, true, stream);
  // zero strides and a zero extent (pack only)
  check_case(strided_layout({32, 4, 3}, {1, 0, 48}, 0, 0), 3, 0, 0, false, stream);
  check_case(strided_layout({8, 1000}, {1, 0}, 0, 8), 2, 0, 0, false, stream);
  // large enough for many grid-stride iterations: 2-D, 3-D, 4 outer dims, runs
  check_case(strided_layout({24, 300000}, {1, 40}, 0, 12000000), 3, 0, 0, true, stream);
  check_case(strided_layout({4, 1000, 700}, {1, 12, 12004}, 0, 0), 1, 0, 0, true, stream);
  check_case(strided_layout({16, 50, 40, 30}, {1, 32, -1616, 65000}, 0, 2000000), 2, 0, 0, true, stream);
  {
    Layout l;
    l.kind = Layout::Kind::runs;
    for (int64_t i = 0; i < 5000; ++i) l.runs.push_back({i * 300 + (i % 7) * 8, 16 * (1 + i % 13)});
    for (const ByteRun& r : l.runs) l.size += r.len;
    l.extent = 5000 * 300 + 200;
    check_case(l, 3, 0, 0, true, stream);
  }
  // single run (strided path) and a run list with a 1 MiB run
  {
    Layout l;
    l.kind = Layout::Kind::runs;
    l.runs = {{40, 1000}};
    l.size = 1000;
    l.extent = 2000;
    check_case(l, 3, 0, 8, true, stream);
    l.runs = {{0, 1 << 20}, {(1 << 20) + 64, 48}};
    l.size = (1 << 20) + 48;
    l.extent = (1 << 20) + 256;
    check_case(l, 2, 0, 0, true, stream);
  }
  // count 0 and size 0 do nothing (a null pointer would fault if touched)
  {
    const Layout l = strided_layout({64, 4}, {1, 128}, 0, 512);
    baobab::cuda::pack(l, nullptr, nullptr, 0, stream);
    Layout empty = strided_layout({0, 4}, {1, 128}, 0, 512);
    baobab::cuda::pack(empty, nullptr, nullptr, 5, stream);
    baobab::cuda::unpack(empty, nullptr, nullptr, 5, stream);
    baobab::cuda::synchronize(stream);
    ++checks;
  }
  // a size that does not match the layout is refused
  {
    Layout l = strided_layout({64, 4}, {1, 128}, 0, 512);
    l.size = 100;
    bool threw = false;
    try {
      baobab::cuda::pack(l, nullptr, nullptr, 1, stream);
    } catch (const baobab::InvalidArgument&) {
      threw = true;
    }
    ++checks;
    if (!threw) {
      ++failures;
      std::printf("FAIL pack accepted a layout whose size does not match\n");
    }
  }
}

void check_helpers(cudaStream_t stream) {
  int dev = 0;
  CK(cudaGetDevice(&dev));
  void* d = nullptr;
  CK(cudaMalloc(&d, 4096));
  Bytes host(4096), back(4096);
  fill_random(host.data(), host.size());
  void* pinned = baobab::cuda::alloc_pinned(4096);
  const bool ok = baobab::cuda::available() && baobab::cuda::pointer_device(d) == dev &&
                  baobab::cuda::pointer_device(static_cast<char*>(d) + 100) == dev &&
                  baobab::cuda::pointer_device(host.data()) == -1 && baobab::cuda::pointer_device(pinned) == -1 &&
                  baobab::cuda::pointer_device(nullptr) == -1;
  baobab::cuda::copy(pinned, host.data(), 4096, stream);  // host to host
  baobab::cuda::copy(d, pinned, 4096, stream);            // host to device
  baobab::cuda::copy(back.data(), d, 4096, stream);       // device to pageable host
  baobab::cuda::synchronize(stream);
  baobab::cuda::free_pinned(pinned);
  CK(cudaFree(d));
  checks += 2;
  if (!ok) {
    ++failures;
    std::printf("FAIL available/pointer_device\n");
  }
  if (back != host) {
    ++failures;
    std::printf("FAIL copy round trip\n");
  }
}

// ---- benchmark ---------------------------------------------------------------------------

void bench() {
  constexpr int64_t kBytes = int64_t(64) << 20;
  constexpr int kReps = 20;
  cudaStream_t s;
  CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  // GB/s of `bytes` packed bytes per call, over kReps calls after two warm-ups
  auto measure = [&](const std::function<void()>& op, int64_t bytes) {
    op();
    op();
    CK(cudaEventRecord(e0, s));
    for (int i = 0; i < kReps; ++i) op();
    CK(cudaEventRecord(e1, s));
    CK(cudaEventSynchronize(e1));
    float ms = 0;
    CK(cudaEventElapsedTime(&ms, e0, e1));
    return double(bytes) * kReps / (ms * 1e-3) / 1e9;
  };

  std::printf("\nbandwidth, GB/s of packed bytes (%lld MiB per call); blocks twice their length apart,\n"
              "3-D: rows of 16 blocks, 34 block lengths apart; ratio: to cudaMemcpy D2D of the same bytes\n",
              (long long)(kBytes >> 20));
  std::printf("%-6s %7s %9s %9s %6s %9s %6s %8s\n", "layout", "block", "memcpy", "pack", "ratio", "unpack", "ratio",
              "of bound");
  uint8_t *dp = nullptr, *dq = nullptr;
  CK(cudaMalloc(&dp, size_t(kBytes)));
  CK(cudaMalloc(&dq, size_t(kBytes)));
  for (int dims : {2, 3}) {
    for (int64_t b : {8, 64, 512, 4096}) {
      const int64_t blocks = kBytes / b;
      // 3-D: 16 blocks per row, rows one block further apart than a merge needs
      const Layout l = dims == 2 ? strided_layout({b, blocks}, {1, 2 * b}, 0, 0)
                                 : strided_layout({b, 16, blocks / 16}, {1, 2 * b, 34 * b}, 0, 0);
      const auto [lo, hi] = bounds(l, 1);
      const int64_t span = hi - lo;
      Bytes hl(static_cast<size_t>(span)), hp(static_cast<size_t>(kBytes)), got(static_cast<size_t>(kBytes));
      fill_random(hl.data(), hl.size());
      uint8_t* dl = nullptr;
      CK(cudaMalloc(&dl, size_t(span)));
      CK(cudaMemcpy(dl, hl.data(), size_t(span), cudaMemcpyHostToDevice));

      const double copy = measure([&] { CK(cudaMemcpyAsync(dq, dp, size_t(kBytes), cudaMemcpyDeviceToDevice, s)); }, kBytes);
      const double pk = measure([&] { baobab::cuda::pack(l, dl - lo, dp, 1, s); }, kBytes);
      // check the pack result, then unpack it into a cleared buffer
      ref_pack(l, hl.data() - lo, hp.data(), 1);
      CK(cudaMemcpy(got.data(), dp, size_t(kBytes), cudaMemcpyDeviceToHost));
      ++checks;
      if (got != hp) fail("bench pack", l, 1, got, hp);
      CK(cudaMemset(dl, 0, size_t(span)));
      const double up = measure([&] { baobab::cuda::unpack(l, dp, dl - lo, 1, s); }, kBytes);
      Bytes want(static_cast<size_t>(span), 0), got_l(static_cast<size_t>(span));
      ref_unpack(l, hp.data(), want.data() - lo, 1);
      CK(cudaMemcpy(got_l.data(), dl, size_t(span), cudaMemcpyDeviceToHost));
      ++checks;
      if (got_l != want) fail("bench unpack", l, 1, got_l, want);
      CK(cudaFree(dl));
      // DRAM moves whole 32-byte sectors: a block shorter than a sector costs a
      // sector. "of bound": pack's rate against memcpy's once the sectors the
      // layout really reads are counted (1.00 = as fast as the memory allows).
      int64_t sectors = 0;
      for (int64_t k = 0; k < blocks; ++k) {
        const int64_t o = dims == 2 ? k * 2 * b : (k / 16) * 34 * b + (k % 16) * 2 * b;
        sectors += ((o + b - 1) >> 5) - (o >> 5) + 1;
      }
      const double bound = double(sectors * 32 + kBytes) / double(2 * kBytes);
      std::printf("%-6s %5lld B %9.1f %9.1f %6.2f %9.1f %6.2f %8.2f%s\n", dims == 2 ? "2-D" : "3-D", (long long)b, copy,
                  pk, pk / copy, up, up / copy, std::min(1.0, pk * bound / copy),
                  b >= 64 && std::min(pk, up) < 0.7 * copy ? "  (below 0.70)" : "");
    }
  }

  // Halo faces of a 512^3 float64 field (1 GiB): the x-faces are 8- or 16-byte
  // blocks 4 KiB apart, a y-face 512 blocks of 4 KiB. Baseline: cudaMemcpy2DAsync
  // of the same rows (what a hand-written halo code would call).
  {
    constexpr int64_t n = 512, row = n * 8, plane = n * row;
    uint8_t* field = nullptr;
    CK(cudaMalloc(&field, size_t(n * plane)));
    CK(cudaMemset(field, 1, size_t(n * plane)));
    std::printf("\nhalo faces of a 512^3 float64 field, GB/s of packed bytes (%d calls each)\n", kReps);
    std::printf("%-22s %9s %9s %6s\n", "face", "memcpy2D", "pack", "ratio");
    struct Face { const char* name; int64_t block, rows, pitch, start; };
    for (const Face f : {Face{"x-face width 1 (8 B)", 8, n * n, row, 8}, Face{"x-face width 2 (16 B)", 16, n * n, row, 8},
                         Face{"y-face width 1 (4 KiB)", row, n, plane, row}, Face{"z-face width 1 (2 MiB)", plane, 1, plane, plane}}) {
      const Layout l = strided_layout({f.block, f.rows}, {1, f.pitch}, f.start, 0);
      const int64_t bytes = f.block * f.rows;
      const double m2d = measure([&] {
        CK(cudaMemcpy2DAsync(dp, size_t(f.block), field + f.start, size_t(f.pitch), size_t(f.block), size_t(f.rows),
                             cudaMemcpyDeviceToDevice, s));
      }, bytes);
      const double pk = measure([&] { baobab::cuda::pack(l, field, dp, 1, s); }, bytes);
      std::printf("%-22s %9.1f %9.1f %6.2f\n", f.name, m2d, pk, pk / m2d);
    }
    CK(cudaFree(field));
  }
  CK(cudaFree(dp));
  CK(cudaFree(dq));
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  CK(cudaStreamDestroy(s));
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t seed = 12345;
  int cases = 3000;
  bool run_bench = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--seed" && i + 1 < argc) seed = std::strtoull(argv[++i], nullptr, 10);
    else if (a == "--cases" && i + 1 < argc) cases = std::atoi(argv[++i]);
    else if (a == "--no-bench") run_bench = false;
    else {
      std::fprintf(stderr, "usage: %s [--seed N] [--cases N] [--no-bench]\n", argv[0]);
      return 2;
    }
  }
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::printf("no CUDA device\n");
    return 0;
  }
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, 0));
  std::printf("device 0: %s (sm_%d%d), seed %llu\n", prop.name, prop.major, prop.minor, (unsigned long long)seed);
  rng.seed(seed);

  cudaStream_t stream;
  CK(cudaStreamCreate(&stream));
  try {
    check_helpers(stream);
    check_edges(stream);
    check_random(cases, stream);
    std::printf("%d checks, %d failures\n", checks, failures);
    if (run_bench) bench();
  } catch (const baobab::Error& e) {
    std::printf("FAIL: uncaught %s\n", e.what());
    ++failures;
  }
  CK(cudaStreamDestroy(stream));
  if (failures) std::printf("%d FAILURES\n", failures);
  else std::printf("all passed\n");
  return failures ? 1 : 0;
}

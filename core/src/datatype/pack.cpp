// CPU packers for canonical layouts.
//
// A StridedBlock is walked with its block copy specialised twice: by the number
// of dimensions (1: one memcpy; 2 and 3: plain nested loops; N: an odometer over
// the outer dimensions around a 2-D inner loop) and by the block size. Blocks of
// 1, 2, 4, 8, 16, 32 and 64 bytes use a copy of compile-time size, which the
// compiler turns into one or two unaligned word moves (x86 and Arm load words
// at any alignment; the word size follows from the block size), so an 8-byte
// block costs a load and a store instead of a memcpy call. Other sizes call
// memcpy, which is the fastest copy from a few hundred bytes up. Run lists take
// the generic path: one memcpy per run.
//
// Large packs (at least kStreamBytes of output) write the contiguous output
// with non-temporal stores on x86-64, as glibc's memcpy does for large copies:
// the output is not read into the cache before being overwritten, which saves a
// third of the memory traffic. 8-byte blocks use 8-byte streaming stores,
// multiples of 16 bytes 16-byte ones (numpy aligns buffers to 16 bytes).
#include <algorithm>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "baobab/datatype.hpp"
#include "baobab/error.hpp"

namespace baobab {

namespace {

// Copies `rows` blocks of B bytes: the i-th from src + i*ss to dst + i*ds.
template <int B>
void rows_fixed(char* dst, int64_t ds, const char* src, int64_t ss, int64_t rows) {
  for (int64_t i = 0; i < rows; ++i) {
    std::memcpy(dst, src, B);
    dst += ds;
    src += ss;
  }
}

constexpr int64_t kStreamBytes = int64_t{4} << 20;

#if defined(__x86_64__)
// Packs rows of b bytes (b % 16 == 0) into a 16-byte-aligned contiguous dst with
// streaming stores. Rows far apart defeat the hardware prefetcher (it follows
// one 4 KiB page at a time): from 2 KiB rows up to 32 KiB, the row about 8 KiB
// ahead is prefetched while this one is copied.
void rows_stream16(char* dst, const char* src, int64_t ss, int64_t rows, int64_t b) {
  const int64_t ahead = (b >= 2048 && b < 32768) ? std::max<int64_t>(1, 8192 / b) : 0;
  for (int64_t i = 0; i < rows; ++i) {
    const char* s = src + i * ss;
    char* d = dst + i * b;
    if (ahead && i + ahead < rows) {
      const char* f = src + (i + ahead) * ss;
      for (int64_t k = 0; k < b; k += 64) _mm_prefetch(f + k, _MM_HINT_T0);
    }
    for (int64_t k = 0; k < b; k += 16)
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + k), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k)));
  }
}

void rows_stream8(char* dst, const char* src, int64_t ss, int64_t rows) {
  for (int64_t i = 0; i < rows; ++i) {
    long long v;
    std::memcpy(&v, src + i * ss, 8);
    _mm_stream_si64(reinterpret_cast<long long*>(dst) + i, v);
  }
}

// Which streaming path, if any, serves a block size (measured on a 2-vCPU EPYC
// VM, 256 MiB packs; docs/performance.md): 8-byte blocks and multiples of 16 up
// to 256 bytes gain the most; 512-2047 byte rows copy faster with memcpy.
bool stream_block(int64_t b) { return b == 8 || (b % 16 == 0 && (b <= 256 || b >= 2048)); }
#endif

void rows_any(char* dst, int64_t ds, const char* src, int64_t ss, int64_t rows, int64_t b) {
  for (int64_t i = 0; i < rows; ++i) {
    std::memcpy(dst, src, static_cast<size_t>(b));
    dst += ds;
    src += ss;
  }
}

using RowsFn = void (*)(char*, int64_t, const char*, int64_t, int64_t);

RowsFn rows_for(int64_t b) {
  switch (b) {
    case 1: return rows_fixed<1>;
    case 2: return rows_fixed<2>;
    case 4: return rows_fixed<4>;
    case 8: return rows_fixed<8>;
    case 12: return rows_fixed<12>;
    case 16: return rows_fixed<16>;
    case 24: return rows_fixed<24>;
    case 32: return rows_fixed<32>;
    case 48: return rows_fixed<48>;
    case 64: return rows_fixed<64>;
    default: return nullptr;
  }
}

// One element of a StridedBlock. `to_packed`: strided -> contiguous (pack),
// else contiguous -> strided (unpack). `packed` advances by the data size.
void walk(const StridedBlock& sb, char* strided, char* packed, bool to_packed, bool stream) {
  const int nd = sb.ndims();
  const int64_t b = sb.counts[0];
  char* base = strided + sb.start;
  if (nd == 1) {
    if (to_packed) std::memcpy(packed, base, static_cast<size_t>(b));
    else std::memcpy(base, packed, static_cast<size_t>(b));
    return;
  }
  const RowsFn fixed = rows_for(b);
  const int64_t rows = sb.counts[1], rs = sb.strides[1];
  auto rows_at = [&](char* s, char* p) {
#if defined(__x86_64__)
    if (stream && to_packed && stream_block(b)) {
      if (b == 8 && (reinterpret_cast<uintptr_t>(p) & 7) == 0) return rows_stream8(p, s, rs, rows);
      if (b % 16 == 0 && (reinterpret_cast<uintptr_t>(p) & 15) == 0) return rows_stream16(p, s, rs, rows, b);
    }
#else
    (void)stream;
#endif
    if (to_packed) {
      if (fixed) fixed(p, b, s, rs, rows);
      else rows_any(p, b, s, rs, rows, b);
    } else {
      if (fixed) fixed(s, rs, p, b, rows);
      else rows_any(s, rs, p, b, rows, b);
    }
  };
  const int64_t plane = b * rows;  // packed bytes of one 2-D slice
  if (nd == 2) {
    rows_at(base, packed);
    return;
  }
  if (nd == 3) {
    const int64_t n2 = sb.counts[2], s2 = sb.strides[2];
    for (int64_t k = 0; k < n2; ++k) rows_at(base + k * s2, packed + k * plane);
    return;
  }
  // N dimensions: an odometer over dimensions 2..nd-1.
  std::vector<int64_t> idx(static_cast<size_t>(nd), 0);
  int64_t off = 0;
  char* p = packed;
  for (;;) {
    rows_at(base + off, p);
    p += plane;
    int d = 2;
    for (; d < nd; ++d) {
      if (++idx[d] < sb.counts[d]) {
        off += sb.strides[d];
        break;
      }
      off -= (sb.counts[d] - 1) * sb.strides[d];
      idx[d] = 0;
    }
    if (d == nd) return;
  }
}

void walk_runs(const std::vector<ByteRun>& runs, char* strided, char* packed, bool to_packed) {
  for (const auto& r : runs) {
    if (to_packed) std::memcpy(packed, strided + r.off, static_cast<size_t>(r.len));
    else std::memcpy(strided + r.off, packed, static_cast<size_t>(r.len));
    packed += r.len;
  }
}

void run(const Layout& l, char* strided, char* packed, int64_t count, bool to_packed) {
  if (count < 0) throw InvalidArgument("negative count");
  if (l.size == 0 || count == 0) return;
  bool stream = false;
#if defined(__x86_64__)
  stream = to_packed && l.size * count >= kStreamBytes;
#endif
  for (int64_t k = 0; k < count; ++k) {
    char* s = strided + k * l.extent;
    char* p = packed + k * l.size;
    if (l.kind == Layout::Kind::strided) walk(l.sb, s, p, to_packed, stream);
    else walk_runs(l.runs, s, p, to_packed);
  }
#if defined(__x86_64__)
  if (stream) _mm_sfence();  // streaming stores are weakly ordered: publish them
#endif
}

}  // namespace

void pack(const Layout& l, const void* src, void* dst, int64_t count) {
  run(l, const_cast<char*>(static_cast<const char*>(src)), static_cast<char*>(dst), count, true);
}

void unpack(const Layout& l, const void* src, void* dst, int64_t count) {
  run(l, static_cast<char*>(dst), const_cast<char*>(static_cast<const char*>(src)), count, false);
}

}  // namespace baobab

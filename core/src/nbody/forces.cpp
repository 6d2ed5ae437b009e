// Direct-summation N-body forces on the host: see baobab/nbody.hpp.
//
// Design
// ------
// Vectors run along *targets*: a block of B = U x W targets (W lanes per
// register, U registers) is packed into SoA registers, every source is
// broadcast, and the sources are visited one after the other, j = 0 .. n-1,
// for every lane. Each lane therefore performs exactly the arithmetic of a lone
// target: the result does not depend on the batch, the block, the lane or the
// thread. Tails are padded (dummy targets whose results are dropped), never
// computed by a different code path.
//
// Self pair. A lane's self source index s = idi - first_id (or -1) is known
// before the loop. The sources of a block are visited in three consecutive
// ranges: [0, lo), [lo, hi], (hi, n) with lo/hi the smallest/largest self index
// of the block's lanes; only the middle range compares j with s per lane and,
// where they match, replaces (m_j, r2) by (0, 1), so the pair adds exactly
// zero. For lanes without a match both code paths compute the same bits.
//
// Arithmetic per pair (FMA tiers): r, u (6 sub), r2 (3 fma), rinv = 1 / sqrt(r2)
// (correctly rounded sqrt and division: error under 1.5 ulp; an rsqrt estimate
// plus Newton steps was not faster here, the divider runs beside the FMA
// pipes), then mr = m rinv, mr3 = mr rinv^2, a = 3 (r.u) rinv^2 and
//   pot -= mr;  acc += mr3 r;  jerk += mr3 (u - a r).
// The baseline tier computes the same with separate multiplies and adds.
//
// Threads. Blocks are grouped into items (consecutive blocks) handed out to the
// threads dynamically. Within an item the sources are visited in tiles of
// kTile (kTile x 56 bytes stay in L2 while the item's blocks sweep them); the
// block accumulators are parked in memory between tiles, which keeps the sum
// order j = 0 .. n-1 unchanged. Sources are transposed to SoA once per call.
//
// Instruction sets: as in core/src/attention/kernels.cpp, the body (the #else
// part at the end) is compiled up to three times by including this file into
// itself: baseline (no target), and on x86-64 GCC under #pragma GCC target
// "avx2,fma" and "avx512f,avx512dq,...". The tier is picked once per process with
// __builtin_cpu_supports; BAOBAB_NBODY_ISA=baseline|avx2|avx512 caps it.
#ifndef BAOBAB_NBODY_KERNEL_BODY

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <new>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#include "baobab/error.hpp"
#include "baobab/isa.hpp"
#include "baobab/nbody.hpp"

#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0
#error "baobab nbody kernels need FLT_EVAL_METHOD == 0 (e.g. SSE2 floating point on x86)"
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define BAOBAB_NBODY_X86 1
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

#if defined(__GNUC__) || defined(__clang__)
#define BAOBAB_NB_AI inline __attribute__((always_inline))
#else
#define BAOBAB_NB_AI inline
#endif

namespace baobab::nbody {
namespace {

constexpr int64_t kTile = 2048;                   // sources per cache tile
constexpr int64_t kMinPairsPerThread = 1 << 18;  // below this a thread costs more than it saves

// 64-byte aligned, uninitialised array of doubles / int64.
template <class E>
class Buf {
 public:
  Buf() = default;
  explicit Buf(size_t n) {
    size_t bytes = (std::max<size_t>(n, 1) * sizeof(E) + 63) & ~size_t(63);
    p_ = static_cast<E*>(::operator new[](bytes, std::align_val_t(64)));
  }
  Buf(const Buf&) = delete;
  Buf& operator=(const Buf&) = delete;
  Buf(Buf&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  ~Buf() {
    if (p_) ::operator delete[](p_, std::align_val_t(64));
  }
  E* get() const { return p_; }

 private:
  E* p_ = nullptr;
};

// The problem after validation.
struct Problem {
  const double *xi, *vi;
  const int64_t* idi;
  int64_t ni;
  const double *x, *v, *m;
  int64_t n, first_id;
  double eps2;
  double *acc, *jerk, *pot;
};

// Sources as SoA: s[c * stride + j], c = x, y, z, vx, vy, vz, m.
struct Sources {
  const double* s;
  int64_t stride, n;
};

int usable_cpus() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  unsigned h = std::thread::hardware_concurrency();
  return h ? int(h) : 1;
}

// Runs fn(thread index, item) for item in [0, items) on `threads` threads (the
// calling one included), items handed out dynamically.
void run_parallel(int threads, int64_t items, const std::function<void(int, int64_t)>& fn) {
  if (items <= 0) return;
  threads = int(std::max<int64_t>(1, std::min<int64_t>(threads, items)));
  std::atomic<int64_t> next{0};
  auto worker = [&](int tid) {
    for (;;) {
      int64_t it = next.fetch_add(1, std::memory_order_relaxed);
      if (it >= items) break;
      fn(tid, it);
    }
  };
  if (threads == 1) {
    worker(0);
    return;
  }
  std::vector<std::thread> pool;
  pool.reserve(size_t(threads - 1));
  for (int t = 1; t < threads; ++t) {
    try {
      pool.emplace_back(worker, t);
    } catch (const std::system_error&) {
      break;  // could not start another thread: the ones running share the items
    }
  }
  worker(0);
  for (auto& th : pool) th.join();
}

// The source index of target id `id`, or -1 when no source has that id.
BAOBAB_NB_AI int64_t self_index(int64_t id, int64_t first_id, int64_t n) {
  if (id < first_id) return -1;
  const uint64_t d = uint64_t(id) - uint64_t(first_id);  // exact: 0 <= id - first_id < 2^64
  return d < uint64_t(n) ? int64_t(d) : -1;
}

// ---------------------------------------------------------------- vector traits

struct ScalarD {
  using V = double;
  using I = int64_t;
  using M = bool;
  static constexpr int W = 1, U = 4;
  static BAOBAB_NB_AI V set1(double x) { return x; }
  static BAOBAB_NB_AI V load(const double* p) { return *p; }
  static BAOBAB_NB_AI void store(double* p, V a) { *p = a; }
  static BAOBAB_NB_AI I loadi(const int64_t* p) { return *p; }
  static BAOBAB_NB_AI V add(V a, V b) { return a + b; }
  static BAOBAB_NB_AI V sub(V a, V b) { return a - b; }
  static BAOBAB_NB_AI V mul(V a, V b) { return a * b; }
  static BAOBAB_NB_AI V fma(V a, V b, V c) { return a * b + c; }    // c + a b
  static BAOBAB_NB_AI V fnma(V a, V b, V c) { return c - a * b; }   // c - a b
  static BAOBAB_NB_AI V rsqrt(V a) { return 1.0 / std::sqrt(a); }
  static BAOBAB_NB_AI M eq(I a, int64_t j) { return a == j; }
  static BAOBAB_NB_AI V blend(M k, V a, V b) { return k ? b : a; }  // b where k
};

}  // namespace
}  // namespace baobab::nbody

#ifdef BAOBAB_NBODY_X86

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace baobab::nbody {
namespace {
struct Avx2D {
  using V = __m256d;
  using I = __m256i;
  using M = __m256d;
  static constexpr int W = 4, U = 1;
  static BAOBAB_NB_AI V set1(double x) { return _mm256_set1_pd(x); }
  static BAOBAB_NB_AI V load(const double* p) { return _mm256_load_pd(p); }
  static BAOBAB_NB_AI void store(double* p, V a) { _mm256_store_pd(p, a); }
  static BAOBAB_NB_AI I loadi(const int64_t* p) { return _mm256_load_si256(reinterpret_cast<const __m256i*>(p)); }
  static BAOBAB_NB_AI V add(V a, V b) { return _mm256_add_pd(a, b); }
  static BAOBAB_NB_AI V sub(V a, V b) { return _mm256_sub_pd(a, b); }
  static BAOBAB_NB_AI V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  static BAOBAB_NB_AI V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static BAOBAB_NB_AI V fnma(V a, V b, V c) { return _mm256_fnmadd_pd(a, b, c); }
  static BAOBAB_NB_AI V rsqrt(V a) { return _mm256_div_pd(_mm256_set1_pd(1.0), _mm256_sqrt_pd(a)); }
  static BAOBAB_NB_AI M eq(I a, int64_t j) {
    return _mm256_castsi256_pd(_mm256_cmpeq_epi64(a, _mm256_set1_epi64x(j)));
  }
  static BAOBAB_NB_AI V blend(M k, V a, V b) { return _mm256_blendv_pd(a, b, k); }
};
}  // namespace
}  // namespace baobab::nbody
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
namespace baobab::nbody {
namespace {
struct Avx512D {
  using V = __m512d;
  using I = __m512i;
  using M = __mmask8;
  static constexpr int W = 8, U = 2;
  static BAOBAB_NB_AI V set1(double x) { return _mm512_set1_pd(x); }
  static BAOBAB_NB_AI V load(const double* p) { return _mm512_load_pd(p); }
  static BAOBAB_NB_AI void store(double* p, V a) { _mm512_store_pd(p, a); }
  static BAOBAB_NB_AI I loadi(const int64_t* p) { return _mm512_load_si512(p); }
  static BAOBAB_NB_AI V add(V a, V b) { return _mm512_add_pd(a, b); }
  static BAOBAB_NB_AI V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static BAOBAB_NB_AI V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  static BAOBAB_NB_AI V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static BAOBAB_NB_AI V fnma(V a, V b, V c) { return _mm512_fnmadd_pd(a, b, c); }
  static BAOBAB_NB_AI V rsqrt(V a) { return _mm512_div_pd(_mm512_set1_pd(1.0), _mm512_sqrt_pd(a)); }
  static BAOBAB_NB_AI M eq(I a, int64_t j) { return _mm512_cmpeq_epi64_mask(a, _mm512_set1_epi64(j)); }
  static BAOBAB_NB_AI V blend(M k, V a, V b) { return _mm512_mask_blend_pd(k, a, b); }
};
}  // namespace
}  // namespace baobab::nbody
#pragma GCC pop_options

#endif  // BAOBAB_NBODY_X86

// ---------------------------------------------------------------- the tiers

#define BAOBAB_NBODY_KERNEL_BODY 1

namespace baobab::nbody::tier_base {
namespace {
using VD = ScalarD;
}  // namespace
#include "forces.cpp"  // the body, below
}  // namespace baobab::nbody::tier_base

#ifdef BAOBAB_NBODY_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace baobab::nbody::tier_avx2 {
namespace {
using VD = Avx2D;
}  // namespace
#include "forces.cpp"
}  // namespace baobab::nbody::tier_avx2
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")
namespace baobab::nbody::tier_avx512 {
namespace {
using VD = Avx512D;
}  // namespace
#include "forces.cpp"
}  // namespace baobab::nbody::tier_avx512
#pragma GCC pop_options
#endif

#undef BAOBAB_NBODY_KERNEL_BODY

// ---------------------------------------------------------------- dispatch

namespace baobab::nbody {
namespace {

using isa::Tier;

Tier cpu_tier() {
#ifdef BAOBAB_NBODY_X86
  return isa::cpu(isa::Avx2With::fma);
#else
  return Tier::baseline;
#endif
}

Tier tier() {
  static const Tier t = isa::capped(cpu_tier(), "BAOBAB_NBODY_ISA");
  return t;
}

Problem validate(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x,
                 const double* v, const double* m, int64_t n, int64_t first_id, double eps2, double* acc,
                 double* jerk, double* pot) {
  if (ni < 0 || n < 0)
    throw InvalidArgument("nbody forces: ni and n must not be negative (got ni=" + std::to_string(ni) +
                          ", n=" + std::to_string(n) + ")");
  const int64_t lim = int64_t(std::min<uint64_t>(uint64_t(INT64_MAX), SIZE_MAX) / (8 * sizeof(double)));
  if (ni > lim || n > lim) throw InvalidArgument("nbody forces: ni or n is too large");
  if (ni > 0 && !(xi && vi && idi && acc && jerk && pot))
    throw InvalidArgument("nbody forces: a target or output array (xi, vi, idi, acc, jerk, pot) is null");
  if (ni > 0 && n > 0 && !(x && v && m))
    throw InvalidArgument("nbody forces: a source array (x, v, m) is null");
  return Problem{xi, vi, idi, ni, x, v, m, n, first_id, eps2, acc, jerk, pot};
}

void run_tier(Tier t, const Problem& p, int threads) {
  if (p.ni == 0) return;
  if (p.n == 0) {  // no source: all sums are empty
    std::fill(p.acc, p.acc + 3 * p.ni, 0.0);
    std::fill(p.jerk, p.jerk + 3 * p.ni, 0.0);
    std::fill(p.pot, p.pot + p.ni, 0.0);
    return;
  }
  // Threads: all usable cores by default, but no more than the work pays for.
  int th = threads > 0 ? threads : usable_cpus();
  const double pairs = double(p.ni) * double(p.n);
  th = int(std::max<double>(1, std::min<double>(th, pairs / double(kMinPairsPerThread))));
  switch (t) {
#ifdef BAOBAB_NBODY_X86
    case Tier::avx512: return tier_avx512::run(p, th);
    case Tier::avx2: return tier_avx2::run(p, th);
#endif
    default: return tier_base::run(p, th);
  }
}

}  // namespace

void forces(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x, const double* v,
            const double* m, int64_t n, int64_t first_id, double eps2, double* acc, double* jerk, double* pot,
            int threads) {
  const Problem p = validate(xi, vi, idi, ni, x, v, m, n, first_id, eps2, acc, jerk, pot);
  run_tier(tier(), p, threads);
}

std::string forces_isa() { return isa::name(tier()); }

DeviceSplit device_split(const std::string& name) {
  if (name == "auto") return DeviceSplit::automatic;
  if (name == "on") return DeviceSplit::on;
  if (name == "off") return DeviceSplit::off;
  throw InvalidArgument("nbody: device split must be auto, on or off, got '" + name + "'");
}

const char* device_split_name(DeviceSplit s) {
  return s == DeviceSplit::on ? "on" : s == DeviceSplit::off ? "off" : "auto";
}

DeviceSplit device_split_default() {
  static const DeviceSplit s = [] {
    const char* e = std::getenv("BAOBAB_NBODY_SPLIT");
    if (!e || !*e) return DeviceSplit::automatic;
    try {
      return device_split(e);
    } catch (const InvalidArgument&) {
      throw InvalidArgument(std::string("BAOBAB_NBODY_SPLIT='") + e + "': expected auto, on or off");
    }
  }();
  return s;
}

std::vector<std::string> forces_tiers() {
  std::vector<std::string> r;
  for (int t = 0; t <= int(cpu_tier()); ++t) r.emplace_back(isa::name(Tier(t)));
  return r;
}

void forces_tier(const std::string& name, const double* xi, const double* vi, const int64_t* idi, int64_t ni,
                 const double* x, const double* v, const double* m, int64_t n, int64_t first_id, double eps2,
                 double* acc, double* jerk, double* pot, int threads) {
  int t = -1;
  for (int k = 0; k <= int(cpu_tier()); ++k)
    if (name == isa::name(Tier(k))) t = k;
  if (t < 0) throw InvalidArgument("nbody forces: tier '" + name + "' is not available on this CPU / build");
  const Problem p = validate(xi, vi, idi, ni, x, v, m, n, first_id, eps2, acc, jerk, pot);
  run_tier(Tier(t), p, threads);
}

}  // namespace baobab::nbody

#else  // BAOBAB_NBODY_KERNEL_BODY
// =====================================================================================
// The body: compiled once per tier, inside namespace tier_xxx, where VD names
// the tier's double vector traits.
// =====================================================================================

namespace {

using V = VD::V;
constexpr int W = VD::W;
constexpr int U = VD::U;
constexpr int B = U * W;  // targets per block

// A packed block: targets t[c][B] (c = x, y, z, vx, vy, vz), self indices s[B],
// and the accumulators a[c][B] (c = ax, ay, az, jx, jy, jz, pot).
struct alignas(64) Block {
  double t[6][B];
  int64_t s[B];
  double a[7][B];
  int64_t lo, hi;  // smallest / largest self index of the lanes (hi < lo: none)
};

void pack_block(const Problem& p, int64_t i0, Block& b) {
  b.lo = p.n;
  b.hi = -1;
  for (int l = 0; l < B; ++l) {
    const int64_t i = i0 + l;
    if (i < p.ni) {
      for (int c = 0; c < 3; ++c) {
        b.t[c][l] = p.xi[3 * i + c];
        b.t[3 + c][l] = p.vi[3 * i + c];
      }
      b.s[l] = self_index(p.idi[i], p.first_id, p.n);
      if (b.s[l] >= 0) {
        b.lo = std::min(b.lo, b.s[l]);
        b.hi = std::max(b.hi, b.s[l]);
      }
    } else {  // padding: a copy of the block's first target without a self pair; dropped
      for (int c = 0; c < 6; ++c) b.t[c][l] = b.t[c][0];
      b.s[l] = -1;
    }
    for (int c = 0; c < 7; ++c) b.a[c][l] = 0.0;
  }
}

void unpack_block(const Problem& p, int64_t i0, const Block& b) {
  for (int l = 0; l < B && i0 + l < p.ni; ++l) {
    const int64_t i = i0 + l;
    for (int c = 0; c < 3; ++c) {
      p.acc[3 * i + c] = b.a[c][l];
      p.jerk[3 * i + c] = b.a[3 + c][l];
    }
    p.pot[i] = b.a[6][l];
  }
}

// Sources [j0, j1) against the block's lanes; Masked: compare j with the self
// indices. The accumulators live in registers over the range.
template <bool Masked>
BAOBAB_NB_AI void sweep(const Sources& src, int64_t j0, int64_t j1, double eps2, Block& b) {
  V tx[U], ty[U], tz[U], tu[U], tv[U], tw[U], ax[U], ay[U], az[U], jx[U], jy[U], jz[U], pp[U];
  typename VD::I si[U];
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) {
    tx[u] = VD::load(b.t[0] + u * W);
    ty[u] = VD::load(b.t[1] + u * W);
    tz[u] = VD::load(b.t[2] + u * W);
    tu[u] = VD::load(b.t[3] + u * W);
    tv[u] = VD::load(b.t[4] + u * W);
    tw[u] = VD::load(b.t[5] + u * W);
    si[u] = VD::loadi(b.s + u * W);
    ax[u] = VD::load(b.a[0] + u * W);
    ay[u] = VD::load(b.a[1] + u * W);
    az[u] = VD::load(b.a[2] + u * W);
    jx[u] = VD::load(b.a[3] + u * W);
    jy[u] = VD::load(b.a[4] + u * W);
    jz[u] = VD::load(b.a[5] + u * W);
    pp[u] = VD::load(b.a[6] + u * W);
  }
  const double* sx = src.s;
  const double* sy = sx + src.stride;
  const double* sz = sy + src.stride;
  const double* su = sz + src.stride;
  const double* sv = su + src.stride;
  const double* sw = sv + src.stride;
  const double* sm = sw + src.stride;
  const V e2 = VD::set1(eps2), three = VD::set1(3.0);
  for (int64_t j = j0; j < j1; ++j) {
    const V xj = VD::set1(sx[j]), yj = VD::set1(sy[j]), zj = VD::set1(sz[j]);
    const V uj = VD::set1(su[j]), vj = VD::set1(sv[j]), wj = VD::set1(sw[j]), mj = VD::set1(sm[j]);
#pragma GCC unroll 8
    for (int u = 0; u < U; ++u) {
      const V dx = VD::sub(xj, tx[u]), dy = VD::sub(yj, ty[u]), dz = VD::sub(zj, tz[u]);
      const V du = VD::sub(uj, tu[u]), dv = VD::sub(vj, tv[u]), dw = VD::sub(wj, tw[u]);
      V r2 = VD::fma(dx, dx, VD::fma(dy, dy, VD::fma(dz, dz, e2)));
      V mm = mj;
      if constexpr (Masked) {
        const auto k = VD::eq(si[u], j);
        r2 = VD::blend(k, r2, VD::set1(1.0));
        mm = VD::blend(k, mm, VD::set1(0.0));
      }
      const V ri = VD::rsqrt(r2);
      const V ri2 = VD::mul(ri, ri);
      const V mr = VD::mul(mm, ri);
      const V mr3 = VD::mul(mr, ri2);
      const V rv = VD::fma(dz, dw, VD::fma(dy, dv, VD::mul(dx, du)));
      const V al = VD::mul(VD::mul(three, rv), ri2);
      pp[u] = VD::sub(pp[u], mr);
      ax[u] = VD::fma(mr3, dx, ax[u]);
      ay[u] = VD::fma(mr3, dy, ay[u]);
      az[u] = VD::fma(mr3, dz, az[u]);
      jx[u] = VD::fma(mr3, VD::fnma(al, dx, du), jx[u]);
      jy[u] = VD::fma(mr3, VD::fnma(al, dy, dv), jy[u]);
      jz[u] = VD::fma(mr3, VD::fnma(al, dz, dw), jz[u]);
    }
  }
#pragma GCC unroll 8
  for (int u = 0; u < U; ++u) {
    VD::store(b.a[0] + u * W, ax[u]);
    VD::store(b.a[1] + u * W, ay[u]);
    VD::store(b.a[2] + u * W, az[u]);
    VD::store(b.a[3] + u * W, jx[u]);
    VD::store(b.a[4] + u * W, jy[u]);
    VD::store(b.a[5] + u * W, jz[u]);
    VD::store(b.a[6] + u * W, pp[u]);
  }
}

// Sources [j0, j1): the unmasked parts around the block's self range, in order.
void sweep_range(const Sources& src, int64_t j0, int64_t j1, double eps2, Block& b) {
  const int64_t lo = std::clamp(b.lo, j0, j1), hi = std::clamp(b.hi + 1, lo, j1);
  if (lo > j0) sweep<false>(src, j0, lo, eps2, b);
  if (hi > lo) sweep<true>(src, lo, hi, eps2, b);
  if (j1 > hi) sweep<false>(src, hi, j1, eps2, b);
}

}  // namespace

void run(const Problem& p, int threads) {
  // Sources to SoA (padded stride keeps the rows 64-byte aligned).
  const int64_t stride = (p.n + 7) & ~int64_t(7);
  Buf<double> soa(size_t(7 * stride));
  double* s = soa.get();
  for (int64_t j = 0; j < p.n; ++j) {
    for (int c = 0; c < 3; ++c) {
      s[c * stride + j] = p.x[3 * j + c];
      s[(3 + c) * stride + j] = p.v[3 * j + c];
    }
    s[6 * stride + j] = p.m[j];
  }
  const Sources src{s, stride, p.n};

  const int64_t blocks = (p.ni + B - 1) / B;
  // Items of consecutive blocks: about 4 per thread, at most 64 blocks each.
  const int64_t per_item =
      threads > 1 ? std::clamp<int64_t>(blocks / (4 * int64_t(threads)), 1, 64) : std::min<int64_t>(blocks, 64);
  const int64_t items = (blocks + per_item - 1) / per_item;
  std::vector<Buf<Block>> bufs;
  bufs.reserve(size_t(threads));
  for (int t = 0; t < threads; ++t) bufs.emplace_back(size_t(per_item));

  run_parallel(threads, items, [&](int tid, int64_t item) {
    Block* bl = bufs[size_t(tid)].get();
    const int64_t b0 = item * per_item, nb = std::min(per_item, blocks - b0);
    for (int64_t k = 0; k < nb; ++k) pack_block(p, (b0 + k) * B, bl[k]);
    if (nb == 1 || p.n <= kTile) {
      for (int64_t k = 0; k < nb; ++k) sweep_range(src, 0, p.n, p.eps2, bl[k]);
    } else {
      for (int64_t j0 = 0; j0 < p.n; j0 += kTile) {
        const int64_t j1 = std::min(p.n, j0 + kTile);
        for (int64_t k = 0; k < nb; ++k) sweep_range(src, j0, j1, p.eps2, bl[k]);
      }
    }
    for (int64_t k = 0; k < nb; ++k) unpack_block(p, (b0 + k) * B, bl[k]);
  });
}

#endif  // BAOBAB_NBODY_KERNEL_BODY

// Direct-summation N-body forces on the host: see nbody.hpp.
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
// Instruction sets come from baobab's SIMD layer (baobab/simd.hpp): the body
// (forces.inc) is written once against simd::F64 and compiled once per tier
// by baobab/simd_tiers.hpp (baseline, avx2, avx512); the tier is picked once
// per process with simd::select("BAOBAB_NBODY_ISA"), the best the CPU runs,
// capped by BAOBAB_NBODY_ISA=baseline|avx2|avx512.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "baobab/error.hpp"
#include "baobab/parallel.hpp"
#include "baobab/simd.hpp"
#include "nbody.hpp"

namespace baobab::nbody {
namespace {

constexpr int64_t kTile = 2048;                   // sources per cache tile
constexpr int64_t kMinPairsPerThread = 1 << 18;  // below this a thread costs more than it saves

template <class E>
using Buf = parallel::AlignedArray<E>;

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

// The source index of target id `id`, or -1 when no source has that id.
BAOBAB_SIMD_INLINE int64_t self_index(int64_t id, int64_t first_id, int64_t n) {
  if (id < first_id) return -1;
  const uint64_t d = uint64_t(id) - uint64_t(first_id);  // exact: 0 <= id - first_id < 2^64
  return d < uint64_t(n) ? int64_t(d) : -1;
}

}  // namespace
}  // namespace baobab::nbody

// ---------------------------------------------------------------- the tiers

#define BAOBAB_SIMD_BODY "forces.inc"
#define BAOBAB_SIMD_NAMESPACE baobab::nbody
#include "baobab/simd_tiers.hpp"

// ---------------------------------------------------------------- dispatch

namespace baobab::nbody {
namespace {

using simd::Tier;

Tier tier() {
  static const Tier t = simd::select("BAOBAB_NBODY_ISA");
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
  int th = threads > 0 ? threads : parallel::usable_cpus();
  const double pairs = double(p.ni) * double(p.n);
  th = int(std::max<double>(1, std::min<double>(th, pairs / double(kMinPairsPerThread))));
  BAOBAB_SIMD_DISPATCH(t, run(p, th));
}

}  // namespace

void forces(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x, const double* v,
            const double* m, int64_t n, int64_t first_id, double eps2, double* acc, double* jerk, double* pot,
            int threads) {
  const Problem p = validate(xi, vi, idi, ni, x, v, m, n, first_id, eps2, acc, jerk, pot);
  run_tier(tier(), p, threads);
}

std::string forces_isa() { return simd::name(tier()); }

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

void check_environment() {
  tier();
  device_split_default();
}

std::vector<std::string> forces_tiers() {
  std::vector<std::string> r;
  for (Tier t : simd::tiers()) r.emplace_back(simd::name(t));
  return r;
}

void forces_tier(const std::string& name, const double* xi, const double* vi, const int64_t* idi, int64_t ni,
                 const double* x, const double* v, const double* m, int64_t n, int64_t first_id, double eps2,
                 double* acc, double* jerk, double* pot, int threads) {
  const Tier t = simd::available(name, "nbody forces");
  const Problem p = validate(xi, vi, idi, ni, x, v, m, n, first_id, eps2, acc, jerk, pot);
  run_tier(t, p, threads);
}

}  // namespace baobab::nbody

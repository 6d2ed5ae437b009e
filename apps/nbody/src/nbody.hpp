// The N-body application's kernels (apps/nbody/src, built into the extension
// module baobab_apps._nbody): direct-summation forces (gravity with Plummer
// softening), acceleration, jerk and potential of a batch of target particles
// due to a set of sources, on the host (forces.cpp, over baobab's SIMD layer)
// and on a CUDA device (forces.cu); the Hermite integrator's per-step work
// (hermite.cpp).
//
// Layout: float64, row-major AoS as numpy C arrays of shape (n, 3) / (n,).
//   Sources (j):  x[n][3] positions, v[n][3] velocities, m[n] masses; source j
//                 has the global id first_id + j.
//   Targets (i):  xi[ni][3], vi[ni][3], idi[ni] (int64 global ids).
// For each target i, over all sources j whose id differs from idi[i] (the self
// pair is skipped by id, never by distance; ids outside [first_id, first_id + n)
// never match), with r = x_j - x_i, u = v_j - v_i, r2 = |r|^2 + eps2:
//   acc[i]  = sum_j  m_j r / r2^{3/2}
//   jerk[i] = sum_j  m_j ( u / r2^{3/2} - 3 (r.u) r / r2^{5/2} )
//   pot[i]  = sum_j -m_j / sqrt(r2)
// Outputs acc[ni][3], jerk[ni][3], pot[ni] are overwritten.
//
// Reproducibility: the result for target i depends only on (xi[i], vi[i],
// idi[i]), the sources and eps2 -- not on ni, on i's place in the batch, on the
// other targets or on the thread count -- and is bitwise reproducible for one
// instruction-set tier. Tiers agree to about 1e-15 relative (FMA contractions).
// eps2 = 0 with two distinct particles at the same place gives inf/nan.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace baobab::nbody {

// Host kernel. threads = 0: all usable cores. Throws InvalidArgument on
// negative counts or a null pointer with a non-zero count.
void forces(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x, const double* v,
            const double* m, int64_t n, int64_t first_id, double eps2, double* acc, double* jerk, double* pot,
            int threads = 0);

// The instruction-set tier forces() uses: "avx512", "avx2" or "baseline". The
// best the CPU supports, capped by the environment variable
// BAOBAB_NBODY_ISA=baseline|avx2|avx512 (read once per process).
std::string forces_isa();

// Checks the app's environment variables, BAOBAB_NBODY_ISA and
// BAOBAB_NBODY_SPLIT (InvalidArgument naming the first bad one), which are
// otherwise read when the kernels first need them.
void check_environment();

// For tests and benchmarks: the tiers this build and CPU can run (the cap above
// does not apply), and forces() on a named one (InvalidArgument if unavailable).
std::vector<std::string> forces_tiers();
void forces_tier(const std::string& tier, const double* xi, const double* vi, const int64_t* idi, int64_t ni,
                 const double* x, const double* v, const double* m, int64_t n, int64_t first_id, double eps2,
                 double* acc, double* jerk, double* pot, int threads = 0);

// Hermite predictor: for the bodies idx[0..k) (or, idx null, bodies lo..lo+k)
// with positions x, velocities v, accelerations a, jerks j ((n, 3) arrays) at
// times t, the Taylor positions and velocities at t_now into rows 0..k of xp
// and vp: xp = ((j dt/3 + a) dt/2 + v) dt + x, vp = (j dt/2 + a) dt + v, dt =
// t_now - t, evaluated in that order (the same bits as numpy would give).
void predict(const double* x, const double* v, const double* a, const double* j, const double* t,
             const int64_t* idx, int64_t lo, int64_t k, double t_now, double* xp, double* vp);

// The next block time min(t + dt) over n bodies, and the bodies due then
// (t + dt equal to it) into act, in index order; returns how many.
int64_t active(const double* t, const double* dt, int64_t n, double* t_next, int64_t* act);

// A block step for a step criterion `crit`: the power of two <= crit
// (non-finite or <= 0: dt_max), <= 2 dt_old, <= dt_max, >= dt_min, halved
// until t1 is a multiple of it (starting steps: dt_old = infinity).
double block_step(double crit, double dt_old, double t1, double dt_max, double dt_min);

// Hermite corrector and the next block step, for the active bodies act[0..k)
// of the state (x, v, a, j, a2 (n, 3); pot, t, dt (n,)), given their predicted
// xp, vp and new forces a1, j1, pot1 (rows 0..k) at time t1 (Makino & Aarseth
// 1992): from the interpolated 2nd and 3rd derivatives, positions and
// velocities are corrected, a, j, a2 (at t1), pot and t replaced, and dt set by
// Aarseth's criterion sqrt(eta (|a||a2| + |j|^2) / (|j||a3| + |a2|^2)) rounded
// down to a power of two, at most 2 dt_old and dt_max, at least dt_min, and
// halved until t1 is a multiple of it (a non-finite criterion gives dt_max).
void correct(const int64_t* act, int64_t k, const double* xp, const double* vp, const double* a1, const double* j1,
             const double* pot1, double t1, double eta, double dt_max, double dt_min, double* x, double* v,
             double* a, double* j, double* a2, double* pot, double* t, double* dt);

// CUDA kernels on device pointers (float64, the same layout, formulas and
// arithmetic per pair). Two of them (forces.cu):
//   off  one thread per target, sources staged through shared memory. A
//        target's result depends only on itself, the sources and eps2.
//   on   the j-split: the sources are cut into chunks of consecutive sources,
//        each CTA sums a tile of targets over one chunk into a partial buffer,
//        and a second kernel adds each target's partials in chunk order (a
//        fixed order, no atomics). For small target sets (a few active bodies
//        of a block step), which leave most of the GPU idle with one thread per
//        target. The chunks depend only on n, so here too a target's result
//        depends only on itself, the sources and eps2; it differs from the
//        one-thread sum by the regrouping of the sum (round-off).
//   automatic  on when the targets are too few to fill the GPU one thread each
//        (fewer than 2 CTAs of targets per SM, see nbody.cu), else off.
// Both are deterministic: the same inputs on the same device give the same bits.
enum class DeviceSplit { automatic, off, on };

// "auto", "on", "off"; InvalidArgument otherwise.
DeviceSplit device_split(const std::string& name);
const char* device_split_name(DeviceSplit s);
// The default: BAOBAB_NBODY_SPLIT=auto|on|off (read once per process; unset or
// another value: automatic).
DeviceSplit device_split_default();

// What forces_device does for ni targets and n sources on the current device:
// split or not; for the split, the chunk length and count, the targets per
// pass (slab; larger target sets run in several passes so that the partial
// buffer stays bounded) and the scratch bytes it needs (0 without the split).
struct DevicePlan {
  bool split = false;
  int64_t chunk = 0;
  int64_t chunks = 0;
  int64_t slab = 0;
  size_t work_bytes = 0;
};
DevicePlan device_plan(int64_t ni, int64_t n, DeviceSplit split);

// Runs on `stream` (a cudaStream_t, 0 = the default stream) and returns without
// synchronising. `work`: device scratch of work_bytes >= device_plan(...).work_bytes
// (InvalidArgument if smaller), or null: allocated and freed in stream order.
// Throws CUDAError when the app was built without CUDA (cuda_off.cpp).
void forces_device(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x,
                   const double* v, const double* m, int64_t n, int64_t first_id, double eps2, double* acc,
                   double* jerk, double* pot, void* stream, DeviceSplit split, void* work, size_t work_bytes);
// The same with split = device_split_default() and scratch allocated as needed.
void forces_device(const double* xi, const double* vi, const int64_t* idi, int64_t ni, const double* x,
                   const double* v, const double* m, int64_t n, int64_t first_id, double eps2, double* acc,
                   double* jerk, double* pot, void* stream);

}  // namespace baobab::nbody

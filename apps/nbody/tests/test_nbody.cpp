// Tests for the N-body application's host kernel (apps/nbody/src/forces.cpp).
//
// Every result is compared with a long double reference written here. Error
// measure per target: |a - b| / |b| for pot, and |a - b| / |b| of the 3-vectors
// (Euclidean norms) for acc and jerk; bound 1e-13. Covered:
//  - random Plummer-like clusters, n up to 2000, ni 1..17 (vector tails) and
//    larger, eps2 > 0 and eps2 = 0 (distinct points), every tier this CPU runs
//    (forces_tier), threads 1..4;
//  - the self pair skipped by id (targets are the sources themselves, with
//    eps2 = 0 a wrong skip would give inf/nan), ids outside [first_id,
//    first_id + n) including INT64_MIN/MAX with a negative first_id, targets
//    whose id names a source at another position;
//  - batch independence: target i alone, inside batches of many sizes, at other
//    positions, with other thread counts (and with the sources swept in cache
//    tiles or in one pass): bitwise equal for one tier; tiers
//    agree to 1e-13;
//  - outputs overwritten, nothing written past the ends, n = 0, ni = 0;
//  - bad arguments throw baobab::InvalidArgument.
// Finally it prints (does not assert) the throughput on one thread and on all.
//
// Usage: test_nbody [--no-bench]   exit status 0 on success.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "baobab/error.hpp"
#include "nbody.hpp"

namespace nb = baobab::nbody;

namespace {

int g_failures = 0;
int g_checks = 0;
double g_worst = 0;

void fail(const std::string& msg) {
  if (++g_failures <= 40) std::printf("FAIL: %s\n", msg.c_str());
  else if (g_failures == 41) std::printf("FAIL: (further failures not printed)\n");
}

struct Set {
  std::vector<double> x, v, m;
  std::vector<int64_t> id;
  int64_t n() const { return int64_t(m.size()); }
};

// A cluster: positions ~ normal with a few tight pairs, velocities ~ normal,
// masses positive with a spread of 100.
Set cluster(int64_t n, std::mt19937_64& g, int64_t first_id) {
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.0, 1.0);
  Set s;
  s.x.resize(size_t(3 * n));
  s.v.resize(size_t(3 * n));
  s.m.resize(size_t(n));
  s.id.resize(size_t(n));
  for (int64_t j = 0; j < n; ++j) {
    const double scale = ud(g) < 0.1 ? 0.01 : 1.0;
    for (int c = 0; c < 3; ++c) {
      s.x[size_t(3 * j + c)] = scale * nd(g) + (j % 7 == 3 && j > 0 ? s.x[size_t(3 * (j - 1) + c)] : 0.0);
      s.v[size_t(3 * j + c)] = nd(g);
    }
    s.m[size_t(j)] = std::pow(10.0, 2 * ud(g)) / double(n);
    s.id[size_t(j)] = first_id + j;
  }
  return s;
}

struct Out {
  std::vector<double> acc, jerk, pot;
  explicit Out(int64_t ni, double fill = std::numeric_limits<double>::quiet_NaN())
      : acc(size_t(3 * ni + 3), fill), jerk(size_t(3 * ni + 3), fill), pot(size_t(ni + 1), fill) {}
};

constexpr double kGuard = 12345.678;

// The long double reference for one target.
void reference(const double* xi, const double* vi, int64_t idi, const Set& s, int64_t first_id, double eps2,
               long double a[3], long double jk[3], long double& p) {
  a[0] = a[1] = a[2] = jk[0] = jk[1] = jk[2] = p = 0;
  for (int64_t j = 0; j < s.n(); ++j) {
    if (first_id + j == idi) continue;
    long double r[3], u[3], r2 = eps2, ru = 0;
    for (int c = 0; c < 3; ++c) {
      r[c] = (long double)s.x[size_t(3 * j + c)] - xi[c];
      u[c] = (long double)s.v[size_t(3 * j + c)] - vi[c];
      r2 += r[c] * r[c];
      ru += r[c] * u[c];
    }
    const long double ri = 1.0L / std::sqrt(r2), ri2 = ri * ri, mr3 = s.m[size_t(j)] * ri * ri2;
    p -= s.m[size_t(j)] * ri;
    for (int c = 0; c < 3; ++c) {
      a[c] += mr3 * r[c];
      jk[c] += mr3 * (u[c] - 3 * ru * ri2 * r[c]);
    }
  }
}

double vec_err(const double* got, const long double* ref) {
  long double d = 0, r = 0;
  for (int c = 0; c < 3; ++c) {
    d += (got[c] - ref[c]) * (got[c] - ref[c]);
    r += ref[c] * ref[c];
  }
  if (r == 0) return d == 0 ? 0.0 : double(std::sqrt(d));
  return double(std::sqrt(d / r));
}

// Checks a computed batch against the reference.
void check_ref(const std::string& what, const std::vector<double>& xi, const std::vector<double>& vi,
               const std::vector<int64_t>& idi, const Set& s, int64_t first_id, double eps2, const Out& o) {
  const int64_t ni = int64_t(idi.size());
  double worst = 0;
  for (int64_t i = 0; i < ni; ++i) {
    long double a[3], jk[3], p;
    reference(&xi[size_t(3 * i)], &vi[size_t(3 * i)], idi[size_t(i)], s, first_id, eps2, a, jk, p);
    const double ea = vec_err(&o.acc[size_t(3 * i)], a), ej = vec_err(&o.jerk[size_t(3 * i)], jk);
    const double ep = p == 0 ? std::fabs(o.pot[size_t(i)]) : double(std::fabs((o.pot[size_t(i)] - p) / p));
    const double e = std::max({ea, ej, ep});
    if (!(e <= 1e-13)) {
      fail(what + ": target " + std::to_string(i) + " error acc " + std::to_string(ea) + " jerk " +
           std::to_string(ej) + " pot " + std::to_string(ep));
      return;
    }
    worst = std::max(worst, e);
  }
  g_worst = std::max(g_worst, worst);
  if (o.acc[size_t(3 * ni)] != kGuard || o.jerk[size_t(3 * ni)] != kGuard || o.pot[size_t(ni)] != kGuard)
    fail(what + ": wrote past the end");
  ++g_checks;
}

Out run(const std::string& tier, const std::vector<double>& xi, const std::vector<double>& vi,
        const std::vector<int64_t>& idi, const Set& s, int64_t first_id, double eps2, int threads) {
  const int64_t ni = int64_t(idi.size());
  Out o(ni);
  o.acc[size_t(3 * ni)] = o.jerk[size_t(3 * ni)] = o.pot[size_t(ni)] = kGuard;
  nb::forces_tier(tier, xi.data(), vi.data(), idi.data(), ni, s.x.data(), s.v.data(), s.m.data(), s.n(), first_id,
                  eps2, o.acc.data(), o.jerk.data(), o.pot.data(), threads);
  return o;
}

bool same_bits(const double* a, const double* b, int k) { return std::memcmp(a, b, sizeof(double) * size_t(k)) == 0; }

// ---------------------------------------------------------------- the checks

void test_reference(const std::string& tier, std::mt19937_64& g) {
  for (int64_t n : {1, 2, 7, 64, 333, 2000, 4500}) {  // 4500: several source tiles
    for (double eps2 : {0.0, 1e-4, 0.3}) {
      const int64_t first_id = int64_t(g() % 1000) - 500;
      const Set s = cluster(n, g, first_id);
      // Targets: the sources themselves (self pairs), a few subsets for tails.
      for (int64_t ni : {int64_t(1), int64_t(3), int64_t(8), int64_t(17), std::min<int64_t>(n, 300)}) {
        if (ni > n) continue;
        const int64_t off = int64_t(g() % uint64_t(n - ni + 1));
        std::vector<double> xi(s.x.begin() + 3 * off, s.x.begin() + 3 * (off + ni));
        std::vector<double> vi(s.v.begin() + 3 * off, s.v.begin() + 3 * (off + ni));
        std::vector<int64_t> idi(s.id.begin() + off, s.id.begin() + off + ni);
        const int threads = 1 + int(g() % 4);
        const std::string what = tier + " n=" + std::to_string(n) + " ni=" + std::to_string(ni) +
                                 " eps2=" + std::to_string(eps2) + " threads=" + std::to_string(threads);
        check_ref(what, xi, vi, idi, s, first_id, eps2, run(tier, xi, vi, idi, s, first_id, eps2, threads));
      }
    }
  }
  // Outside targets (ids that match no source, or one that matches a source at
  // another position), eps2 > 0 so coincidences cannot hurt.
  const int64_t n = 500, first_id = -250;
  const Set s = cluster(n, g, first_id);
  for (int64_t ni : {1, 2, 5, 9, 16, 17, 100}) {
    const Set t = cluster(ni, g, 0);
    std::vector<int64_t> idi(static_cast<size_t>(ni));
    const int64_t odd[] = {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), first_id - 1,
                           first_id + n, first_id, first_id + n - 1, 0, 17};
    for (int64_t i = 0; i < ni; ++i) idi[size_t(i)] = odd[i % 8];
    const std::string what = tier + " outside targets ni=" + std::to_string(ni);
    check_ref(what, t.x, t.v, idi, s, first_id, 1e-3, run(tier, t.x, t.v, idi, s, first_id, 1e-3, 2));
  }
}

// Self skip by id with eps2 = 0: exactly coincident target and source pairs.
void test_self(const std::string& tier, std::mt19937_64& g) {
  const Set s = cluster(40, g, 1000);
  const Out o = run(tier, s.x, s.v, s.id, s, 1000, 0.0, 1);
  for (int64_t i = 0; i < 40; ++i)
    if (!std::isfinite(o.pot[size_t(i)]) || !std::isfinite(o.acc[size_t(3 * i)]) ||
        !std::isfinite(o.jerk[size_t(3 * i)]))
      fail(tier + " self skip: non-finite result for target " + std::to_string(i));
  // A target with a source's position but an id outside the range: not skipped -> inf/nan.
  std::vector<int64_t> other(s.id.size(), 999);
  const Out o2 = run(tier, s.x, s.v, other, s, 1000, 0.0, 1);
  if (std::isfinite(o2.pot[0])) fail(tier + " a coincident pair with another id was skipped");
  // Overwritten, not accumulated; n = 0 gives zeros.
  Set none;
  const Out z = run(tier, s.x, s.v, s.id, none, 0, 0.0, 1);
  for (int64_t i = 0; i < 40; ++i)
    if (z.pot[size_t(i)] != 0 || z.acc[size_t(3 * i + 2)] != 0 || z.jerk[size_t(3 * i + 1)] != 0)
      fail(tier + " n = 0: outputs are not zero");
  const Out e = run(tier, {}, {}, {}, s, 0, 0.0, 1);
  if (e.pot[0] != kGuard) fail(tier + " ni = 0 wrote something");
  ++g_checks;
}

// Batch independence: bitwise equal whatever the batch, position and threads.
void test_batch(const std::string& tier, std::mt19937_64& g) {
  const int64_t n = 5000, first_id = 7;  // several source tiles in the batch, one sweep alone
  const Set s = cluster(n, g, first_id);
  const int64_t big = 700;
  const Set t = cluster(big, g, 0);
  std::vector<int64_t> idi(static_cast<size_t>(big));
  for (int64_t i = 0; i < big; ++i) idi[size_t(i)] = first_id + int64_t(g() % uint64_t(n + 40)) - 20;
  const Out full = run(tier, t.x, t.v, idi, s, first_id, 1e-5, 4);
  const Out full1 = run(tier, t.x, t.v, idi, s, first_id, 1e-5, 1);
  if (!same_bits(full.acc.data(), full1.acc.data(), int(3 * big)) ||
      !same_bits(full.jerk.data(), full1.jerk.data(), int(3 * big)) ||
      !same_bits(full.pot.data(), full1.pot.data(), int(big)))
    fail(tier + " batch: 4 threads and 1 thread differ");
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t i = int64_t(g() % uint64_t(big));
    // A sub-batch of random size holding target i at a random place, the
    // other members random targets (in a random order).
    const int64_t ni = 1 + int64_t(g() % 40), at = int64_t(g() % uint64_t(ni));
    std::vector<double> xi, vi;
    std::vector<int64_t> ids;
    for (int64_t k = 0; k < ni; ++k) {
      const int64_t src = k == at ? i : int64_t(g() % uint64_t(big));
      xi.insert(xi.end(), t.x.begin() + 3 * src, t.x.begin() + 3 * src + 3);
      vi.insert(vi.end(), t.v.begin() + 3 * src, t.v.begin() + 3 * src + 3);
      ids.push_back(idi[size_t(src)]);
    }
    const Out o = run(tier, xi, vi, ids, s, first_id, 1e-5, 1 + int(g() % 3));
    if (!same_bits(&o.acc[size_t(3 * at)], &full.acc[size_t(3 * i)], 3) ||
        !same_bits(&o.jerk[size_t(3 * at)], &full.jerk[size_t(3 * i)], 3) ||
        !same_bits(&o.pot[size_t(at)], &full.pot[size_t(i)], 1)) {
      fail(tier + " batch: target " + std::to_string(i) + " at place " + std::to_string(at) + " of " +
           std::to_string(ni) + " differs from the full batch");
      break;
    }
  }
  ++g_checks;
}

// All tiers agree to 1e-13 (relative to the norm of each quantity).
void test_tiers_agree(std::mt19937_64& g) {
  const auto tiers = nb::forces_tiers();
  const int64_t n = 1200;
  const Set s = cluster(n, g, 0);
  const Out ref = run(tiers[0], s.x, s.v, s.id, s, 0, 1e-6, 2);
  for (size_t k = 1; k < tiers.size(); ++k) {
    const Out o = run(tiers[k], s.x, s.v, s.id, s, 0, 1e-6, 2);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      long double a[3], jk[3], p = ref.pot[size_t(i)];
      for (int c = 0; c < 3; ++c) {
        a[c] = ref.acc[size_t(3 * i + c)];
        jk[c] = ref.jerk[size_t(3 * i + c)];
      }
      worst = std::max({worst, vec_err(&o.acc[size_t(3 * i)], a), vec_err(&o.jerk[size_t(3 * i)], jk),
                        double(std::fabs((o.pot[size_t(i)] - p) / p))});
    }
    std::printf("tier %s vs %s: max relative difference %.2e\n", tiers[k].c_str(), tiers[0].c_str(), worst);
    if (!(worst <= 1e-13)) fail("tiers " + tiers[k] + " and " + tiers[0] + " differ by " + std::to_string(worst));
  }
  ++g_checks;
}

template <class F>
void expect_invalid(const char* what, F f) {
  try {
    f();
    fail(std::string("no InvalidArgument: ") + what);
  } catch (const baobab::InvalidArgument&) {
  } catch (const std::exception& e) {
    fail(std::string("wrong exception for ") + what + ": " + e.what());
  }
}

void test_errors() {
  double d[6] = {};
  int64_t id[2] = {};
  expect_invalid("ni < 0", [&] { nb::forces(d, d, id, -1, d, d, d, 1, 0, 0, d, d, d); });
  expect_invalid("n < 0", [&] { nb::forces(d, d, id, 1, d, d, d, -2, 0, 0, d, d, d); });
  expect_invalid("null xi", [&] { nb::forces(nullptr, d, id, 1, d, d, d, 1, 0, 0, d, d, d); });
  expect_invalid("null idi", [&] { nb::forces(d, d, nullptr, 1, d, d, d, 1, 0, 0, d, d, d); });
  expect_invalid("null pot", [&] { nb::forces(d, d, id, 1, d, d, d, 1, 0, 0, d, d, nullptr); });
  expect_invalid("null m", [&] { nb::forces(d, d, id, 1, d, d, nullptr, 1, 0, 0, d, d, d); });
  expect_invalid("unknown tier", [&] { nb::forces_tier("sse9", d, d, id, 1, d, d, d, 1, 0, 0, d, d, d); });
  try {  // null pointers with zero counts are fine
    nb::forces(nullptr, nullptr, nullptr, 0, nullptr, nullptr, nullptr, 0, 0, 0, nullptr, nullptr, nullptr);
    nb::forces(d, d, id, 1, nullptr, nullptr, nullptr, 0, 0, 0, d, d, d);
  } catch (const std::exception& e) {
    fail(std::string("zero counts with null pointers threw: ") + e.what());
  }
  ++g_checks;
}

void bench() {
  std::mt19937_64 g(99);
  const int64_t n = 8192;
  const Set s = cluster(n, g, 0);
  Out o(n);
  for (int threads : {1, 0}) {
    double best = 1e30;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      nb::forces(s.x.data(), s.v.data(), s.id.data(), n, s.x.data(), s.v.data(), s.m.data(), n, 0, 1e-6,
                 o.acc.data(), o.jerk.data(), o.pot.data(), threads);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::printf("throughput (%s, n = ni = %lld, %s): %.0f M interactions/s\n", nb::forces_isa().c_str(),
                (long long)n, threads == 1 ? "1 thread" : "all cores", double(n) * double(n) / best / 1e6);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool no_bench = argc > 1 && std::strcmp(argv[1], "--no-bench") == 0;
  std::mt19937_64 g(2024);
  std::printf("nbody tiers on this CPU:");
  for (const auto& t : nb::forces_tiers()) std::printf(" %s", t.c_str());
  std::printf(" (forces() uses %s)\n", nb::forces_isa().c_str());
  for (const auto& t : nb::forces_tiers()) {
    try {
      test_reference(t, g);
      test_self(t, g);
      test_batch(t, g);
    } catch (const std::exception& e) {
      fail(t + ": threw " + e.what());
    }
  }
  test_tiers_agree(g);
  test_errors();
  std::printf("worst relative error vs long double: %.2e\n", g_worst);
  if (!no_bench) bench();
  std::printf("%d checks, %d failures\n", g_checks, g_failures);
  return g_failures == 0 ? 0 : 1;
}

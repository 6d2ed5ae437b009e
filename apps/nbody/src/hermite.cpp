// Hermite predictor and corrector (nbody.hpp): they run every block
// step, so they are kept out of Python. Memory-bound; plain loops the compiler vectorises. No FMA
// contraction is possible in this translation unit's baseline ISA, so the bits
// equal numpy's evaluation of the same expression order.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "baobab/error.hpp"
#include "nbody.hpp"

namespace baobab::nbody {

void predict(const double* x, const double* v, const double* a, const double* j, const double* t,
             const int64_t* idx, int64_t lo, int64_t k, double t_now, double* xp, double* vp) {
  if (k < 0) throw InvalidArgument("nbody predict: negative count");
  if (k == 0) return;
  if (!x || !v || !a || !j || !t || !xp || !vp) throw InvalidArgument("nbody predict: null pointer");
  for (int64_t r = 0; r < k; ++r) {
    const int64_t b = idx ? idx[r] : lo + r;
    const double dt = t_now - t[b];
    const double dt3 = dt * (1.0 / 3.0), dt2 = 0.5 * dt;
    for (int c = 0; c < 3; ++c) {
      const int64_t q = 3 * b + c;
      double px = j[q] * dt3;
      px += a[q];
      px *= dt2;
      px += v[q];
      px *= dt;
      px += x[q];
      double pv = j[q] * dt2;
      pv += a[q];
      pv *= dt;
      pv += v[q];
      xp[3 * r + c] = px;
      vp[3 * r + c] = pv;
    }
  }
}

double block_step(double crit, double dt_old, double t1, double dt_max, double dt_min) {
  // A non-finite time has no power-of-two step it is a multiple of (the loop
  // below would never end); a finite one is a multiple of its own ulp.
  if (!std::isfinite(t1)) throw InvalidArgument("nbody block_step: the time is not finite");
  if (!(dt_max > 0) || !std::isfinite(dt_max) || !(dt_min > 0) || dt_min > dt_max)
    throw InvalidArgument("nbody block_step: need 0 < dt_min <= dt_max, both finite");
  double d = std::min(crit, dt_max);
  d = std::min(d, 2.0 * dt_old);
  if (!std::isfinite(d) || !(d > 0)) d = dt_max;
  int e = 0;
  std::frexp(d, &e);
  d = std::ldexp(1.0, e - 1);
  d = std::max(d, dt_min);
  while (std::fmod(t1, d) != 0.0) d *= 0.5;
  return d;
}

int64_t active(const double* t, const double* dt, int64_t n, double* t_next, int64_t* act) {
  double best = INFINITY;
  for (int64_t i = 0; i < n; ++i) best = std::min(best, t[i] + dt[i]);
  int64_t k = 0;
  for (int64_t i = 0; i < n; ++i)
    if (t[i] + dt[i] == best) act[k++] = i;
  *t_next = best;
  return k;
}

void correct(const int64_t* act, int64_t k, const double* xp, const double* vp, const double* a1, const double* j1,
             const double* pot1, double t1, double eta, double dt_max, double dt_min, double* x, double* v,
             double* a, double* j, double* a2, double* pot, double* t, double* dt) {
  if (k < 0) throw InvalidArgument("nbody correct: negative count");
  for (int64_t r = 0; r < k; ++r) {
    const int64_t b = act[r];
    const double h = dt[b], h2 = h * h;
    double an = 0, jn = 0, a2n = 0, a3n = 0;
    for (int c = 0; c < 3; ++c) {
      const int64_t q = 3 * b + c, s = 3 * r + c;
      const double da = a[q] - a1[s];
      const double d2 = (-6.0 * da - h * (4.0 * j[q] + 2.0 * j1[s])) / h2;
      const double d3 = (12.0 * da + 6.0 * h * (j[q] + j1[s])) / (h2 * h);
      x[q] = xp[s] + h2 * h2 * (d2 / 24.0 + h * d3 / 120.0);
      v[q] = vp[s] + h2 * h * (d2 / 6.0 + h * d3 / 24.0);
      const double d2_1 = d2 + h * d3;
      a[q] = a1[s];
      j[q] = j1[s];
      a2[q] = d2_1;
      an += a1[s] * a1[s];
      jn += j1[s] * j1[s];
      a2n += d2_1 * d2_1;
      a3n += d3 * d3;
    }
    an = std::sqrt(an), jn = std::sqrt(jn), a2n = std::sqrt(a2n), a3n = std::sqrt(a3n);
    const double crit = std::sqrt(eta * (an * a2n + jn * jn) / (jn * a3n + a2n * a2n));
    pot[b] = pot1[r];
    t[b] = t1;
    dt[b] = block_step(crit, h, t1, dt_max, dt_min);
  }
}

}  // namespace baobab::nbody

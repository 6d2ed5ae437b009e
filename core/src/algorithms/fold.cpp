// The non-power-of-two fold (fold.hpp).
#include "fold.hpp"

#include "pow2.hpp"

namespace baobab::algo {

Fold fold_in(Schedule& s, const Group& g, uint8_t src, uint8_t buf, size_t off, size_t count, uint8_t tmp,
             bool& fresh) {
  Fold f;
  const int p = g.size(), i = g.me;
  f.p2 = floor_pow2(p);
  f.rem = p - f.p2;
  if (i < 2 * f.rem) {
    RoundBuilder r(s);
    if (i % 2 == 0) {
      r.send(g[i + 1], Ref{src, off}, count);
      f.newidx = -1;
    } else {
      r.recv(g[i - 1], Ref{tmp, 0}, count);
      r.reduce(Ref{buf, off}, Ref{tmp, 0}, Ref{src, off}, count);
      f.newidx = i / 2;
    }
    fresh = false;  // evens receive the whole result into buf at the end
  } else {
    f.newidx = i - f.rem;
  }
  return f;
}

void fold_out(Schedule& s, const Group& g, uint8_t buf, size_t off, size_t count) {
  const int i = g.me;
  const int rem = g.size() - floor_pow2(g.size());
  if (i < 2 * rem) {
    RoundBuilder r(s);
    if (i % 2 == 1) r.send(g[i - 1], Ref{buf, off}, count);
    else r.recv(g[i + 1], Ref{buf, off}, count);
  }
}

}  // namespace baobab::algo

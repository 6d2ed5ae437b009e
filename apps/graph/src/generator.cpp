// The Graph500 Kronecker generator over a counter-based random source, and the
// keyed permutations it applies (graph.hpp).
#include <cstdint>

#include "graph.hpp"

namespace baobab::graph {

namespace {

inline uint64_t mix64(uint64_t z) {  // splitmix64's finaliser
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// A bijection of [0, 2^bits) (bits even, >= 2): a 4-round Feistel network.
struct Feistel {
  int half;
  uint64_t mask;
  uint64_t keys[4];
  Feistel(uint64_t key, int bits) : half(bits / 2), mask((uint64_t(1) << (bits / 2)) - 1) {
    for (int i = 0; i < 4; ++i) keys[i] = mix64(key + 0x632be59bd9b4e019ULL * uint64_t(i + 1));
  }
  uint64_t operator()(uint64_t x) const {
    uint64_t l = x >> half, r = x & mask;
    for (int i = 0; i < 4; ++i) {
      uint64_t t = l ^ (mix64(r ^ keys[i]) & mask);
      l = r;
      r = t;
    }
    return (l << half) | r;
  }
};

// A random permutation of [0, n): the Feistel bijection of the smallest even
// bit width covering n, walked until it lands in [0, n).
struct Permutation {
  int64_t n;
  Feistel f;
  static int width(int64_t n) {
    int b = 2;
    while (b < 62 && (int64_t(1) << b) < n) ++b;
    return b + (b & 1);
  }
  Permutation(uint64_t key, int64_t n_) : n(n_), f(key, width(n_)) {}
  int64_t operator()(int64_t x) const {
    uint64_t y = f(uint64_t(x));
    while (y >= uint64_t(n)) y = f(y);
    return int64_t(y);
  }
};

constexpr uint64_t kStreamBits = 1, kStreamWeight = 2, kKeyVertices = 3, kKeyEdges = 4;

}  // namespace

uint64_t hash3(uint64_t seed, uint64_t stream, uint64_t i) { return mix64(mix64(seed ^ mix64(stream)) + i); }

void permute(uint64_t key, int64_t n, const int64_t* x, int64_t count, int64_t* out) {
  Permutation p(key, n);
  for (int64_t i = 0; i < count; ++i) out[i] = p(x[i]);
}

void kronecker(int scale, int64_t edgefactor, double a, double b, double c, uint64_t seed, int64_t first,
               int64_t count, int64_t* src, int64_t* dst, float* weight) {
  const int64_t n = int64_t(1) << scale, m = edgefactor * n;
  const double ab = a + b, c_norm = c / (1.0 - ab), a_norm = a / ab;
  const Permutation vperm(hash3(seed, kKeyVertices, 0), n), eperm(hash3(seed, kKeyEdges, 0), m);
  const uint64_t bits_key = mix64(seed ^ mix64(kStreamBits)), w_key = mix64(seed ^ mix64(kStreamWeight));
  constexpr double k2_32 = 1.0 / 4294967296.0;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t k = first + i;
    const uint64_t e = uint64_t(eperm(k));  // output position k holds generated edge e
    const uint64_t base = mix64(bits_key + e);
    int64_t u = 0, v = 0;
    for (int level = 0; level < scale; ++level) {
      const uint64_t h = mix64(base + uint64_t(level) * 0x9e3779b97f4a7c15ULL);
      const double u1 = double(h >> 32) * k2_32, u2 = double(h & 0xffffffffULL) * k2_32;
      const int ib = u1 > ab;
      const int jb = u2 > (ib ? c_norm : a_norm);
      u |= int64_t(ib) << level;
      v |= int64_t(jb) << level;
    }
    src[i] = vperm(u);
    dst[i] = vperm(v);
    if (weight) weight[i] = float(mix64(w_key + uint64_t(k)) >> 40) * (1.0f / 16777216.0f);
  }
}

}  // namespace baobab::graph

// alltoall / pairwise: p-1 rounds; in round k rank i sends to i+k and receives
// from i-k (XOR partners when p is a power of two). Pairs with nothing to
// exchange are skipped on both sides.
// Cost: (p-1)(alpha + n/p beta) for n bytes per rank: one message in flight per
// direction keeps the network from congesting; the choice for large blocks.
#include "alltoall_common.hpp"
#include "pow2.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm alltoall_pairwise() {
  Algorithm a;
  a.name = "pairwise";
  a.coll = Coll::alltoall;
  a.summary = "p-1 rounds of one exchange each: (p-1)(a + n/p b)";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const int p = t.size();
    A2A m(d, p);
    { RoundBuilder r(s); r.copy(Ref{kOut, m.recv_off(rank, rank)}, Ref{kIn, m.send_off(rank, rank)}, m.n(rank, rank)); }
    const bool pow2 = is_pow2(p);
    for (int k = 1; k < p; ++k) {
      const int to = pow2 ? (rank ^ k) : (rank + k) % p;
      const int from = pow2 ? (rank ^ k) : (rank - k + p) % p;
      RoundBuilder r(s);
      if (m.n(rank, to)) r.send(to, Ref{kIn, m.send_off(rank, to)}, m.n(rank, to));
      if (m.n(from, rank)) r.recv(from, Ref{kOut, m.recv_off(rank, from)}, m.n(from, rank));
    }
  };
  return a;
}
}  // namespace baobab::algo

// alltoall / linear: every send and receive posted at once in one round.
// Cost: alpha + (p-1) n/p beta with all messages overlapped: lowest latency for
// small blocks, but p-1 concurrent messages per rank can congest large ones.
#include "alltoall_common.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm alltoall_linear() {
  Algorithm a;
  a.name = "linear";
  a.coll = Coll::alltoall;
  a.summary = "all messages posted at once: a + (p-1) n/p b";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const int p = t.size();
    A2A m(d, p);
    RoundBuilder r(s);
    for (int k = 1; k < p; ++k) {
      const int to = (rank + k) % p, from = (rank - k + p) % p;
      if (m.n(rank, to)) r.send(to, Ref{kIn, m.send_off(rank, to)}, m.n(rank, to));
      if (m.n(from, rank)) r.recv(from, Ref{kOut, m.recv_off(rank, from)}, m.n(from, rank));
    }
    r.copy(Ref{kOut, m.recv_off(rank, rank)}, Ref{kIn, m.send_off(rank, rank)}, m.n(rank, rank));
  };
  return a;
}
}  // namespace baobab::algo

// barrier / dissemination: in round k member i signals i + 2^k and waits for
// i - 2^k (zero-byte messages). Cost: ceil(log2 p) alpha, any p.
// Also the leaders' step of barrier / hier.
#include "flat.hpp"
#include "registry.hpp"

namespace baobab::algo {

void dissemination(Schedule& s, const Group& g) {
  const int p = g.size();
  if (p <= 1 || g.me < 0) return;
  for (int d = 1; d < p; d <<= 1) {
    RoundBuilder r(s);
    r.send(g[(g.me + d) % p], Ref{kOut, 0}, 0);
    r.recv(g[(g.me - d + p) % p], Ref{kOut, 0}, 0);
  }
}

Algorithm barrier_dissemination() {
  Algorithm a;
  a.name = "dissemination";
  a.coll = Coll::barrier;
  a.summary = "ceil(log2 p) rounds of zero-byte messages";
  a.unsupported = always;
  a.build = [](Schedule& s, const Topology& t, const CollDesc&, int rank, const CostModel&) {
    dissemination(s, Group::world(t.size(), rank));
  };
  return a;
}

}  // namespace baobab::algo

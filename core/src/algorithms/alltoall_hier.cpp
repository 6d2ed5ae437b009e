// alltoall / hier (HetuMoE's hierarchical all-to-all): ranks of a node send
// their whole input to the node leader; leaders pack, for every other node, the
// blocks its ranks need into one message and exchange those; each leader
// unpacks and hands every local rank its output.
// Cost (s ranks per node, N nodes, n bytes per rank):
//   2 (a0 + s n b0) + (N-1) a1 + (N-1)/N s n b1 + 2 s n copy.
// N-1 aggregated messages per node instead of s*s*(N-1) small ones across the
// slow link: the choice for small blocks on many nodes (MoE token exchange).
#include "alltoall_common.hpp"
#include "registry.hpp"

namespace baobab::algo {
Algorithm alltoall_hier() {
  Algorithm a;
  a.name = "hier";
  a.coll = Coll::alltoall;
  a.hierarchical = true;
  a.summary = "gather to node leader, one aggregated message per node pair, scatter from leader";
  a.unsupported = needs_nodes;
  a.build = [](Schedule& s, const Topology& t, const CollDesc& d, int rank, const CostModel&) {
    const int p = t.size();
    A2A m(d, p);
    const int na = t.node_of(rank);
    const std::vector<int>& A = t.node_members(na);
    const int leader = A[0];
    if (rank != leader) {
      { RoundBuilder r(s); r.send(leader, Ref{kIn, 0}, m.row(rank)); }
      { RoundBuilder r(s); r.recv(leader, Ref{kOut, 0}, m.col(rank)); }
      return;
    }
    // Phase 1: gather the node's inputs into G (member order).
    std::vector<size_t> goff;
    size_t gsize = 0;
    for (int r : A) {
      goff.push_back(gsize);
      gsize += m.row(r);
    }
    const uint8_t G = s.add_scratch(gsize);
    {
      RoundBuilder r(s);
      for (size_t i = 1; i < A.size(); ++i) r.recv(A[i], Ref{G, goff[i]}, m.row(A[i]));
      r.copy(Ref{G, 0}, Ref{kIn, 0}, m.row(rank));
    }
    // Phase 2: pack one message per other node, exchange among leaders.
    const int N = t.num_nodes();
    std::vector<uint8_t> S(N, 0), T(N, 0);
    {
      RoundBuilder r(s);
      for (int nb = 0; nb < N; ++nb) {
        if (nb == na) continue;
        const auto& B = t.node_members(nb);
        size_t ssz = 0, tsz = 0;
        for (int x : A)
          for (int y : B) ssz += m.n(x, y);
        for (int x : B)
          for (int y : A) tsz += m.n(x, y);
        S[nb] = s.add_scratch(ssz);
        T[nb] = s.add_scratch(tsz);
        size_t pos = 0;
        for (size_t i = 0; i < A.size(); ++i)
          for (int y : B) {
            size_t c = m.n(A[i], y);
            if (c) r.copy(Ref{S[nb], pos}, Ref{G, goff[i] + m.send_off(A[i], y)}, c);
            pos += c;
          }
      }
    }
    std::vector<size_t> ooff;
    size_t osize = 0;
    for (int y : A) {
      ooff.push_back(osize);
      osize += m.col(y);
    }
    const uint8_t O = s.add_scratch(osize);
    {
      RoundBuilder r(s);
      for (int nb = 0; nb < N; ++nb) {
        if (nb == na) continue;
        const int lb = t.node_members(nb)[0];
        r.send(lb, Ref{S[nb], 0}, s.scratch[S[nb] - kScratch]);
        r.recv(lb, Ref{T[nb], 0}, s.scratch[T[nb] - kScratch]);
      }
      // Phase 3: unpack into O: node-local blocks from G, remote ones from T.
      for (size_t i = 0; i < A.size(); ++i)
        for (size_t j = 0; j < A.size(); ++j) {
          size_t c = m.n(A[i], A[j]);
          if (c) r.copy(Ref{O, ooff[j] + m.recv_off(A[j], A[i])}, Ref{G, goff[i] + m.send_off(A[i], A[j])}, c);
        }
      for (int nb = 0; nb < N; ++nb) {
        if (nb == na) continue;
        size_t pos = 0;
        for (int x : t.node_members(nb))
          for (size_t j = 0; j < A.size(); ++j) {
            size_t c = m.n(x, A[j]);
            if (c) r.copy(Ref{O, ooff[j] + m.recv_off(A[j], x)}, Ref{T[nb], pos}, c);
            pos += c;
          }
      }
    }
    // Phase 4: scatter.
    RoundBuilder r(s);
    for (size_t j = 1; j < A.size(); ++j) r.send(A[j], Ref{O, ooff[j]}, m.col(A[j]));
    r.copy(Ref{kOut, 0}, Ref{O, 0}, m.col(rank));
  };
  return a;
}
}  // namespace baobab::algo

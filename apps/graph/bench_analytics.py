"""Measures the graph analytics on Kronecker graphs (not a test).

    mpiexec -n P python apps/graph/bench_analytics.py [--scales 18 20] [--cc-louvain-scale 18]

PageRank: edges per second per iteration (stored entries / median iteration
time, the exchange included; the best of --runs runs) against scipy's sparse
matrix-vector product on one core (A.T @ x over the same deduplicated,
loop-free adjacency, made and timed on rank 0 in the same run; the fastest of
--reps products), printed as a ratio. Best-of figures, because the machine may
be shared. Then the times of
connected components and Louvain (with its modularity) at one scale."""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

import baobab

sys.path.insert(0, str(Path(__file__).resolve().parent))

import community  # noqa: E402
import components  # noqa: E402
import dgraph  # noqa: E402
import kronecker  # noqa: E402
import pagerank  # noqa: E402


def say(comm, text):
    if comm.rank == 0:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()


def scipy_rate(scale, edgefactor, seed, reps):
    """(entries, seconds per A.T @ x) on the full graph, one core."""
    import scipy.sparse as sps
    n = 1 << scale
    s, d, _ = kronecker.kronecker_slice(scale, edgefactor, seed, 0, edgefactor << scale, weights=False)
    keep = s != d
    s, d = s[keep], d[keep]
    A = sps.csr_matrix((np.ones(2 * s.size), (np.concatenate([s, d]), np.concatenate([d, s]))), shape=(n, n))
    A.sum_duplicates()
    A.data[:] = 1.0
    del s, d
    x = np.random.default_rng(0).random(n)
    AT = A.T
    AT @ x
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        AT @ x
        times.append(time.perf_counter() - t0)
    return A.nnz, float(np.min(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[18, 20])
    ap.add_argument("--cc-louvain-scale", type=int, default=18)
    ap.add_argument("--edgefactor", type=int, default=16)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    comm = baobab.init()
    P = comm.size
    for scale in args.scales:
        n, s, d, _ = kronecker.kronecker(comm, scale, args.edgefactor, args.seed, weights=False)
        g = dgraph.build(comm, n, s, d)
        del s, d
        best = None
        for _ in range(args.runs):
            st = pagerank.PageRankStats()
            pagerank.pagerank(g, tol=1e-10, max_iter=200, stats=st)
            if best is None or st.edges_per_second() > best.edges_per_second():
                best = st
        st = best
        rate = st.edges_per_second()
        if comm.rank == 0:
            nnz, t = scipy_rate(scale, args.edgefactor, args.seed, args.reps)
            ratio = rate / (nnz / t)
            say(comm, f"pagerank SCALE {scale} P={P}: {st.entries} entries, {st.iterations} iterations, "
                      f"median {np.median(st.times) * 1e3:.1f} ms/iteration, {rate / 1e6:.1f} M edges/s; "
                      f"scipy A.T@x one core (fastest): {t * 1e3:.1f} ms, {nnz / t / 1e6:.1f} M edges/s; ratio {ratio:.2f}")
        comm.barrier()
        del g
    scale = args.cc_louvain_scale
    n, s, d, _ = kronecker.kronecker(comm, scale, args.edgefactor, args.seed, weights=False)
    g = dgraph.build(comm, n, s, d)
    del s, d
    pagerank.rows_of(g)
    t0 = time.perf_counter()
    cst = components.CCStats()
    lab = components.connected_components(g, stats=cst)
    ncc = components.count_components(g, lab)
    t_cc = time.perf_counter() - t0
    say(comm, f"connected components SCALE {scale} P={P}: {t_cc:.3f} s, {cst.rounds} rounds, {ncc} components")
    t0 = time.perf_counter()
    lst = community.LouvainStats()
    _, q = community.louvain(g, seed=0, stats=lst)
    t_lv = time.perf_counter() - t0
    say(comm, f"louvain SCALE {scale} P={P}: {t_lv:.2f} s, modularity {q:.4f}, parallel sweeps {lst.sweeps}, "
              f"{lst.coarse_nodes} coarse nodes, {lst.levels} sequential levels, "
              f"{lst.refine_sweeps} refinement sweeps; "
              + ", ".join(f"{k} {v:.2f} s" for k, v in lst.times.items()))
    t0 = time.perf_counter()
    lp = community.label_propagation(g, max_iter=30)
    t_lp = time.perf_counter() - t0
    q_lp = community.modularity(g, lp)
    say(comm, f"label propagation SCALE {scale} P={P}: {t_lp:.2f} s (30 steps at most), modularity {q_lp:.4f}")


if __name__ == "__main__":
    main()

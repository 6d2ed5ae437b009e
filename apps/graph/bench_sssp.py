"""SSSP measurement: delta-stepping (sssp.py) on the Graph500 Kronecker graph
against scipy's Dijkstra from the same roots, one core, in the same run.

    mpiexec -n P python apps/graph/bench_sssp.py [--scale 18 20] [--roots 4] [--delta D]

Per scale: the graph is generated and built (not timed); the first search also
splits the transpose by weight (reported apart); then each root's search is
timed (wall clock, the slowest rank), validated (not timed) and its traversed
edges counted as bfs.traversed_edges does. Rank 0 then gathers the edge list,
makes scipy's symmetric CSR (self-loops dropped, duplicates at their smallest
weight; not timed) and times dijkstra(indices=root). Printed: times, TEPS
(harmonic mean over roots, as Graph500 reports), the ratio scipy time /
delta-stepping time (> 1: delta-stepping faster) and the largest relative
difference of the distances."""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import baobab  # noqa: E402
import bfs  # noqa: E402
import dgraph  # noqa: E402
import kronecker  # noqa: E402
import sssp  # noqa: E402


def scipy_matrix(n, s, d, w):
    import scipy.sparse as sp
    keep = s != d
    u = np.concatenate([s[keep], d[keep]])
    v = np.concatenate([d[keep], s[keep]])
    ww = np.concatenate([w[keep], w[keep]]).astype(np.float64)
    key = u * n + v
    order = np.lexsort((ww, key))
    key, ww = key[order], ww[order]
    first = np.r_[True, key[1:] != key[:-1]]
    key, ww = key[first], np.maximum(ww[first], 1e-300)
    return sp.csr_matrix((ww, (key // n, key % n)), shape=(n, n))


def timed(comm, fn):
    comm.barrier() if hasattr(comm, "barrier") else comm.allreduce(np.zeros(1))
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    return out, float(comm.allreduce(np.array([dt]), op="max")[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, nargs="+", default=[18, 20])
    ap.add_argument("--edgefactor", type=int, default=16)
    ap.add_argument("--roots", type=int, default=4)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--delta", type=float, default=None)
    a = ap.parse_args()
    comm = baobab.init()
    say = print if comm.rank == 0 else (lambda *x, **k: None)
    for scale in a.scale:
        n, s, d, w = kronecker.kronecker(comm, scale, a.edgefactor, a.seed)
        g, t_build = timed(comm, lambda: dgraph.build(comm, n, s, d, w))
        g.transpose()
        roots = kronecker.search_keys(a.seed, g.deg, a.roots)
        delta = a.delta if a.delta is not None else sssp.default_delta(g)
        _, t_split = timed(comm, lambda: sssp.split_transpose(g, delta))
        times, teps, results = [], [], []
        for root in roots:
            st = sssp.SSSPStats()
            (dl, pl), t = timed(comm, lambda: sssp.sssp(g, int(root), delta=delta, stats=st))
            dist, parent = g.gather(dl), g.gather(pl)
            sssp.validate(g, dist, parent, int(root))
            m = bfs.traversed_edges(g, pl)
            times.append(t)
            teps.append(m / t)
            results.append(dist if comm.rank == 0 else None)
            say(f"SCALE {scale} P={comm.size} root {root}: {t * 1e3:.1f} ms, {m} edges, {m / t / 1e6:.1f} MTEPS, "
                f"{st.buckets} buckets, {st.light_phases}+{st.heavy_phases} phases, {st.scanned} scanned, "
                f"{st.improved} improved", flush=True)
        S, _ = comm.allgatherv(s)
        D, _ = comm.allgatherv(d)
        W, _ = comm.allgatherv(w)
        if comm.rank == 0:
            from scipy.sparse.csgraph import dijkstra
            A = scipy_matrix(n, S, D, W)
            del S, D, W
            ref_t, err = [], 0.0
            for root, dist in zip(roots, results):
                t = time.perf_counter()
                ref = dijkstra(A, directed=True, indices=int(root))
                ref_t.append(time.perf_counter() - t)
                fin = np.isfinite(ref)
                assert (np.isfinite(dist) == fin).all()
                err = max(err, float(np.abs(dist[fin] - ref[fin]).max() / ref[fin].max()))
            hm = len(teps) / sum(1 / x for x in teps)
            ts, tr = float(np.median(times)), float(np.median(ref_t))
            say(f"SCALE {scale} P={comm.size}: build {t_build:.2f} s, split {t_split * 1e3:.0f} ms, delta {delta:.4f}; "
                f"sssp median {ts * 1e3:.1f} ms, {hm / 1e6:.1f} MTEPS (harmonic mean); scipy dijkstra median "
                f"{tr * 1e3:.1f} ms; ratio scipy/sssp {tr / ts:.2f}; max rel diff {err:.1e}", flush=True)
        else:
            del S, D, W
        comm.allreduce(np.zeros(1))


if __name__ == "__main__":
    main()

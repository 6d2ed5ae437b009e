"""BFS benchmark of the graph app against its baselines, all in one run:

    python apps/graph/bench.py --scale 20 --ranks 2 [--nbfs 16]

1. apps/graph/graph500.py on 1 and on --ranks ranks (mpiexec), timing runs
   (no validation, no results file): BFS harmonic-mean TEPS, kernel 1 time,
   edge imbalance, and the scaling from 1 rank;
2. scipy.sparse.csgraph.breadth_first_order on one core, this process, on the
   same graph (the same Kronecker edge list, symmetrised, duplicates and
   self-loops removed) from the same keys, TEPS counted the same way;
3. when set, GRAPH500_REF (the Graph500 reference MPI BFS binary, run as
   ``mpiexec -n R $GRAPH500_REF SCALE 16``) and GAPBS_BFS (the GAP benchmark
   suite's shared-memory direction-optimising bfs, run as ``$GAPBS_BFS -g SCALE
   -k 16 -n NBFS`` with OMP_NUM_THREADS=R) at the same SCALE, in the same run.
Prints one line per measurement and the ratios. TEPS: the reference's and
ours count the input edges in the searched component; GAP's is reported as
16 x 2^SCALE edges per search (the convention the issue quotes)."""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def mpiexec():
    return (os.environ.get("BAOBAB_MPIEXEC") or shutil.which("mpiexec", path=str(Path(sys.executable).parent))
            or shutil.which("mpiexec") or "mpiexec")


def run_ours(scale, ranks, nbfs, extra=()):
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, str(HERE / "graph500.py"), "--scale", str(scale),
           "--nbfs", str(nbfs), "--no-validate", "--no-sssp", "--out", "-", *extra]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if p.returncode:
        raise SystemExit(f"bench: {' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
    import graph500
    return graph500.parse_block(p.stdout)


def run_reference(binary, scale, ranks):
    env = dict(os.environ, SKIP_VALIDATION="1")
    p = subprocess.run([mpiexec(), "-n", str(ranks), binary, str(scale), "16"], capture_output=True, text=True,
                       timeout=7200, env=env)
    m = re.search(r"harmonic_mean_TEPS:\s*!?\s*([0-9.eE+]+)", p.stdout)
    if not m:
        raise SystemExit(f"bench: no harmonic_mean_TEPS from {binary}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return float(m.group(1))


def run_gap(binary, scale, threads, nbfs):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run([binary, "-g", str(scale), "-k", "16", "-n", str(nbfs)], capture_output=True, text=True,
                       timeout=3600, env=env)
    m = re.search(r"Average Time:\s*([0-9.eE+-]+)", p.stdout)
    if not m:
        raise SystemExit(f"bench: no 'Average Time' from {binary}:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    return float(m.group(1))


def run_scipy(scale, nkeys):
    import scipy.sparse as sp
    from scipy.sparse.csgraph import breadth_first_order

    import kronecker
    n, m = 1 << scale, 16 << scale
    s, d, _ = kronecker.kronecker_slice(scale, 16, 2, 0, m, weights=False)
    loop = s != d
    A = sp.coo_matrix((np.ones(int(loop.sum()), np.int8), (s[loop], d[loop])), shape=(n, n)).tocsr()
    A = ((A + A.T) > 0).astype(np.int8).tocsr()
    deg = np.diff(A.indptr)
    keys = kronecker.search_keys(3, deg, nkeys)
    times, nedge = [], []
    for k in keys:
        t = time.perf_counter()
        order = breadth_first_order(A, int(k), directed=False, return_predecessors=False)
        times.append(time.perf_counter() - t)
        reached = np.zeros(n, bool)
        reached[order] = True
        nedge.append(int(np.count_nonzero(reached[s] & reached[d])))
    teps = np.array(nedge) / np.array(times)
    return len(teps) / np.sum(1 / teps), float(np.mean(times))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=int, default=20)
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--nbfs", type=int, default=16)
    ap.add_argument("--scipy-keys", type=int, default=4)
    a = ap.parse_args()
    rows = []
    one = run_ours(a.scale, 1, a.nbfs)
    many = run_ours(a.scale, a.ranks, a.nbfs) if a.ranks > 1 else one
    ours = many["bfs harmonic_mean_TEPS"]
    print(f"baobab graph BFS, SCALE {a.scale}, {a.ranks} ranks: harmonic mean {ours / 1e6:.1f} MTEPS, "
          f"median {many['bfs median_time'] * 1e3:.2f} ms/search, kernel 1 {many['construction_time']:.2f} s, "
          f"edge imbalance {many.get('edge_imbalance', 1):.4f}", flush=True)
    print(f"baobab graph BFS, SCALE {a.scale}, 1 rank: {one['bfs harmonic_mean_TEPS'] / 1e6:.1f} MTEPS; "
          f"scaling 1 -> {a.ranks} ranks: {ours / one['bfs harmonic_mean_TEPS']:.2f}x", flush=True)
    sc, sc_t = run_scipy(a.scale, a.scipy_keys)
    print(f"scipy breadth_first_order, 1 core: {sc / 1e6:.1f} MTEPS ({sc_t * 1e3:.1f} ms/search); "
          f"baobab / scipy = {ours / sc:.1f}x", flush=True)
    rows.append(("scipy", sc))
    ref = os.environ.get("GRAPH500_REF")
    if ref:
        r = run_reference(ref, a.scale, a.ranks)
        print(f"Graph500 reference BFS, {a.ranks} ranks: {r / 1e6:.1f} MTEPS; baobab / reference = "
              f"{ours / r:.1f}x (target >= 10x)", flush=True)
    gap = os.environ.get("GAPBS_BFS")
    if gap:
        t = run_gap(gap, a.scale, a.ranks, a.nbfs)
        gteps = (16 << a.scale) / t
        mine = (16 << a.scale) / many["bfs mean_time"]
        print(f"GAP bfs, {a.ranks} threads: {t * 1e3:.2f} ms/search ({gteps / 1e9:.3f} GTEPS at 16 x 2^SCALE edges); "
              f"baobab {many['bfs mean_time'] * 1e3:.2f} ms/search ({mine / 1e9:.3f} GTEPS the same way); "
              f"baobab / GAP = {t / many['bfs mean_time']:.2f}x (target >= 0.5x)", flush=True)


if __name__ == "__main__":
    main()

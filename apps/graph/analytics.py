"""Graph analytics over baobab: PageRank, connected components, label
propagation and Louvain communities on a Kronecker graph or any edge list,
results per vertex in HDF5.

    mpiexec -n 2 python apps/graph/analytics.py --scale 18                  # every kernel
    mpiexec -n 4 python apps/graph/analytics.py --edges web.txt --pagerank --out pr.h5
    mpiexec -n 2 python apps/graph/analytics.py --edges g.h5 --louvain --components

Prints one line per kernel (time, iterations, components, modularity); the
HDF5 file (``--out``, default analytics.h5; '-' for none) holds, row v for
vertex v, ``pagerank``, ``component``, ``label_propagation``, ``louvain``
(whichever ran) and the same numbers as attributes."""
import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baobab import InvalidArgument  # noqa: E402

import dgraph  # noqa: E402
import kronecker  # noqa: E402


def _parser():
    p = argparse.ArgumentParser(prog="analytics.py", description="graph analytics over baobab")
    kronecker.add_input_arguments(p, "--edges is directed (PageRank follows out-edges; components are weak; "
                                     "community detection needs undirected)")
    p.add_argument("--pagerank", action="store_true")
    p.add_argument("--components", action="store_true")
    p.add_argument("--lp", action="store_true", help="label propagation communities")
    p.add_argument("--louvain", action="store_true")
    p.add_argument("--damping", type=float, default=0.85)
    p.add_argument("--tol", type=float, default=1e-10, help="PageRank: stop when the L1 change < n * tol")
    p.add_argument("--max-iter", type=int, default=100, help="PageRank iterations at most")
    p.add_argument("--lp-iter", type=int, default=30, help="label propagation sweeps at most")
    p.add_argument("--resolution", type=float, default=1.0, help="Louvain / modularity resolution")
    p.add_argument("--unweighted", action="store_true", help="ignore edge weights (Louvain, modularity)")
    p.add_argument("--delegate-degree", type=int, default=None)
    p.add_argument("--out", type=Path, default=Path("analytics.h5"), help="HDF5 results ('-' for none)")
    return p


def _fail(msg, comm=None):
    if comm is None or comm.rank == 0:
        print(f"analytics: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def main(argv=None):
    a = _parser().parse_args(argv)
    if kronecker.input_error(a):
        _fail(kronecker.input_error(a))
    if not 0 < a.damping < 1:
        _fail(f"--damping must be in (0, 1), got {a.damping}")
    if not a.tol > 0 or a.max_iter < 1 or a.lp_iter < 1:
        _fail("--tol must be positive, --max-iter and --lp-iter at least 1")
    if a.directed and (a.lp or a.louvain):
        _fail("community detection (--lp, --louvain) needs an undirected graph")
    if not (a.pagerank or a.components or a.lp or a.louvain):
        a.pagerank = a.components = True
        a.lp = a.louvain = not a.directed
    from mpi4py import MPI

    import baobab
    comm = baobab.Communicator(MPI.COMM_WORLD)
    try:
        if str(a.out) == "-":
            return _run(comm, a, None)
        from baobab import io
        with io.File(a.out, "w", comm) as f:
            return _run(comm, a, f)
    except (InvalidArgument, pagerank_not_converged()) as e:
        _fail(str(e), comm)
    except baobab.Error as e:
        print(f"analytics: rank {comm.rank}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


def pagerank_not_converged():
    import pagerank
    return pagerank.PageRankNotConverged


def _say(comm, text):
    if comm.rank == 0:
        print(text, flush=True)


def _run(comm, a, f):
    n, src, dst, w = kronecker.load_input(comm, a)[:4]
    if a.unweighted:
        w = None
    t = time.perf_counter()
    g = dgraph.build(comm, n, src, dst, w, directed=a.directed, delegate_degree=a.delegate_degree)
    attrs = {"vertices": n, "entries": g.total_entries(), "ranks": comm.size, "construction_time":
             time.perf_counter() - t, "edge_imbalance": g.imbalance(), "delegates": g.nhubs}
    _say(comm, f"graph: {n} vertices, {g.total_entries() // (1 if a.directed else 2)} edges, {comm.size} ranks, "
               f"edge imbalance {attrs['edge_imbalance']:.4f}, built in {attrs['construction_time']:.2f} s")
    results = {}
    if a.pagerank:
        import pagerank
        st = pagerank.PageRankStats()
        t = time.perf_counter()
        pr = pagerank.pagerank(g, damping=a.damping, tol=a.tol, max_iter=a.max_iter, stats=st)
        attrs["pagerank_time"] = time.perf_counter() - t
        attrs["pagerank_iterations"] = st.iterations
        results["pagerank"] = pr
        _say(comm, f"pagerank: {attrs['pagerank_iterations']} iterations in {attrs['pagerank_time']:.3f} s")
    if a.components:
        import components
        t = time.perf_counter()
        cc = components.connected_components(g)
        attrs["components_time"] = time.perf_counter() - t
        attrs["components"] = components.count_components(g, cc)
        results["component"] = cc
        _say(comm, f"components: {attrs['components']} in {attrs['components_time']:.3f} s")
    if a.lp:
        import community
        t = time.perf_counter()
        lp = community.label_propagation(g, max_iter=a.lp_iter)
        attrs["label_propagation_time"] = time.perf_counter() - t
        attrs["label_propagation_modularity"] = community.modularity(g, lp, resolution=a.resolution)
        results["label_propagation"] = lp
        _say(comm, f"label propagation: modularity {attrs['label_propagation_modularity']:.4f} in "
                   f"{attrs['label_propagation_time']:.3f} s")
    if a.louvain:
        import community
        t = time.perf_counter()
        lv, q = community.louvain(g, resolution=a.resolution)
        attrs["louvain_time"] = time.perf_counter() - t
        attrs["louvain_modularity"] = q
        results["louvain"] = lv
        _say(comm, f"louvain: modularity {q:.4f} in {attrs['louvain_time']:.3f} s")
    if f is not None:
        f.set_attrs("/", attrs)
        for name, local in results.items():
            f.write(name, np.ascontiguousarray(local))
        _say(comm, f"results: {f.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Distributed PageRank over a DistGraph (pull formulation, power iteration).

    new[v] = (1 - d) / n + d * (sum over u in row(v) of x[u] / outdeg[u] + dangling / n)

where a row holds v's in-neighbours (undirected: all its neighbours),
outdeg = g.out_degree() (distinct neighbours, self-loops and duplicates left
out) and dangling = the sum of x over the vertices of out-degree 0. Start
x = 1/n; stop after the first iteration whose L1 change, summed over all
vertices, is below n * tol -- networkx.pagerank's semantics and stopping rule
(personalization None, unweighted: weight=None) -- or raise
PageRankNotConverged after max_iter iterations.

Per iteration each rank needs x[u] / outdeg[u] for every u its rows list: one
allgatherv of the owned contributions (n float64 in all; fine up to a few
million vertices, the sizes this app runs). The row sums are a C++ loop
(analytics.cpp, AnalyticsRows.spmv); a hub's delegate rows give partial sums,
added with one allreduce over the hubs that also carries the dangling mass;
one more allreduce of a scalar gives the change."""
import time

import numpy as np

from baobab import Error
from baobab_apps import _graph as K

from dgraph import agree


class PageRankNotConverged(Error):
    """The power iteration did not meet the tolerance within max_iter iterations
    (networkx's PowerIterationFailedConvergence)."""

    def __init__(self, max_iter):
        super().__init__(f"PageRank did not converge within {max_iter} iterations")
        self.max_iter = max_iter


class PageRankStats:
    """Per-run record: iteration times (s), the graph's stored entries (the edges one
    iteration reads), iterations. ``edges_per_second()``: entries / median iteration time."""

    def __init__(self):
        self.times = []
        self.entries = 0

    @property
    def iterations(self):
        return len(self.times)

    def edges_per_second(self):
        return self.entries / float(np.median(self.times)) if self.times else 0.0


def rows_of(g):
    """The graph's rows checked and copied for the analytics kernels (made once per
    graph), with the weights g.w when the graph was built with weights (on any rank),
    unit weights otherwise."""
    r = getattr(g, "_analytics_rows", None)
    if r is None:
        weighted = int(g.comm.allreduce(np.array([g.weight is not None], np.int64), op="max")[0])
        w = g.w if weighted else np.zeros(0, np.float32)
        r = K.AnalyticsRows(g.off, g.cols, w, g.row_vertex(), g.nlocal, g.n)
        g._analytics_rows = r
    return r


def pagerank(g, damping=0.85, tol=1e-10, max_iter=100, stats=None):
    """PageRank of this rank's owned vertices (float64[nlocal]); ``gather_pagerank``
    or g.gather for the global vector. ``stats``: a PageRankStats to fill."""
    err = None
    if not (isinstance(damping, (int, float)) and 0 <= damping <= 1):
        err = f"damping must be a number in [0, 1], got {damping!r}"
    elif not (isinstance(tol, (int, float)) and tol > 0):
        err = f"tol must be a positive number, got {tol!r}"
    elif not (isinstance(max_iter, (int, np.integer)) and max_iter >= 1):
        err = f"max_iter must be a positive integer, got {max_iter!r}"
    agree(g.comm, err)
    comm, n, nl, nh = g.comm, g.n, g.nlocal, g.nhubs
    rows = rows_of(g)
    outdeg = g.out_degree()
    inv = np.zeros(n)
    np.divide(1.0, outdeg, out=inv, where=outdeg > 0)
    inv_local = np.ascontiguousarray(inv[g.lo:g.hi])
    counts = np.diff(g.bounds)
    hub_owned = np.flatnonzero((g.hubs >= g.lo) & (g.hubs < g.hi)) if nh else np.zeros(0, np.int64)
    hub_pos = g.hubs[hub_owned] - g.lo
    x = np.full(nl, 1.0 / n)
    mine = np.empty(nl)
    y = np.empty(g.nrows)
    red = np.zeros(nh + 1)
    entries = g.total_entries()  # a collective: called on every rank, stats or not
    if stats is not None:
        stats.entries = entries
    d = float(damping)
    base = (1.0 - d) / n
    for _ in range(int(max_iter)):
        t0 = time.perf_counter()
        dangling = K.pr_contrib(x, inv_local, mine)
        contrib, _ = comm.allgatherv(mine, rows=counts) if comm.size > 1 else (mine, None)
        rows.spmv(contrib, y)
        red[:nh] = y[nl:]
        red[nh] = dangling
        tot = comm.allreduce(red) if comm.size > 1 else red
        if nh:
            y[hub_pos] = tot[hub_owned]
        change = K.pr_update(y, x, base, d, tot[nh] / n)
        if comm.size > 1:
            change = comm.allreduce(np.array([change]))[0]
        if stats is not None:
            stats.times.append(time.perf_counter() - t0)
        if change < n * tol:
            return x
    raise PageRankNotConverged(int(max_iter))


def gather_pagerank(g, x_local):
    """The global PageRank vector (on every rank) from each rank's owned values."""
    return g.gather(np.ascontiguousarray(x_local, np.float64))


__all__ = ["pagerank", "gather_pagerank", "PageRankStats", "PageRankNotConverged", "rows_of"]

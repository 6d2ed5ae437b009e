"""Community detection over an undirected DistGraph: label propagation, Louvain,
and modularity (networkx's definition, weights g.w when the graph has weights).

Every result is the same on any number of ranks, with or without hubs: the
per-vertex decisions depend only on the previous step's replicated state and
on sums of weights that are exact in float64 (analytics.cpp explains when),
never on the partition.

Label propagation (synchronous). Each step every vertex takes the label most
frequent among its neighbours and itself (its own label counted once, which
stops the two-colour oscillation of plain synchronous updates), ties to the
label of smallest seeded hash (seed=None: the smallest label); one
allgatherv of the owned labels per step; stop when no label changes or after
max_iter steps. Counts are unweighted. A hub's counts come from its delegate
rows on every rank: one allgatherv of (hub, label, count) triples.

Louvain. Level one on the distributed graph: synchronous sweeps of local
moving, each vertex moving to the community of best modularity gain under the
state of the previous sweep (community ids are vertex ids; the degree sums per
community are computed on every rank from the replicated ids). To keep
simultaneous moves from undoing one another, a sweep lets only about a quarter
of the vertices move (``buckets``: a seeded hash of (vertex, sweep) decides);
options: ``independent`` (only vertices of largest hash among their moving
neighbours: an independent set, near-sequential moves but slow to converge)
and ``alternate`` (moves only to smaller community ids in one round of sweeps,
only to larger in the next). Sweeps stop when modularity has not risen by
``threshold`` for 2 * buckets sweeps or after ``max_sweeps``; the best state
is kept. Then the community graph (each rank's entries summed per community
pair, one allgatherv; small) is built on every rank and the remaining levels
run there, sequentially in C++ with a seeded fixed vertex order (networkx's
louvain_communities procedure: levels until the gain in modularity is at most
``threshold``). Last, ``refine``: the same parallel sweeps over the original
vertices, starting from the final partition (single vertices move between
the final communities; the best state kept). Graphs with fewer stored entries
than ``parallel_min_entries`` skip the parallel first level (the whole graph
is the first community graph). Labels: the smallest vertex id of each
community."""
import time

import numpy as np

from baobab_apps import _graph as K

from dgraph import agree
from pagerank import rows_of


class LouvainStats:
    """Per-run record: parallel sweeps, modularity after each, communities after the
    parallel level, sequential levels, refinement sweeps, final modularity, the
    time of each phase (s)."""

    def __init__(self):
        self.sweeps = 0
        self.refine_sweeps = 0
        self.times = {}
        self.sweep_modularity = []
        self.coarse_nodes = 0
        self.levels = 0
        self.modularity = None


def _need_undirected(g, what):
    agree(g.comm, f"{what} needs an undirected graph" if g.directed else None)


def _dense(labels):
    """Dense ids 0..k-1 (in label order) of a label array, and k."""
    uniq, inv = np.unique(labels, return_inverse=True)
    return np.ascontiguousarray(inv.astype(np.int64)), int(uniq.size)


def _canonical(labels):
    """Relabels every community by its smallest vertex id."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    return first.astype(np.int64)[inv]


def modularity(g, labels_local, resolution=1.0):
    """Modularity (networkx.community.modularity: sum over communities of
    L_c / m - resolution * (d_c / 2m)^2, weights g.w when the graph has weights) of
    the partition given by each rank's community labels of its owned vertices
    (any int64 values: equal labels, same community)."""
    _need_undirected(g, "modularity")
    labels_local = np.asarray(labels_local)
    agree(g.comm, None if labels_local.shape == (g.nlocal,) else
          f"labels must have one entry per owned vertex ({g.nlocal}), got shape {labels_local.shape}")
    lab = g.gather(np.ascontiguousarray(labels_local, np.int64))
    dense, k = _dense(lab)
    parts = rows_of(g).modularity_parts(dense, k)
    if g.comm.size > 1:
        parts = g.comm.allreduce(parts)
    intra, total, deg = parts[0], parts[1], parts[2:]
    if total == 0:
        return 0.0
    return float(intra / total - resolution * np.sum((deg / total) ** 2))


def label_propagation(g, max_iter=100, seed=0, self_count=True, keep_own=False, stats=None):
    """Community labels (int64[nlocal]) by synchronous label propagation (module
    docstring). Ties: to the label with the smallest seeded hash (``seed``), or with
    seed=None to the smallest label (which floods the smallest ids: a poor default).
    ``self_count``: a vertex's own label counts once among its neighbours' (stops the
    two-step oscillation); ``keep_own``: a vertex keeps its label when it ties for the
    largest count. ``stats``: a list that receives the number of labels changed per step."""
    _need_undirected(g, "label propagation")
    agree(g.comm, None if isinstance(max_iter, (int, np.integer)) and max_iter >= 0 else
          f"max_iter must be a non-negative integer, got {max_iter!r}")
    comm, n, nl = g.comm, g.n, g.nlocal
    rows = rows_of(g)
    seeded = seed is not None
    key = int(seed) & (2**64 - 1) if seeded else 0
    lab = np.arange(n, dtype=np.int64)
    own_hubs = np.flatnonzero((g.hubs >= g.lo) & (g.hubs < g.hi)) if g.nhubs else None
    out = np.empty(nl, np.int64)
    for _ in range(int(max_iter)):
        _, hub = rows.lpa_step(lab, key, seeded, self_count, keep_own, out)
        hub_lab = None
        if g.nhubs:
            allt, _ = comm.allgatherv(hub.reshape(-1, 3))
            hub_lab = K.lpa_hubs(np.ascontiguousarray(allt.reshape(-1)), np.ascontiguousarray(lab[g.hubs]), key,
                                 seeded, self_count, keep_own)
            out[g.hubs[own_hubs] - g.lo] = hub_lab[own_hubs]
        new = g.gather(out, hub_lab)
        changed = int(np.count_nonzero(new != lab))
        lab = new
        if stats is not None:
            stats.append(changed)
        if changed == 0:
            break
    return lab[g.lo:g.hi].copy()


def _degrees(g, rows):
    """Weighted degree of every vertex (float64[n], on every rank)."""
    d = rows.weighted_degree()
    hub = g.comm.allreduce(np.ascontiguousarray(d[g.nlocal:])) if g.nhubs else None
    return g.gather(np.ascontiguousarray(d[:g.nlocal]), hub)


def louvain(g, resolution=1.0, seed=0, threshold=1e-7, max_sweeps=50, parallel_min_entries=1 << 16, buckets=4,
            alternate=False, independent=False, refine=True, stats=None):
    """(labels int64[nlocal], modularity): Louvain communities (module docstring),
    each labelled by its smallest vertex id, and the partition's modularity."""
    _need_undirected(g, "Louvain")
    err = None
    if not (isinstance(resolution, (int, float)) and resolution > 0):
        err = f"resolution must be a positive number, got {resolution!r}"
    elif not (isinstance(max_sweeps, (int, np.integer)) and max_sweeps >= 0):
        err = f"max_sweeps must be a non-negative integer, got {max_sweeps!r}"
    elif not (isinstance(buckets, (int, np.integer)) and buckets >= 1):
        err = f"buckets must be a positive integer, got {buckets!r}"
    agree(g.comm, err)
    comm, n = g.comm, g.n
    gamma = float(resolution)
    rows = rows_of(g)
    k = _degrees(g, rows)
    m = float(k.sum()) / 2
    C = np.arange(n, dtype=np.int64)
    t0 = time.perf_counter()
    if m > 0 and g.total_entries() >= parallel_min_entries:
        C = _parallel_level(g, rows, k, m, gamma, threshold, int(max_sweeps), int(seed) & (2**64 - 1), int(buckets),
                            alternate, independent, stats)
    t1 = time.perf_counter()
    dense, kc = _dense(C)
    ab, x = rows.coarse_entries(dense, kc)
    if comm.size > 1:
        ab, _ = comm.allgatherv(ab.reshape(-1, 2))
        x, _ = comm.allgatherv(x)
    kdeg = np.bincount(dense, weights=k, minlength=kc)
    member, q, levels = K.louvain_sequential(kc, np.ascontiguousarray(ab.reshape(-1)), np.ascontiguousarray(x),
                                             kdeg, gamma, int(seed) & (2**64 - 1), float(threshold))
    labels = _canonical(member[dense])
    t2 = time.perf_counter()
    if refine and m > 0:
        rst = LouvainStats()
        labels = _parallel_level(g, rows, k, m, gamma, threshold, int(max_sweeps), int(seed) & (2**64 - 1),
                                 int(buckets), alternate, independent, rst, start=labels)
        labels = _canonical(labels)
        q = modularity(g, labels[g.lo:g.hi], resolution)
        if stats is not None:
            stats.refine_sweeps = rst.sweeps
    if stats is not None:
        stats.coarse_nodes = kc
        stats.levels = levels
        stats.modularity = q
        stats.times = {"parallel level": t1 - t0, "community graph and sequential levels": t2 - t1,
                       "refinement": time.perf_counter() - t2}
    return labels[g.lo:g.hi].copy(), float(q)


def _parallel_level(g, rows, k, m, gamma, threshold, max_sweeps, seed, nb, alternate, independent, stats,
                    start=None):
    """Level one: synchronous local moving sweeps on the distributed graph from the
    partition ``start`` (community ids that are vertex ids; default singletons); the
    best community array found (int64[n], on every rank)."""
    comm, n, nl = g.comm, g.n, g.nlocal
    own_hubs = np.flatnonzero((g.hubs >= g.lo) & (g.hubs < g.hi)) if g.nhubs else None
    C = np.arange(n, dtype=np.int64) if start is None else start
    tot = np.bincount(C, weights=k, minlength=n)
    out = np.empty(nl, np.int64)
    best_c, best_q, stale = C, -np.inf, 0
    for s in range(max_sweeps + 1):
        direction = (-1 if (s // nb) % 2 == 0 else 1) if alternate else 0
        intra, hp, hw = rows.louvain_move(C, k, tot, m, gamma, direction, seed, nb, s, independent, out)
        if comm.size > 1:
            intra = float(comm.allreduce(np.array([intra]))[0])
        q = intra / (2 * m) - gamma * float(np.sum((tot / (2 * m)) ** 2))
        if stats is not None:
            stats.sweeps = s
            stats.sweep_modularity.append(q)
        if q > best_q + threshold:
            best_c, best_q, stale = C, q, 0
        else:
            stale += 1
            if q > best_q:
                best_c, best_q = C, q
        if stale >= 2 * nb or s == max_sweeps:
            break
        hub_c = None
        if g.nhubs:
            allp, _ = comm.allgatherv(hp.reshape(-1, 2))
            allw, _ = comm.allgatherv(hw)
            hub_c = K.louvain_hubs(np.ascontiguousarray(allp.reshape(-1)), allw, g.hubs, C, k, tot, m, gamma,
                                   direction, seed, nb, s)
            out[g.hubs[own_hubs] - g.lo] = hub_c[own_hubs]
        C = g.gather(out, hub_c)
        tot = np.bincount(C, weights=k, minlength=n)
    return best_c

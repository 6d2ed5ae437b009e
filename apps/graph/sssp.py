"""Distributed single-source shortest paths by delta-stepping (Meyer & Sanders)
over a DistGraph, and the Graph500 SSSP validation.

Buckets. A vertex whose tentative distance d has changed since its edges were
last relaxed is pending, in bucket floor(d / delta). The search takes the
smallest bucket i pending on any rank; then, while any rank has pending
vertices in bucket i, their light edges (weight <= delta) are relaxed (one
phase each: vertices improved into bucket i become pending again and go round
once more); when bucket i stays empty, the heavy edges (weight > delta) of
every vertex taken from it are relaxed once, in one phase. Each phase starts
with one allgather of a 3-integer header per rank (its smallest pending
bucket, its vertices there, its vertices awaiting the heavy pass), which
chooses the bucket (the minimum), tells when it is empty and gives the row
counts of the phase's allgatherv. Relaxing keeps strictly shorter distances
only, so the result is the fixed point of d[v] = min over edges u -> v of
d[u] + w (float64 sums of the float32 weights), whatever the order: the
distances do not depend on the rank count; parents may differ between paths
of equal length.

Exchange. Each phase all-gathers the active vertices' (id, distance) pairs and
each rank relaxes them through its transpose (the local rows listing them), as
bfs.py does with its frontier. Rows hold in-neighbours, so the owner of u does
not know u's out-edges in a directed graph, nor which ranks hold them;
gathering needs no routing and sends every active vertex once, not once per
edge, and the transpose lookup skips the vertices a rank has no row for.

Hubs. A hub's distance and parent are replicated: after each phase one
allreduce min agrees on the distances and a second on the parents among the
ranks whose candidate has the agreed distance (as bfs.py agrees hub parents);
every rank then takes the same hubs from the same buckets and relaxes them
itself, without sending them.

delta. By default, DELTA_SCALE (2) times the mean weight over the mean degree
of the vertices with edges: for uniform random weights this is the Theta(1 / d)
width Meyer and Sanders analyse. On Kronecker graphs (weights uniform on
[0, 1)) the time is flat for DELTA_SCALE 1 to 4 and grows beyond (more entries
re-relaxed); 2 keeps the phases (collectives) half those of 1.

Light and heavy edges. The first search with a given delta copies the
transpose with each column's light entries before its heavy ones (K.Split,
kept for the graph's next searches), so that a phase scans only the entries
it relaxes."""
import operator
import weakref

import numpy as np

from baobab import InvalidArgument
from baobab_apps import _graph as K
from dgraph import agree

NONE = np.iinfo(np.int64).max
DELTA_SCALE = 2.0
LIGHT, HEAVY, ALL = 0, 1, 2
_cache = weakref.WeakKeyDictionary()  # DistGraph -> {"summary": weight_summary, "split": its last K.Split}


class ValidationError(Exception):
    """A shortest-path result that breaks a Graph500 SSSP rule (the same one-line
    message on every rank)."""


class SSSPStats:
    """Per-search record: delta, buckets processed, light and heavy phases, entries
    scanned and distances improved (summed over ranks), pairs exchanged."""

    def __init__(self):
        self.delta = None
        self.buckets = 0
        self.light_phases = 0
        self.heavy_phases = 0
        self.scanned = 0
        self.improved = 0
        self.pairs = 0

    @property
    def phases(self):
        return self.light_phases + self.heavy_phases


def weight_summary(g):
    """(mean weight, max weight, mean degree of the vertices with edges) over the whole graph
    (collective; kept for the graph's next search)."""
    c = _cache.setdefault(g, {})
    if "summary" not in c:
        c["summary"] = _weight_summary(g)
    return c["summary"]


def _weight_summary(g):
    s = g.comm.allreduce(np.array([float(g.w.sum(dtype=np.float64)), float(g.entries)]))
    wmax = float(g.comm.allreduce(np.array([float(g.w.max()) if g.w.size else 0.0]), op="max")[0])
    active = max(int(np.count_nonzero(g.deg)), 1)
    mean_w = s[0] / s[1] if s[1] else 0.0
    return mean_w, wmax, s[1] / active


def default_delta(g):
    """DELTA_SCALE * mean weight / mean degree (see the module docstring); 1 for a graph
    without positive weights."""
    mean_w, _, mean_deg = weight_summary(g)
    if not mean_w > 0:
        return 1.0
    return DELTA_SCALE * mean_w / max(mean_deg, 1.0)


def split_transpose(g, delta):
    """g's transpose with each column's light entries (weight <= delta) before its heavy
    ones (a K.Split); kept for the next search with the same delta."""
    c = _cache.setdefault(g, {})
    sp = c.get("split")
    if sp is None or sp.delta != delta:
        coff, crow, cw = g.transpose()
        sp = c["split"] = None  # the old split's memory goes first
        sp = c["split"] = K.Split(coff, crow, cw, g.nrows, float(delta))
    return sp


def _root(root, n):
    try:
        root = operator.index(root)
    except TypeError:
        raise InvalidArgument(f"root must be an integer vertex id, got {root!r}") from None
    if not 0 <= root < n:
        raise InvalidArgument(f"root {root} is not a vertex of a graph of {n} (ids 0..{n - 1})")
    return root


def sssp(g, root, *, delta=None, stats=None):
    """Shortest distances (float64) and parents of this rank's owned vertices from
    global vertex ``root`` over DistGraph ``g`` (edge weights g.w; directed graphs
    follow their edges' direction). Unreached: distance inf, parent -1; the root:
    0 and itself. ``delta``: the bucket width (default ``default_delta``);
    ``stats``: an SSSPStats to fill."""
    comm, n, nl = g.comm, g.n, g.nlocal
    err = None
    try:
        root = _root(root, n)
        if delta is not None:
            try:
                delta = float(delta)
            except (TypeError, ValueError):
                raise InvalidArgument(f"delta must be a number, got {delta!r}") from None
            if not (delta > 0 and np.isfinite(delta)):
                raise InvalidArgument(f"delta must be a positive finite bucket width, got {delta}")
    except InvalidArgument as e:
        err = str(e)
    agree(comm, err)
    _, wmax, _ = weight_summary(g)
    if delta is None:
        delta = default_delta(g)
    all_light = wmax <= delta
    st = K.Stepper(nl, g.lo, g.hubs, split_transpose(g, delta))
    nh = g.nhubs
    if nh and g.is_hub[root]:
        st.set(int(g.hub_rows(root)), 0.0, root)
    elif g.lo <= root < g.hi:
        st.set(root - g.lo, 0.0, root)
    dist_rows, parent_rows = st.dist(), st.parent()
    counts = np.zeros(2, np.int64)
    header = np.zeros(3, np.int64)
    nstats = [0, 0, 0, 0]  # buckets, light phases, heavy phases, pairs

    def exchange(owned, hub_pairs, rows):
        """All active pairs: every rank's owned ones (``rows`` per rank), then the hubs'."""
        got, _ = comm.allgatherv(owned.reshape(-1, 2), rows=rows)
        nstats[3] += got.shape[0] + hub_pairs.size // 2
        if hub_pairs.size:
            return np.concatenate([got.reshape(-1), hub_pairs])
        return got.reshape(-1)

    def relax(pairs, mode):
        s, i = st.relax(pairs, mode)
        counts[0] += s
        counts[1] += i
        if nh:  # agree on the hubs: smallest distance, then smallest parent among those with it
            agreed = comm.allreduce(np.ascontiguousarray(dist_rows[nl:]), op="min")
            mine = np.where(dist_rows[nl:] == agreed, parent_rows[nl:], NONE)
            st.agree_hubs(agreed, comm.allreduce(mine, op="min"))

    i = None  # the bucket being emptied
    while True:
        # one header per phase: this rank's smallest pending bucket, its owned rows there,
        # its owned rows marked heavy
        b = st.min_bucket()
        header[0], header[1], header[2] = b, st.count(b) if b != NONE else 0, st.heavy_count()
        h = comm.allgather(header)
        gmin = int(h[:, 0].min())
        if i is not None and gmin != i:  # bucket i is empty everywhere: its heavy pass
            i = None
            owned, hub_pairs = st.take_heavy()
            if not all_light and (h[:, 2].any() or hub_pairs.size):
                nstats[2] += 1
                relax(exchange(owned, hub_pairs, h[:, 2]), HEAVY)
                continue
        if gmin == NONE:
            break
        if i is None:
            i = gmin
            nstats[0] += 1
        nstats[1] += 1
        owned, hub_pairs = st.take(i)
        relax(exchange(owned, hub_pairs, np.where(h[:, 0] == i, h[:, 1], 0)), ALL if all_light else LIGHT)
    dist = dist_rows[:nl].copy()
    parent = parent_rows[:nl].copy()
    if nh:
        mine = (g.hubs >= g.lo) & (g.hubs < g.hi)
        dist[g.hubs[mine] - g.lo] = dist_rows[nl:][mine]
        parent[g.hubs[mine] - g.lo] = parent_rows[nl:][mine]
    if stats is not None:
        tot = comm.allreduce(counts)
        stats.delta = delta
        stats.buckets, stats.light_phases, stats.heavy_phases, stats.pairs = nstats
        stats.scanned, stats.improved = int(tot[0]), int(tot[1])
    return dist, parent


def agree_valid(comm, error):
    """As dgraph.agree, raising ValidationError (graph500.py's BFS checks use it too)."""
    try:
        agree(comm, error)
    except InvalidArgument as e:
        raise ValidationError(str(e)) from None


def _check_vertices(dist, parent, root):
    """The per-vertex rules (the same on every rank): '' or what is wrong."""
    if dist[root] != 0:
        return f"the root {root} has distance {dist[root]}, not 0"
    reached = parent != -1
    bad = np.flatnonzero(reached != np.isfinite(dist))
    if bad.size:
        v = int(bad[0])
        what = "is reached (parent {}) but has distance {}" if reached[v] else "has no parent but distance {1}"
        return f"vertex {v} " + what.format(parent[v], dist[v])
    neg = np.flatnonzero(reached & (dist < 0))
    if neg.size:
        return f"vertex {int(neg[0])} has negative distance {dist[neg[0]]}"
    level = np.empty(parent.size, np.int64)
    return K.bfs_levels(parent, root, level)


def validate(g, dist, parent, root, *, tol=1e-6):
    """Graph500 SSSP validation of the global ``dist`` and ``parent`` arrays (as
    ``g.gather`` makes them) from ``root``: the root has distance 0 and is its own
    parent; the parents form a tree reaching the root; every input edge of this
    rank's slice (g.src, g.dst, g.weight) joins two reached vertices or two
    unreached ones (directed: leaves no reached vertex for an unreached one) and
    shortens no distance (relative tolerance ``tol``); every reached vertex but the
    root has its tree edge (parent, v) among the input edges, with weight
    dist[v] - dist[parent] (within tol). Raises ValidationError naming the first
    violation, the same on every rank; returns None when the result is valid."""
    comm, n = g.comm, g.n
    err = None
    try:
        root = _root(root, n)
        dist = np.ascontiguousarray(dist, np.float64).reshape(-1)
        parent = np.ascontiguousarray(parent, np.int64).reshape(-1)
        if dist.size != n or parent.size != n:
            raise InvalidArgument(f"dist and parent need {n} entries (the global arrays), got {dist.size} and "
                                  f"{parent.size}")
    except InvalidArgument as e:
        err = str(e)
    except (TypeError, ValueError):
        err = "dist and parent must be numeric arrays (the global float distances and integer parents)"
    agree(comm, err)
    err = _check_vertices(dist, parent, root) or None
    tree = np.zeros(n, np.uint8)
    if err is None:
        w = g.weight if g.weight is not None else np.zeros(0, np.float32)
        err = K.sssp_check_edges(dist, parent, root, g.src, g.dst, w, g.directed, float(tol), tree) or None
    agree_valid(comm, err)
    tree = comm.allreduce(tree, op="max")
    need = parent != -1
    need[root] = False
    bad = np.flatnonzero(need & (tree < 2))
    if bad.size:
        v = int(bad[0])
        p = int(parent[v])
        if tree[v] == 0:
            err = f"the tree edge ({p}, {v}) of vertex {v} is not an input edge"
        else:
            err = (f"the tree edge ({p}, {v}) has no input edge of weight dist[{v}] - dist[{p}] = "
                   f"{dist[v] - dist[p]}")
    agree_valid(comm, err)

"""The distributed graph: a 1-D vertex partition balanced by edges, with
delegates for vertices of very high degree, and each rank's rows in CSR.

Partition. Rank p owns the vertices [bounds[p], bounds[p+1]). The boundaries
are cut from the prefix sum of the per-vertex work (its entries: degree, or
in-degree when directed) so that every rank holds about the same number of
entries, not vertices. A vertex whose degree exceeds ``delegate_degree``
(default: 1/64 of a rank's share; none on one rank) is a *hub*: its entries
are not kept with its owner but split over the ranks, each holding the hub's
neighbours that it owns (as the delegate technique for power-law graphs), so a
hub never unbalances a rank. Every rank knows the hub list; a hub's state
(visited, parent, distance, ...) is replicated and agreed per step by a small
allreduce. Boundaries are multiples of 64 when the graph is large enough that
this costs under 1/64 of a share, so frontier bitmaps concatenate by words.

Rows. Local row i < nlocal is vertex lo + i; row nlocal + j is hub j's
delegate row. A row lists the vertex's neighbours (directed graphs: its
in-neighbours) as global ids, sorted, duplicates merged (smallest weight
kept), self-loops dropped; ``raw`` keeps each row's input multiplicity (self-
loops and duplicates counted), which is what Graph500 counts as traversed
edges. ``transpose()`` gives, for a global vertex u, the local rows listing u.

Errors found on any rank (an id outside [0, n), mismatched arrays) reach every
rank as the same InvalidArgument (``agree``), so no rank is left waiting."""
import numpy as np

from baobab import InvalidArgument
from baobab_apps import _graph as K

MSG_BYTES = 1024


def agree(comm, error):
    """Every rank calls this with None or its error message; if any rank has one,
    every rank raises InvalidArgument naming the first such rank and its message."""
    flag = comm.allgather(np.array([0 if error is None else 1], np.int8)).reshape(-1)
    bad = np.flatnonzero(flag)
    if bad.size == 0:
        return
    root = int(bad[0])
    buf = np.zeros(MSG_BYTES, np.uint8)
    if comm.rank == root:
        raw = str(error).encode()[:MSG_BYTES]
        buf[:len(raw)] = np.frombuffer(raw, np.uint8)
    comm.bcast(buf, root=root)
    msg = bytes(buf).rstrip(b"\0").decode(errors="replace")
    raise InvalidArgument(msg if comm.size == 1 else f"rank {root}: {msg}")


def slice_of(total, rank, size):
    """The [first, last) range of `total` items that `rank` of `size` takes."""
    return total * rank // size, total * (rank + 1) // size


class DistGraph:
    """One rank's part of a distributed graph (see the module docstring); made by
    ``build``. Attributes: comm, n, directed, bounds (P + 1), lo, hi, nlocal,
    hubs (sorted global ids), nhubs, nrows, off, cols, w (float32), raw,
    deg (global degrees without self-loops, with multiplicity; in-degrees when
    directed), entries (this rank's stored entries), the input slice
    (src, dst, weight) this rank read or generated."""

    def __init__(self, comm, n, directed, bounds, hubs, off, cols, w, raw, deg, src, dst, weight):
        self.comm = comm
        self.n = int(n)
        self.directed = bool(directed)
        self.bounds = bounds
        self.lo = int(bounds[comm.rank])
        self.hi = int(bounds[comm.rank + 1])
        self.nlocal = self.hi - self.lo
        self.hubs = hubs
        self.nhubs = int(hubs.size)
        self.nrows = self.nlocal + self.nhubs
        self.off, self.cols, self.w, self.raw = off, cols, w, raw
        self.deg = deg
        self.src, self.dst, self.weight = src, dst, weight
        self.entries = int(cols.size)
        self.aligned = bool(np.all(bounds[:-1] % 64 == 0))
        self._t = None
        self._is_hub = None
        self.rowlen = np.diff(off)
        self.total = int(comm.allreduce(np.array([self.entries], np.int64))[0])
        # every hub's degree (its delegate rows summed over the ranks), known to all
        self.hub_degree = comm.allreduce(self.rowlen[self.nlocal:].copy()) if self.nhubs else \
            np.zeros(0, np.int64)

    # ---- layout ---------------------------------------------------------------

    def owner(self, v):
        """The rank owning vertex (or vertices) v."""
        return np.searchsorted(self.bounds, v, side="right") - 1

    def row_vertex(self):
        """Global vertex of each local row (owned rows, then hub delegate rows)."""
        return np.concatenate([np.arange(self.lo, self.hi, dtype=np.int64), self.hubs])

    def hub_rows(self, v):
        """Delegate row indices of hub ids v (which must be hubs)."""
        return self.nlocal + np.searchsorted(self.hubs, v)

    @property
    def is_hub(self):
        """uint8 per global vertex: 1 for hubs."""
        if self._is_hub is None:
            self._is_hub = np.zeros(self.n, np.uint8)
            self._is_hub[self.hubs] = 1
        return self._is_hub

    def transpose(self):
        """(coff, crow, cw): for global u, crow[coff[u]:coff[u+1]] are the local rows listing u."""
        if self._t is None:
            self._t = K.transpose(self.off, self.cols, self.w, self.n)
        return self._t

    def imbalance(self):
        """Stored entries per rank, max / mean (1.0 = perfectly balanced)."""
        e = self.comm.allgather(np.array([self.entries], np.int64)).reshape(-1)
        mean = e.mean()
        return float(e.max() / mean) if mean > 0 else 1.0

    def total_entries(self):
        """Stored entries over all ranks (each undirected edge twice)."""
        return self.total

    def out_degree(self):
        """Distinct out-neighbours of every vertex (global array; undirected: the degree
        without duplicates or self-loops)."""
        d = np.bincount(self.cols, minlength=self.n).astype(np.int64)
        return self.comm.allreduce(d)

    def gather(self, local, hub_values=None):
        """The global array (on every rank) of a per-owned-vertex array ``local``
        (length nlocal); ``hub_values`` (per hub, replicated), when given, is written
        at the hubs' positions."""
        local = np.ascontiguousarray(local[:self.nlocal])
        out, _ = self.comm.allgatherv(local, rows=np.diff(self.bounds))
        if hub_values is not None and self.nhubs:
            out[self.hubs] = hub_values
        return out


def _bounds(work, size, n):
    """P + 1 vertex boundaries cutting the prefix sum of `work` into equal parts;
    multiples of 64 when that costs little."""
    if size == 1:
        return np.array([0, n], np.int64)
    cum = np.cumsum(work)
    total = int(cum[-1]) if n else 0
    targets = np.array([total * k // size for k in range(1, size)], np.int64)
    cuts = np.searchsorted(cum, targets, side="right") if total else np.array(
        [n * k // size for k in range(1, size)], np.int64)
    if n >= 64 * 64 * size:
        cuts = (cuts + 32) // 64 * 64
    cuts = np.minimum(np.maximum.accumulate(cuts), n)
    return np.concatenate([[0], cuts, [n]]).astype(np.int64)


def build(comm, n, src, dst, weight=None, *, directed=False, delegate_degree=None):
    """Kernel 1: the distributed graph from each rank's slice of the edge list
    (any split of the list over the ranks; slices may be empty). ``weight``:
    float32 per edge (default 1). ``delegate_degree``: degree above which a vertex
    is a hub (default: a 64th of a rank's share of the entries; 0 = no hubs)."""
    err = None
    n = int(n)
    try:
        if n < 1:
            raise InvalidArgument(f"a graph needs at least one vertex, got n = {n}")
        src = np.ascontiguousarray(src, np.int64).reshape(-1)
        dst = np.ascontiguousarray(dst, np.int64).reshape(-1)
        if src.size != dst.size:
            raise InvalidArgument(f"{src.size} sources but {dst.size} destinations")
        if weight is not None:
            weight = np.ascontiguousarray(weight, np.float32).reshape(-1)
            if weight.size != src.size:
                raise InvalidArgument(f"{src.size} edges but {weight.size} weights")
            if weight.size and not (np.isfinite(weight).all() and weight.min() >= 0):
                raise InvalidArgument("weights must be finite and non-negative")
        for name, a in (("source", src), ("destination", dst)):
            if a.size and (a.min() < 0 or a.max() >= n):
                bad = a[(a < 0) | (a >= n)][0]
                raise InvalidArgument(f"edge {name} {bad} is not a vertex of a graph of {n} (ids 0..{n - 1})")
    except (InvalidArgument, ValueError, TypeError) as e:
        err = str(e)
    agree(comm, err)
    P = comm.size
    undirected = not directed
    deg = np.zeros(n, np.int64)
    K.degree_count(src, dst, undirected, True, deg)
    deg = comm.allreduce(deg)
    total = int(deg.sum())
    if delegate_degree is None:
        delegate_degree = max(1, total // (64 * P))
    if P > 1 and delegate_degree > 0:
        hubs = np.flatnonzero(deg > delegate_degree).astype(np.int64)
    else:
        hubs = np.zeros(0, np.int64)
    work = deg.copy()
    is_hub = np.zeros(n if hubs.size else 0, np.uint8)
    if hubs.size:
        is_hub[hubs] = 1
        work[hubs] = 0
        loop = src != dst
        s, d = src[loop], dst[loop]
        # a hub's entry (h -> v) is stored with v's owner: it is v's work
        extra = np.bincount(d[is_hub[s] == 1], minlength=n) if undirected else np.zeros(n, np.int64)
        extra = extra + np.bincount(s[is_hub[d] == 1], minlength=n)
        work += comm.allreduce(extra.astype(np.int64))
    bounds = _bounds(work, P, n)
    counts = np.zeros(P, np.int64)
    w_in = weight if weight is not None else np.zeros(0, np.float32)
    packed = K.route_entries(src, dst, w_in, undirected, bounds, is_hub, counts)
    recv, _ = comm.alltoallv(packed.reshape(-1, 3), counts)
    del packed
    lo, hi = int(bounds[comm.rank]), int(bounds[comm.rank + 1])
    raw = np.zeros(hi - lo + hubs.size, np.int64)
    off, cols, w = K.build_rows_packed(lo, hi - lo, is_hub, hubs, n, recv.reshape(-1), raw)
    return DistGraph(comm, n, directed, bounds, hubs, off, cols, w, raw, deg, src, dst, weight)

"""Distributed direction-optimising BFS (level-synchronous, Beamer's top-down /
bottom-up switching) over a DistGraph.

Per level: each rank advances its own rows -- top-down from the global frontier
list through the transpose (rows that list a frontier vertex), or bottom-up
(each unvisited row scans its list for a frontier vertex in the global bitmap)
-- then one allgather shares every rank's counts (new frontier size, its
edges, entries scanned) and hub candidates (the smallest parent wins; newly
reached hubs join the frontier on every rank), and one allgatherv exchanges
the new frontier: as a sparse id list or as bitmap words, whichever is
smaller. The
direction for the next level follows Beamer et al.: top-down -> bottom-up when
the frontier's edges exceed the unexplored edges / alpha (alpha = 15) and
bottom-up -> top-down when the frontier falls below n / beta (beta = 18).

Result: each rank's parent array over its owned vertices (root -> itself,
unreached -> -1); ``DistGraph.gather`` makes the global one."""
import numpy as np

from baobab_apps import _graph as K

NONE = np.iinfo(np.int64).max


class BFSStats:
    """Per-search record: levels, direction per level, frontier sizes, entries
    scanned, bytes exchanged (frontier), the time in the exchange."""

    def __init__(self):
        self.directions = []
        self.frontier = []
        self.scanned = 0
        self.bytes = 0

    @property
    def levels(self):
        return len(self.directions)


def bfs(g, root, *, alpha=15.0, beta=18.0, stats=None, direction="auto"):
    """Parents of this rank's owned vertices after a BFS from global vertex ``root``.
    ``direction``: 'auto' (direction-optimising), 'top-down' or 'bottom-up' (forced,
    for tests and measurements)."""
    comm, n, nl = g.comm, g.n, g.nlocal
    root = int(root)
    parent = np.full(g.nrows, -1, np.int64)
    if g.nhubs and g.is_hub[root]:
        parent[g.hub_rows(root)] = root
    if g.lo <= root < g.hi:
        parent[root - g.lo] = root
    coff = crow = None
    rowlen = g.rowlen
    bits = np.zeros((n + 63) >> 6, np.uint64)
    seg_words = (np.diff(g.bounds) + 63) >> 6
    seg = np.zeros(int(seg_words[comm.rank]), np.uint64)
    fids = np.array([root], np.int64)
    nf = 1
    have_bits = False
    mu = g.total  # entries not yet explored (both directions of every edge)
    td = direction != "bottom-up"
    meta = np.zeros(3 + g.nhubs, np.int64)
    while nf > 0:
        if stats is not None:
            stats.directions.append("td" if td else "bu")
            stats.frontier.append(nf)
        if td:
            if coff is None:
                coff, crow, _ = g.transpose()
            if fids is None:
                fids = K.bitmap_to_ids(bits, n)
            new, scanned = K.bfs_top_down(coff, crow, fids, parent)
        else:
            if not have_bits:
                K.ids_to_bitmap(fids, n, bits)
            new, scanned = K.bfs_bottom_up(g.off, g.cols, bits, parent)
        new_owned = new[new < nl]
        # one allgather per level: this rank's new frontier size, its edges, the entries scanned
        # and its hub candidates (the smallest wins); hubs join the frontier on every rank at once
        meta[0] = new_owned.size
        meta[1] = rowlen[new_owned].sum() if new_owned.size else 0
        meta[2] = scanned
        newly = None
        if g.nhubs:
            hp = parent[nl:]
            found_here = np.zeros(g.nhubs, bool)
            found_here[new[new >= nl] - nl] = True
            unvisited_before = (hp == -1) | found_here
            meta[3:] = np.where(hp >= 0, hp, NONE)
        allm = comm.allgather(meta)
        tot = allm[:, :3].sum(axis=0)
        nf_next, mf_next = int(tot[0]), int(tot[1])
        hub_ids = None
        if g.nhubs:
            agreed = allm[:, 3:].min(axis=0)
            newly = (agreed != NONE) & unvisited_before
            parent[nl:] = np.where(agreed != NONE, agreed, -1)
            hub_ids = g.hubs[newly]
            if hub_ids.size:
                nf_next += hub_ids.size
                mf_next += int(g.hub_degree[newly].sum())
                mine = hub_ids[(hub_ids >= g.lo) & (hub_ids < g.hi)]
                parent[mine - g.lo] = agreed[np.searchsorted(g.hubs, mine)]
        if stats is not None:
            stats.scanned += int(tot[2])
        if nf_next == 0:
            break
        mu -= mf_next
        if direction == "auto":
            if td and mf_next > mu / alpha and nf_next > nf:
                td = False
            elif not td and nf_next < n / beta and nf_next < nf:
                td = True
        nf = nf_next
        # exchange the new frontier, as ids or as bitmap words, whichever is smaller
        if g.aligned and nf * 64 > n:
            K.ids_to_bitmap(np.ascontiguousarray(new_owned), g.nlocal, seg)
            allw, _ = comm.allgatherv(seg, rows=seg_words)
            bits[:allw.size] = allw  # aligned boundaries: segments concatenate
            bits[allw.size:] = 0
            if hub_ids is not None and hub_ids.size:
                np.bitwise_or.at(bits, hub_ids >> 6, np.left_shift(np.uint64(1), (hub_ids & 63).astype(np.uint64)))
            have_bits, fids = True, None
            if stats is not None:
                stats.bytes += allw.nbytes
        else:
            fids, _ = comm.allgatherv(new_owned + g.lo, rows=allm[:, 0])
            if hub_ids is not None and hub_ids.size:
                fids = np.concatenate([fids, hub_ids])
            have_bits = False
            if stats is not None:
                stats.bytes += fids.nbytes
    return parent[:nl]


def traversed_edges(g, parent_local):
    """Input edges (with duplicates and self-loops, as Graph500 counts them) inside the
    searched component: half the raw entries of the reached rows, summed over ranks."""
    reached = np.zeros(g.nrows, bool)
    reached[:g.nlocal] = parent_local >= 0
    raw = int(g.raw[:g.nlocal][reached[:g.nlocal]].sum())
    if g.nhubs:
        # a hub's delegate rows are on every rank; whether it was reached is known to its owner
        hub_reached = np.zeros(g.nhubs, np.int64)
        mine = (g.hubs >= g.lo) & (g.hubs < g.hi)
        hub_reached[mine] = parent_local[g.hubs[mine] - g.lo] >= 0
        hub_reached = g.comm.allreduce(hub_reached, op="max")
        raw += int(g.raw[g.nlocal:][hub_reached > 0].sum())
    return int(g.comm.allreduce(np.array([raw], np.int64))[0]) // 2

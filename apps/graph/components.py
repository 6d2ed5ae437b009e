"""Distributed connected components over a DistGraph (Shiloach-Vishkin style:
hooking and full shortcutting on a replicated label array).

Every rank holds the label array of all n vertices (the root of each vertex's
tree; initially the vertex itself). A round: each rank scans its rows
(AnalyticsRows.cc_hook, C++) and, for every entry (v, u) whose roots differ,
proposes the smaller root as the new parent of the larger one; one allreduce
(min) over the n proposals; then every rank applies the same hooks (each root
under its smallest proposal) and compresses every label to its root in one
ascending pass (labels never exceed their vertex), so the arrays stay equal on
all ranks without another exchange. Rounds stop when no root is hooked. Roots
only ever hook under smaller ids, so the final label is the smallest vertex id
of the component: the same answer on any number of ranks.

Directed graphs: weakly connected components. Rows hold in-neighbours; the
hook of each entry goes both ways (the larger root under the smaller, whichever
end it is), which is propagation along the rows and their transpose at once.
Hub delegate rows are rows like any other (the state is replicated), so hubs
need nothing more."""
import numpy as np

from baobab_apps import _graph as K

from pagerank import rows_of

INF = np.iinfo(np.int64).max


class CCStats:
    """Per-run record: rounds (hooking rounds, the last finding nothing to hook)."""

    def __init__(self):
        self.rounds = 0


def component_labels(g, stats=None):
    """The component label (smallest vertex id of its component) of every vertex,
    int64[n], the same on every rank."""
    comm, n = g.comm, g.n
    rows = rows_of(g)
    lab = np.arange(n, dtype=np.int64)
    prop = np.empty(n, np.int64)
    while True:
        prop.fill(INF)
        rows.cc_hook(lab, prop)
        if comm.size > 1:
            prop = comm.allreduce(prop, op="min")
        hooked = K.cc_apply(lab, prop)
        if stats is not None:
            stats.rounds += 1
        if hooked == 0:
            return lab


def connected_components(g, stats=None):
    """The component label of this rank's owned vertices (int64[nlocal]): the
    smallest vertex id in the vertex's (weakly) connected component."""
    return component_labels(g, stats)[g.lo:g.hi].copy()


def count_components(g, labels_local=None):
    """The number of (weakly) connected components (isolated vertices count), from
    this rank's labels (connected_components) or computed afresh."""
    if labels_local is None:
        labels_local = connected_components(g)
    roots = np.count_nonzero(np.asarray(labels_local) == np.arange(g.lo, g.hi))
    return int(g.comm.allreduce(np.array([roots], np.int64))[0])




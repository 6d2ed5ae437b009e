"""PageRank, connected components, label propagation, Louvain and modularity
(apps/graph) on P ranks against networkx / scipy and against the 1-rank run.

    mpiexec -n P python graph_analytics.py          # the checks below
    mpiexec -n P python graph_analytics.py errors   # bad input: the same error on every rank

Graphs: karate club, les miserables (weighted), networkx atlas graphs (with
isolated vertices), a random gnp graph, a planted-partition graph, a graph of
many small components and isolated vertices, an edgeless graph, one edge (fewer
vertices than ranks), a directed random graph, a Kronecker SCALE 10 graph
unweighted and with the generator's weights; each built with the default
delegate degree and with delegate_degree=4 (hubs, on P > 1). Every rank also builds the graph on
COMM_SELF (the 1-rank run) as the reference for the same-answer checks.
Checks: PageRank = networkx.pagerank (unweighted, tol 1e-13) to 1e-10 and the
1-rank run to 1e-12; component labels = the smallest vertex id of the scipy
component (weak for directed); label propagation and Louvain labels identical
to the 1-rank run, Louvain modularity >= 0.98 of the mean of networkx's
louvain_communities over seeds 0..2 (also with the parallel first level forced,
on karate, les miserables, gnp, the planted partition and Kronecker);
modularity() = networkx's modularity of the same partition to 1e-12.
Prints one "metric ..." line per graph and "OK graph_analytics P=P" on rank 0."""
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sps
from mpi4py import MPI
from scipy.sparse.csgraph import connected_components as sp_cc

import baobab

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "apps" / "graph"))

import community  # noqa: E402
import components  # noqa: E402
import dgraph  # noqa: E402
import kronecker  # noqa: E402
import pagerank  # noqa: E402

world = baobab.init()
single = baobab.Communicator(MPI.COMM_SELF)
P, rank = world.size, world.rank


def check(ok, what):
    if not ok:
        sys.stdout.write(f"FAIL rank {rank} P={P}: {what}\n")
        sys.stdout.flush()
        world_mpi = MPI.COMM_WORLD
        world_mpi.Abort(1)


def kron_graph(weighted):
    """The Kronecker SCALE 10 graph as networkx builds it from the generator's list
    (self-loops dropped, duplicates merged keeping the smallest weight, as the rows
    do), and the list itself (src, dst, weight or None)."""
    n = 1 << 10
    m = 16 * n
    s, d, w = kronecker.kronecker_slice(10, 16, 7, 0, m, weights=weighted)
    G = nx.Graph()
    G.add_nodes_from(range(n))
    keep = s != d
    a, b = np.minimum(s, d)[keep], np.maximum(s, d)[keep]
    if weighted:
        x = w[keep].astype(np.float64)
        order = np.lexsort((x, b, a))
        a, b, x = a[order], b[order], x[order]
        first = np.ones(a.size, bool)
        first[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        G.add_weighted_edges_from(zip(a[first].tolist(), b[first].tolist(), x[first].tolist()))
    else:
        G.add_edges_from(zip(a.tolist(), b.tolist()))
    return G, s, d, w


def many_components():
    G = nx.Graph()
    G.add_nodes_from(range(400))
    rng = np.random.default_rng(4)
    for base in range(0, 300, 15):  # 20 small random pieces; the last 100 vertices isolated
        for _ in range(14):
            a, b = rng.integers(base, base + 15, 2)
            if a != b:
                G.add_edge(int(a), int(b))
    return G


def graphs():
    """(name, networkx graph, weighted, directed, whether to run Louvain with its parallel first level forced)."""
    yield "karate", nx.karate_club_graph(), False, False, True
    yield "lesmis", nx.convert_node_labels_to_integers(nx.les_miserables_graph()), True, False, True
    for i in (6, 52, 208, 700, 1100, 1252):
        yield f"atlas{i}", nx.graph_atlas(i), False, False, False
    yield "gnp", nx.gnp_random_graph(150, 0.04, seed=3), False, False, True
    yield "planted", nx.planted_partition_graph(6, 30, 0.35, 0.02, seed=5), False, False, True
    yield "pieces", many_components(), False, False, False
    yield "edgeless", nx.empty_graph(5), False, False, False
    yield "one edge", nx.path_graph(2), False, False, False  # fewer vertices than ranks
    yield "digraph", nx.gnp_random_graph(120, 0.04, seed=9, directed=True), False, True, False
    yield "kron10", None, False, False, True
    yield "kron10w", None, True, False, True  # generator weights: 24-bit float32 in [0, 1)


def edges_of(G, weighted):
    E = np.array(list(G.edges()), np.int64).reshape(-1, 2)
    W = np.array([G[u][v]["weight"] for u, v in G.edges()], np.float32) if weighted else None
    return E, W


def build(comm, n, E, W, directed, dd):
    lo, hi = dgraph.slice_of(len(E), comm.rank, comm.size)
    return dgraph.build(comm, n, E[lo:hi, 0], E[lo:hi, 1], None if W is None else W[lo:hi], directed=directed,
                        delegate_degree=dd)


def partition(labels):
    return [set(np.flatnonzero(labels == c).tolist()) for c in np.unique(labels)]


def run_all(comm, G, n, E, W, directed, forced):
    """Every kernel's global answer on communicator comm."""
    out = {}
    for dd in (None, 4):
        g = build(comm, n, E, W, directed, dd)
        r = {"hubs": g.nhubs}
        st = pagerank.PageRankStats()
        r["pr"] = pagerank.gather_pagerank(g, pagerank.pagerank(g, tol=1e-13, max_iter=1000, stats=st))
        r["pr_iter"] = st.iterations
        r["cc"] = g.gather(components.connected_components(g))
        r["ncc"] = components.count_components(g)
        if not directed:
            r["lpa"] = g.gather(community.label_propagation(g, seed=1))
            lab, q = community.louvain(g, seed=0)
            r["lv"], r["lvq"] = g.gather(lab), q
            if forced:
                lab2, q2 = community.louvain(g, seed=3, parallel_min_entries=0, alternate=True, independent=True,
                                             buckets=2, max_sweeps=20)
                r["lvo"], r["lvoq"] = g.gather(lab2), q2
                lab, q = community.louvain(g, seed=0, parallel_min_entries=0)
                r["lvp"], r["lvpq"] = g.gather(lab), q
            r["mod_lv"] = community.modularity(g, lab)
            r["mod_lpa"] = community.modularity(g, r["lpa"][g.lo:g.hi])
            rnd = np.random.default_rng(1).integers(0, 5, n)
            r["rnd"] = rnd
            r["mod_rnd"] = community.modularity(g, rnd[g.lo:g.hi], resolution=0.7)
        out[dd] = r
    return out


def errors():
    """Bad input raises the same InvalidArgument on every rank; PageRank that cannot
    converge raises PageRankNotConverged."""
    G = nx.karate_club_graph()
    E, _ = edges_of(G, False)
    g = build(world, 34, E, None, False, None)
    dg = build(world, 34, E, None, True, None)
    cases = [
        ("damping", lambda: pagerank.pagerank(g, damping=1.5), "damping"),
        ("max_iter", lambda: pagerank.pagerank(g, max_iter=0), "max_iter"),
        ("directed louvain", lambda: community.louvain(dg), "undirected"),
        ("directed lpa", lambda: community.label_propagation(dg), "undirected"),
        ("resolution", lambda: community.louvain(g, resolution=-1), "resolution"),
        ("labels", lambda: community.modularity(g, np.zeros(g.nlocal + 1, np.int64)), "one entry per owned"),
    ]
    for what, fn, text in cases:
        try:
            fn()
        except baobab.InvalidArgument as e:
            check(text in str(e), f"{what}: message {e!r} does not name {text!r}")
        else:
            check(False, f"{what}: no InvalidArgument")
    try:
        pagerank.pagerank(g, tol=1e-15, max_iter=3)
    except pagerank.PageRankNotConverged as e:
        check(e.max_iter == 3 and "3 iterations" in str(e), f"PageRankNotConverged says {e}")
    else:
        check(False, "PageRank converged in 3 iterations at tol 1e-15")
    if rank == 0:
        sys.stdout.write(f"OK graph_analytics errors P={P}\n")
        sys.stdout.flush()


if len(sys.argv) > 1 and sys.argv[1] == "errors":
    errors()
    sys.exit(0)

for name, G, weighted, directed, forced in graphs():
    if name.startswith("kron10"):
        G, ks, kd, W = kron_graph(weighted)
        n = G.number_of_nodes()
        E = np.stack([ks, kd], 1)  # the generator's list, self-loops and duplicates included
    else:
        n = G.number_of_nodes()
        E, W = edges_of(G, weighted)
    mine = run_all(world, G, n, E, W, directed, forced)
    ref = run_all(single, G, n, E, W, directed, forced) if P > 1 else mine
    wt = "weight" if weighted else None
    # PageRank against networkx
    nxpr = nx.pagerank(G, alpha=0.85, tol=1e-13, max_iter=1000, weight=None)
    nxpr = np.array([nxpr[v] for v in range(n)])
    # components against scipy (weak for directed)
    A = nx.to_scipy_sparse_array(G, nodelist=range(n), weight=None, format="csr")
    ncomp, sl = sp_cc(sps.csr_matrix(A), directed=directed, connection="weak")
    first = np.full(ncomp, n, np.int64)
    np.minimum.at(first, sl, np.arange(n))
    want_cc = first[sl]
    line = [f"metric {name} n={n}"]
    for dd, r in mine.items():
        tag = f"{name} dd={dd} hubs={r['hubs']}"
        d = float(np.abs(r["pr"] - nxpr).max())
        check(d <= 1e-10, f"{tag}: PageRank differs from networkx by {d:.3g}")
        d1 = float(np.abs(r["pr"] - ref[dd]["pr"]).max())
        check(d1 <= 1e-12, f"{tag}: PageRank differs from the 1-rank run by {d1:.3g}")
        check(np.array_equal(r["cc"], want_cc), f"{tag}: components differ from scipy")
        check(r["ncc"] == ncomp, f"{tag}: {r['ncc']} components, scipy {ncomp}")
        line.append(f"hubs={r['hubs']} pr_diff={d:.1e} pr_iter={r['pr_iter']} cc={ncomp}")
        if directed:
            continue
        check(np.array_equal(r["lpa"], ref[dd]["lpa"]), f"{tag}: label propagation differs from the 1-rank run")
        check(np.array_equal(r["lv"], ref[dd]["lv"]) and r["lvq"] == ref[dd]["lvq"],
              f"{tag}: Louvain differs from the 1-rank run")
        if G.number_of_edges() == 0:
            check(r["lvq"] == 0 and r["mod_lv"] == 0 and r["mod_rnd"] == 0 and np.array_equal(r["lv"], np.arange(n)),
                  f"{tag}: an edgeless graph has singleton communities and modularity 0")
            continue
        nxq_lv = nx.community.modularity(G, partition(r["lv"]), weight=wt)
        check(abs(r["lvq"] - nxq_lv) <= 1e-12, f"{tag}: Louvain's modularity {r['lvq']} but networkx {nxq_lv}")
        for key, labels, res in (("mod_lv", r["lvp"] if forced else r["lv"], 1.0),
                                 ("mod_lpa", r["lpa"], 1.0), ("mod_rnd", r["rnd"], 0.7)):
            want = nx.community.modularity(G, partition(labels), weight=wt, resolution=res)
            check(abs(r[key] - want) <= 1e-12, f"{tag}: modularity {key} {r[key]} but networkx {want}")
        if G.number_of_edges() >= 20 and name != "atlas1252":
            nxq = np.mean([nx.community.modularity(G, nx.community.louvain_communities(G, seed=s, weight=wt),
                                                   weight=wt) for s in range(3)])
            check(r["lvq"] >= 0.98 * nxq, f"{tag}: Louvain modularity {r['lvq']} < 0.98 x networkx's {nxq}")
            line.append(f"louvain={r['lvq']:.4f} nx_mean={nxq:.4f} ratio={r['lvq'] / nxq:.3f}")
            if forced:
                check(np.array_equal(r["lvp"], ref[dd]["lvp"]) and r["lvpq"] == ref[dd]["lvpq"],
                      f"{tag}: Louvain (parallel level) differs from the 1-rank run")
                check(np.array_equal(r["lvo"], ref[dd]["lvo"]) and r["lvoq"] == ref[dd]["lvoq"],
                      f"{tag}: Louvain (alternating, independent sets) differs from the 1-rank run")
                check(r["lvpq"] >= 0.98 * nxq,
                      f"{tag}: Louvain (parallel level) modularity {r['lvpq']} < 0.98 x networkx's {nxq}")
                line.append(f"parallel_ratio={r['lvpq'] / nxq:.3f}")
        line.append(f"lpa_modularity={r['mod_lpa']:.4f}")
    if rank == 0:
        sys.stdout.write(" ".join(line) + "\n")
        sys.stdout.flush()

if rank == 0:
    sys.stdout.write(f"OK graph_analytics P={P}\n")
    sys.stdout.flush()

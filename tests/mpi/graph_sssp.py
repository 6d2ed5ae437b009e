"""Delta-stepping SSSP (apps/graph/sssp.py) against scipy's Dijkstra and the 1-rank run.

    mpiexec -n P python graph_sssp.py DELEGATE_DEGREE

Graphs: networkx's karate club (random float32 weights, and without weights: 1), les miserables (its
weights), graph atlas graphs 10..200 step 19 (random weights; some disconnected),
a gnp graph with a tenth of the weights 0, a directed gnp graph, Kronecker
SCALE 10 (its weights). Each graph's edge list is split over the P ranks and
built with DELEGATE_DEGREE (0: no hubs; small: many hubs); from two roots (vertex
0 and the vertex of largest degree) the gathered distances must equal scipy's
to 1e-6 relative (the unreached ones inf in both) and the 1-rank run (on
COMM_SELF) to 1e-12, with the default delta, 0.01 and (graphs of at most 400
vertices) 1e-6 (distances spanning over 2^16 bucket widths: the far buckets),
and validate must pass. validate must reject, on every rank with the same message, a wrong
distance, a tree edge not in the graph, a tree edge of the wrong weight and a
cycle; sssp must refuse a bad root and delta on every rank. Prints
"OK sssp P=.. dd=.." on rank 0."""
import sys
import zlib
from pathlib import Path

import numpy as np
import networkx as nx
import scipy.sparse as sp
from mpi4py import MPI
from scipy.sparse.csgraph import dijkstra

import baobab

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "apps" / "graph"))

import dgraph  # noqa: E402
import kronecker  # noqa: E402
import sssp  # noqa: E402

dd = int(sys.argv[1])
comm = baobab.init()
self_comm = baobab.Communicator(MPI.COMM_SELF)
rng = np.random.default_rng(7)


def weights(m, zeros=0.0):
    w = rng.uniform(0.05, 1.0, m).astype(np.float32)
    w[rng.random(m) < zeros] = 0
    return w


def from_nx(G, w=None, attr=None):
    ids = {v: i for i, v in enumerate(G.nodes())}
    e = list(G.edges(data=True))
    u = np.array([ids[a] for a, _, _ in e], np.int64)
    v = np.array([ids[b] for _, b, _ in e], np.int64)
    if attr is not None:
        w = np.array([d[attr] for _, _, d in e], np.float32)
    return G.number_of_nodes(), u, v, (weights(len(e)) if w is None else w)


def graphs():
    yield "karate", from_nx(nx.karate_club_graph()), False
    n, u, v, _ = from_nx(nx.karate_club_graph())
    yield "unweighted", (n, u, v, None), False
    yield "lesmis", from_nx(nx.les_miserables_graph(), attr="weight"), False
    for i in range(10, 201, 19):
        yield f"atlas{i}", from_nx(nx.graph_atlas(i)), False
    G = nx.gnp_random_graph(300, 0.02, seed=3)
    yield "gnp", from_nx(G, weights(G.number_of_edges(), zeros=0.1)), False
    D = nx.gnp_random_graph(200, 0.02, seed=4, directed=True)
    yield "directed", from_nx(D), True
    n, s, d, w = kronecker.kronecker(self_comm, 10, 16, 5)
    yield "kron10", (n, s, d, w), False


def reference(n, u, v, w, directed, root):
    """scipy Dijkstra over the edge list: self-loops dropped, duplicates at their smallest
    weight, zero weights as 1e-300 (scipy reads an explicit 0 as no edge)."""
    keep = u != v
    u, v, w = u[keep], v[keep], np.maximum(w[keep].astype(np.float64), 1e-300)
    key = u * n + v
    order = np.lexsort((w, key))
    key, w = key[order], w[order]
    first = np.r_[True, key[1:] != key[:-1]] if key.size else np.zeros(0, bool)
    A = sp.csr_matrix((w[first], (key[first] // n, key[first] % n)), shape=(n, n))
    return dijkstra(A, directed=directed, indices=root)


def rel_err(a, b):
    fin = np.isfinite(b)
    assert (np.isfinite(a) == fin).all(), "reached sets differ"
    if not fin.any():
        return 0.0
    return float(np.abs(a[fin] - b[fin]).max() / max(np.abs(b[fin]).max(), 1e-300))


def rejects(g, dist, parent, root, words):
    """validate must raise ValidationError with one of `words` in it, the same message on every rank."""
    try:
        sssp.validate(g, dist, parent, root)
    except sssp.ValidationError as e:
        msg = str(e)
    else:
        raise AssertionError(f"validate accepted a corrupted result ({words})")
    assert any(x in msg for x in words), msg
    h = comm.allgather(np.array([zlib.crc32(msg.encode())], np.int64)).reshape(-1)
    assert (h == h[0]).all(), "ranks disagree on the message"
    return msg


def corruptions(g, dist, parent, root, u, v):
    """Each corruption on a copy of a valid result must be rejected."""
    nbr = [set() for _ in range(g.n)]  # in-neighbours (undirected: neighbours)
    for a, b in zip(u.tolist(), v.tolist()):
        nbr[b].add(a)
        if not g.directed:
            nbr[a].add(b)
    reached = np.flatnonzero((parent >= 0) & (np.arange(g.n) != root))
    # a wrong distance: a reached vertex made shorter
    x = int(reached[np.argmax(dist[reached])])
    d2 = dist.copy()
    d2[x] *= 0.5
    rejects(g, d2, parent, root, ["weight", "shortens"])
    # a tree edge not in the graph: a vertex not adjacent to the root hung from it
    x = next(int(y) for y in reached if root not in nbr[int(y)])
    p2 = parent.copy()
    p2[x] = root
    rejects(g, dist, p2, root, ["not an input edge"])
    # a tree edge of the wrong weight: another neighbour, nearer the root, whose edge is not tight
    found = False
    for y in reached:
        y = int(y)
        for z in nbr[y]:
            if z != parent[y] and parent[z] >= 0 and dist[z] < dist[y] - 1e-3:
                p2 = parent.copy()
                p2[y] = z
                try:
                    sssp.validate(g, dist, p2, root)
                    tight = True
                except sssp.ValidationError as e:
                    tight = False
                    assert "has no input edge of weight" in str(e), str(e)
                if not tight:
                    found = True
                    break
        if found:
            break
    assert found, "no non-tight edge to test"
    # a cycle: a vertex's parent set to its own child
    child = next(int(c) for c in reached if int(parent[c]) != root)
    p2 = parent.copy()
    p2[int(parent[child])] = child
    rejects(g, dist, p2, root, ["cycle"])
    # unreached but given a distance; the root not at distance 0
    p2 = parent.copy()
    p2[x] = -1
    rejects(g, dist, p2, root, ["has no parent"])
    d2 = dist.copy()
    d2[root] = 1.0
    rejects(g, d2, parent, root, ["the root"])


def bad_input(g):
    calls = [(sssp.sssp, {"root": g.n}, "not a vertex"), (sssp.sssp, {"root": "0"}, "integer"),
             (sssp.sssp, {"root": 0, "delta": 0.0}, "delta"), (sssp.sssp, {"root": 0, "delta": float("nan")}, "delta"),
             (sssp.validate, {"dist": np.zeros(g.n - 1), "parent": np.zeros(g.n, np.int64), "root": 0}, "entries")]
    for fn, kw, word in calls:
        try:
            fn(g, **kw)
        except baobab.InvalidArgument as e:
            msg = str(e)
        else:
            raise AssertionError(f"{fn.__name__} accepted {kw}")
        assert word in msg, msg
        h = comm.allgather(np.array([zlib.crc32(msg.encode())], np.int64)).reshape(-1)
        assert (h == h[0]).all(), "ranks disagree on the message"


checked = 0
for name, (n, u, v, w), directed in graphs():
    m = u.size
    f, l = dgraph.slice_of(m, comm.rank, comm.size)
    g = dgraph.build(comm, n, u[f:l], v[f:l], None if w is None else w[f:l], directed=directed,
                     delegate_degree=dd)
    if w is None:
        w = np.ones(m, np.float32)
    g1 = dgraph.build(self_comm, n, u, v, w, directed=directed)
    deg = g.deg
    roots = sorted({0, int(np.argmax(deg))})
    for root in roots:
        for delta in (None, 0.01, 1e-6) if n <= 400 else (None, 0.01):
            stats = sssp.SSSPStats()
            dl, pl = sssp.sssp(g, root, delta=delta, stats=stats)
            dist, parent = g.gather(dl), g.gather(pl)
            sssp.validate(g, dist, parent, root)
            d1, p1 = sssp.sssp(g1, root, delta=delta)
            ref = reference(n, u, v, w, directed, root)
            e_ref, e_one = rel_err(dist, ref), rel_err(dist, d1)
            assert e_ref <= 1e-6, f"{name} root {root} delta {delta}: {e_ref} from scipy"
            assert e_one <= 1e-12, f"{name} root {root} delta {delta}: {e_one} from the 1-rank run"
            assert parent[root] == root and dist[root] == 0
            checked += 1
    if name in ("gnp", "directed", "kron10"):
        root = int(np.argmax(deg))
        dl, pl = sssp.sssp(g, root)
        corruptions(g, g.gather(dl), g.gather(pl), root, u, v)
    if name == "karate":
        bad_input(g)
        assert g.nhubs > 0 or dd == 0 or comm.size == 1
if comm.rank == 0:
    print(f"OK sssp P={comm.size} dd={dd} searches={checked}", flush=True)

"""Graph app (apps/graph) on P ranks: generator, partition, BFS against scipy.

    mpiexec -n P python graph_bfs.py

(1) The Kronecker edge list made in parallel equals the one a single process
makes; (2) edge imbalance <= 1.05 on Kronecker SCALE 16; (3) BFS levels equal
scipy.sparse.csgraph's exactly, and every parent array passes the Graph500
validation, on karate club, les miserables, graph atlas graphs, a random graph
with isolated vertices, a directed random graph and Kronecker SCALE 10 and 13,
with and without delegates (hubs), from several roots, in each direction mode.
Prints "OK graph bfs P" on rank 0."""
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import scipy.sparse as sp
from mpi4py import MPI
from scipy.sparse.csgraph import shortest_path

import baobab

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "apps" / "graph"))

import bfs  # noqa: E402
import dgraph  # noqa: E402
import graph500  # noqa: E402
import kronecker  # noqa: E402

comm = baobab.Communicator(MPI.COMM_WORLD)
P, rank = comm.size, comm.rank


def fail(msg):
    sys.stdout.write(f"FAIL rank {rank}: {msg}\n")
    sys.stdout.flush()
    comm.abort(msg)
    sys.exit(1)


# (1) generator: the slices of P ranks concatenate to the 1-process list
n, s, d, w = kronecker.kronecker(comm, 11, 16, 7)
S, _ = comm.allgatherv(s)
D, _ = comm.allgatherv(d)
W, _ = comm.allgatherv(w)
s1, d1, w1 = kronecker.kronecker_slice(11, 16, 7, 0, 16 << 11)
if not (np.array_equal(S, s1) and np.array_equal(D, d1) and np.array_equal(W, w1)):
    fail("the parallel Kronecker edge list differs from the serial one")

# (2) edge balance on Kronecker SCALE 16
n, s, d, w = kronecker.kronecker(comm, 16, 16, 2)
g = dgraph.build(comm, n, s, d, w)
imb = g.imbalance()
if imb > 1.05:
    fail(f"edge imbalance {imb:.4f} > 1.05 at SCALE 16")


def edges_of(G):
    e = np.array(list(G.edges()), np.int64).reshape(-1, 2)
    return G.number_of_nodes(), e[:, 0].copy(), e[:, 1].copy()


def my_slice(m):
    return dgraph.slice_of(m, rank, P)


def check(name, n, src, dst, directed=False, roots=None, delegate_degree=None, modes=("auto",)):
    first, last = my_slice(src.size)
    g = dgraph.build(comm, n, src[first:last], dst[first:last], directed=directed,
                     delegate_degree=delegate_degree)
    A = sp.coo_matrix((np.ones(src.size), (src, dst)), shape=(n, n)).tocsr()
    if not directed:
        A = A + A.T
    deg = np.asarray((A != 0).sum(axis=1)).ravel()
    if roots is None:
        roots = kronecker.search_keys(5, deg, 4)
    for root in roots:
        ref = shortest_path(A, directed=directed, indices=int(root), unweighted=True)
        ref = np.where(np.isinf(ref), -1, ref).astype(np.int64)
        for mode in modes:
            parent = g.gather(bfs.bfs(g, int(root), direction=mode))
            lv = np.full(n, -1, np.int64)
            msg = kronecker.K.bfs_levels(parent, int(root), lv)
            if msg:
                fail(f"{name} root {root} {mode}: {msg}")
            if not np.array_equal(lv, ref):
                bad = np.flatnonzero(lv != ref)[:5]
                fail(f"{name} root {root} {mode}: levels differ from scipy at {bad.tolist()}: "
                     f"{lv[bad].tolist()} vs {ref[bad].tolist()}")
            if not directed:
                graph500.validate_bfs(g, parent, int(root))
    return g


modes = ("auto", "top-down", "bottom-up")
check("karate", *edges_of(nx.karate_club_graph()), modes=modes)
check("karate hubs", *edges_of(nx.karate_club_graph()), delegate_degree=4, modes=modes)
lm = nx.convert_node_labels_to_integers(nx.les_miserables_graph())
check("les miserables", *edges_of(lm), delegate_degree=6)
for i in (20, 150, 500, 1000, 1200):
    G = nx.graph_atlas(i)
    if G.number_of_edges():
        check(f"atlas {i}", *edges_of(G), roots=range(G.number_of_nodes()), modes=modes)
rng = np.random.default_rng(11)
G = nx.gnp_random_graph(300, 0.006, seed=3)  # several components and isolated vertices
n0, s0, d0 = edges_of(G)
check("gnp", n0, s0, d0, roots=[0, 1, 2, 5, 150], delegate_degree=3, modes=modes)
Gd = nx.gnp_random_graph(200, 0.02, seed=4, directed=True)
check("directed gnp", *edges_of(Gd), directed=True, roots=[0, 7, 33], modes=modes)
Gd = nx.gnp_random_graph(200, 0.02, seed=4, directed=True)
check("directed gnp hubs", *edges_of(Gd), directed=True, roots=[0, 7], delegate_degree=3)
for scale, dd in ((10, None), (10, 16), (13, None), (13, 64)):
    s, d, _ = kronecker.kronecker_slice(scale, 16, 2, 0, 16 << scale, weights=False)
    g = check(f"kronecker {scale} dd={dd}", 1 << scale, s, d, delegate_degree=dd, modes=("auto", "bottom-up"))
    if dd is not None and P > 1 and g.nhubs == 0:
        fail("delegate_degree=16 gave no hubs")
if rank == 0:
    print(f"OK graph bfs {P} imbalance {imb:.4f}", flush=True)

"""The Graph500 BFS validator (apps/graph/graph500.py) rejects corrupted
parent arrays, on every rank with the same message, and accepts the true one.

    mpiexec -n P python graph_validate.py

Corruptions of a correct BFS tree on a Kronecker SCALE 9 graph: a wrong parent
(a vertex whose parent is not its neighbour), a level jump (a vertex re-parented
to a reached neighbour two levels up ... made so that the edge check sees a
level difference of two), a missing vertex (a reached vertex marked unreached),
a cycle (two vertices parents of each other), the root not its own parent, and
a parent id out of range. Prints "OK graph validate P" on rank 0."""
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

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


n, s, d, w = kronecker.kronecker(comm, 9, 16, 5)
g = dgraph.build(comm, n, s, d, w)
root = int(kronecker.search_keys(1, g.deg, 1)[0])
parent = g.gather(bfs.bfs(g, root))
level = graph500.validate_bfs(g, parent, root)
S, _ = comm.allgatherv(s)
D, _ = comm.allgatherv(d)
adj = [set() for _ in range(n)]
for u, v in zip(S.tolist(), D.tolist()):
    adj[u].add(v)
    adj[v].add(u)
reached = np.flatnonzero(level >= 1)


def expect(name, p, words):
    try:
        graph500.validate_bfs(g, p, root)
    except graph500.ValidationError as e:
        msg = str(e)
        if not all(wd in msg for wd in words):
            fail(f"{name}: message {msg!r} lacks {words}")
        return msg
    fail(f"{name}: the validator accepted a corrupted parent array")


# a wrong parent: a reached vertex's parent set to a reached vertex of the same level that is no neighbour
lv2 = [v for v in reached if level[v] == 2]
v = lv2[0]
cand = [u for u in np.flatnonzero(level == 1) if u not in adj[v]]
p = parent.copy()
p[v] = cand[0]
expect("wrong parent", p, ["not an input edge"])
# a level jump: a level-3 vertex re-parented to a level-2 vertex that is its neighbour gives level 3 still;
# re-parent a level-1 vertex's child chain: make a level-2 vertex the child of a level-3 neighbour
lv3 = set(np.flatnonzero(level == 3).tolist())
pairs = [(a, b) for a in lv2 for b in adj[a] if b in lv3 and parent[b] != a]
a, b = pairs[0]
p = parent.copy()
p[a] = b  # a (level 2) now hangs below b (level 3): level 4, while a keeps a level-1 neighbour
expect("level jump", p, ["differ by more than one"])
# a missing vertex: a reached leaf marked unreached
children = np.bincount(parent[parent >= 0], minlength=n)
leaf = [x for x in reached if children[x] == 0 or (children[x] == 1 and parent[x] == x)][0]
p = parent.copy()
p[leaf] = -1
expect("missing vertex", p, ["does not span"])
# a cycle: two adjacent reached vertices made each other's parents
x = lv2[1]
y = int(parent[x])
p = parent.copy()
p[y] = x
expect("cycle", p, ["cycle"])
# the root not its own parent
p = parent.copy()
p[root] = int(next(iter(adj[root] - {root})))
expect("root", p, ["root"])
# a parent id out of range
p = parent.copy()
p[lv2[0]] = n + 5
expect("out of range", p, ["not a vertex"])
if rank == 0:
    print(f"OK graph validate {P}", flush=True)

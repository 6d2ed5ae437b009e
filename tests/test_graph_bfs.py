"""Graph app (apps/graph): Kronecker generator, edge-balanced partition,
direction-optimising BFS against scipy at 1-4 ranks, the Graph500 validator,
statistics block, the command line and its HDF5 output."""
import math
import subprocess
import sys

import h5py
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import dijkstra, shortest_path
from scipy.stats import hmean

from conftest import HERE, MPI_DIR, clean_env

APP = HERE.parent / "apps" / "graph"
sys.path.insert(0, str(APP))

import graph500  # noqa: E402
import kronecker  # noqa: E402


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bfs_levels_equal_scipy_at_every_rank_count(mpirun, n):
    """mpi/graph_bfs.py: parallel generator = serial; imbalance <= 1.05 (SCALE 16);
    BFS levels = scipy's on karate, les miserables, atlas, random (directed too) and
    Kronecker graphs, with and without delegates, every direction mode; all validated."""
    out = mpirun(n, MPI_DIR / "graph_bfs.py", timeout=180).stdout
    assert f"OK graph bfs {n}" in out, out


@pytest.mark.parametrize("n", [1, 2])
def test_validator_rejects_corrupted_parents(mpirun, n):
    out = mpirun(n, MPI_DIR / "graph_validate.py", timeout=120).stdout
    assert f"OK graph validate {n}" in out, out


def test_kronecker_follows_the_specification():
    """Undoing the vertex permutation, every bit level of every edge is drawn with the
    initiator's probabilities: row bit 1 with 1 - (A + B) = 0.24; column bit 1 with
    B / (A + B) = 0.25 after a row 0 and D / (C + D) = 0.208 after a row 1; the vertex
    permutation is a bijection; slices at any split concatenate to the whole list."""
    scale, ef, seed = 12, 16, 9
    n, m = 1 << scale, ef << scale
    src, dst, w = kronecker.kronecker_slice(scale, ef, seed, 0, m)
    assert src.min() >= 0 and src.max() < n and dst.min() >= 0 and dst.max() < n
    assert w.dtype == np.float32 and w.min() >= 0 and w.max() < 1 and abs(w.mean() - 0.5) < 0.01
    ids = np.arange(n, dtype=np.int64)
    perm = np.empty(n, np.int64)
    kronecker.K.permute(kronecker.K.hash3(seed, 3, 0), n, ids, perm)
    assert np.array_equal(np.sort(perm), ids)  # a permutation
    inv = np.empty(n, np.int64)
    inv[perm] = ids
    u, v = inv[src], inv[dst]
    ib = (u[:, None] >> np.arange(scale)) & 1
    jb = (v[:, None] >> np.arange(scale)) & 1
    tol = 4 * math.sqrt(0.25 / (m * scale))
    assert abs(ib.mean() - 0.24) < tol
    assert abs(jb[ib == 0].mean() - 0.19 / 0.76) < 2 * tol
    assert abs(jb[ib == 1].mean() - 0.05 / 0.24) < 4 * tol
    parts = [kronecker.kronecker_slice(scale, ef, seed, a, b - a) for a, b in ((0, 1000), (1000, 50001), (50001, m))]
    assert np.array_equal(np.concatenate([p[0] for p in parts]), src)
    assert np.array_equal(np.concatenate([p[2] for p in parts]), w)
    other = kronecker.kronecker_slice(scale, ef, seed + 1, 0, 1000)[0]
    assert not np.array_equal(other, src[:1000])


def test_statistics_as_the_reference_computes_them():
    rng = np.random.default_rng(1)
    t = rng.uniform(0.01, 0.03, 64)
    e = rng.integers(10**6, 2 * 10**6, 64)
    st = graph500.statistics(t, e)
    teps = e / t
    assert st["harmonic_mean_TEPS"] == pytest.approx(hmean(teps), rel=1e-12)
    inv = 1 / teps
    norris = np.std(inv, ddof=1) / (np.mean(inv) ** 2 * math.sqrt(63))
    assert st["harmonic_stddev_TEPS"] == pytest.approx(norris, rel=1e-12)
    assert st["min_TEPS"] == pytest.approx(teps.min()) and st["max_TEPS"] == pytest.approx(teps.max())
    assert st["median_time"] == pytest.approx(np.median(t))
    assert st["firstquartile_time"] == pytest.approx(np.quantile(t, 0.25))
    block = graph500.format_block({"SCALE": 20, "edgefactor": 16, "NBFS": 64, "construction_time": 1.5},
                                  [("bfs", st, None), ("sssp", st, st)])
    parsed = graph500.parse_block(block)
    assert parsed["SCALE"] == 20 and parsed["NBFS"] == 64
    assert parsed["bfs harmonic_mean_TEPS"] == pytest.approx(st["harmonic_mean_TEPS"], rel=1e-11)
    assert parsed["sssp median_validate"] == pytest.approx(st["median_time"], rel=1e-11)
    assert parsed["bfs min_validate"] == -1
    assert "bfs  harmonic_mean_TEPS:     !  " in block


def _run(args, **kw):
    return subprocess.run([sys.executable, str(APP / "graph500.py"), *map(str, args)], capture_output=True,
                          text=True, env=clean_env(), timeout=120, **kw)


@pytest.mark.parametrize("args, text, words", [
    (["--scale", "-3"], None, ["SCALE must be a positive integer"]),
    (["--scale", "5", "--nbfs", "0"], None, ["--nbfs"]),
    (["--edges", "E", "--nvertices", "5"], "0 1\n3 9\n", ["E:2", "vertex 9 is beyond the declared count of 5"]),
    (["--edges", "E"], "# c\n0 1\n1 x\n", ["E:3", "not an edge"]),
    (["--edges", "E"], "0 1 2 3\n", ["E:1", "expected 'u v' or 'u v weight'"]),
    (["--edges", "E"], "0 -1\n", ["negative vertex id"]),
    (["--edges", "E"], "0 1 -2.5\n", ["weight"]),
    (["--edges", "missing.txt"], None, ["cannot read edge list missing.txt"]),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, text, words):
    if text is not None:
        (tmp_path / "E").write_text(text)
    p = _run(args + ["--out", "-"], cwd=tmp_path)
    assert p.returncode == 2, p.stdout + p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("graph500: "), p.stderr
    assert all(w in lines[0] for w in words), p.stderr


def _min_weight_matrix(n, s, d, w):
    """The undirected graph as scipy sees it: self-loops dropped, the lightest of duplicate edges kept."""
    keep = s != d
    u, v, ww = np.minimum(s, d)[keep], np.maximum(s, d)[keep], w[keep].astype(np.float64)
    order = np.lexsort((ww, v, u))
    u, v, ww = u[order], v[order], ww[order]
    first = np.ones(u.size, bool)
    first[1:] = (u[1:] != u[:-1]) | (v[1:] != v[:-1])
    return sp.coo_matrix((ww[first], (u[first], v[first])), shape=(n, n)).tocsr()


def _levels(n, s, d, root):
    A = sp.coo_matrix((np.ones(s.size), (s, d)), shape=(n, n)).tocsr()
    ref = shortest_path(A + A.T, indices=int(root), unweighted=True)
    return np.where(np.isinf(ref), -1, ref).astype(np.int64)


def test_benchmark_on_two_ranks_writes_the_block_and_hdf5(mpirun, tmp_path):
    out = tmp_path / "g.h5"
    p = mpirun(2, APP / "graph500.py", "--scale", 12, "--nbfs", 5, "--out", out, timeout=120)
    st = graph500.parse_block(p.stdout)
    assert st["SCALE"] == 12 and st["NBFS"] == 5 and st["num_mpi_processes"] == 2 and st["edgefactor"] == 16
    assert st["bfs harmonic_mean_TEPS"] > 0 and st["bfs min_validate"] >= 0
    assert st["edge_imbalance"] <= 1.05
    dump = subprocess.run(["h5dump", "-H", str(out)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    for name in ("keys", "parent", "time", "nedge", "statistics", "dist"):
        assert name in dump.stdout
    assert st["sssp harmonic_mean_TEPS"] > 0 and st["sssp max_validate"] > 0
    s, d, w = kronecker.kronecker_slice(12, 16, 2, 0, 16 << 12)
    with h5py.File(out) as f:
        keys = f["keys"][()]
        times = f["bfs/time"][()]
        nedge = f["bfs/nedge"][()]
        parents = f["bfs/parent"][()]
        dist = f["sssp/dist"][()]
        assert f.attrs["SCALE"] == 12 and f.attrs["num_mpi_processes"] == 2
    assert keys.size == 5 and parents.shape == (4096, 5)
    assert st["bfs harmonic_mean_TEPS"] == pytest.approx(hmean(nedge / times), rel=1e-9)
    for i, k in enumerate(keys):
        lv = np.full(4096, -1, np.int64)
        assert kronecker.K.bfs_levels(np.ascontiguousarray(parents[:, i]), int(k), lv) == ""
        assert np.array_equal(lv, _levels(4096, s, d, k))
        reached = lv >= 0
        assert nedge[i] == np.count_nonzero(reached[s] & reached[d])  # Graph500's count: input edges inside
    M = _min_weight_matrix(4096, s, d, w)
    for i, k in enumerate(keys):
        ref = dijkstra(M, directed=False, indices=int(k))
        assert np.array_equal(np.isinf(ref), np.isinf(dist[:, i]))
        fin = ~np.isinf(ref)
        assert np.allclose(dist[fin, i], ref[fin], rtol=1e-6, atol=0)


@pytest.mark.parametrize("fmt", ["txt", "h5"])
def test_edge_lists_from_text_and_hdf5(mpirun, tmp_path, fmt):
    G = nx.les_miserables_graph()
    G = nx.convert_node_labels_to_integers(G)
    e = np.array(list(G.edges()), np.int64)
    path = tmp_path / f"lm.{fmt}"
    if fmt == "txt":
        path.write_text("# les miserables\n% SNAP-style comments\n\n" +
                        "".join(f"{u}\t{v}\n" for u, v in e.tolist()))
    else:
        with h5py.File(path, "w") as f:
            f["edges"] = e
    out = tmp_path / "r.h5"
    mpirun(3, APP / "graph500.py", "--edges", path, "--nbfs", 4, "--out", out, timeout=120)
    with h5py.File(out) as f:
        keys, parents = f["keys"][()], f["bfs/parent"][()]
    for i, k in enumerate(keys):
        lv = np.full(len(G), -1, np.int64)
        assert kronecker.K.bfs_levels(np.ascontiguousarray(parents[:, i]), int(k), lv) == ""
        assert np.array_equal(lv, _levels(len(G), e[:, 0], e[:, 1], k))

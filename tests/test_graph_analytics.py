"""Graph analytics (apps/graph: pagerank.py, components.py, community.py) on 1-4
ranks (mpi/graph_analytics.py): PageRank equals networkx.pagerank to 1e-10 and
the 1-rank run to 1e-12; connected components equal scipy's (weak for
directed) with the smallest vertex id as label; label propagation and Louvain
identical to the 1-rank run, Louvain's modularity >= 0.98 of networkx's
louvain_communities (mean over seeds 0..2); modularity() equals networkx's to
1e-12; each on karate, les miserables (weighted), atlas graphs, random,
planted-partition, many-component, edgeless, directed and Kronecker SCALE 10
(unweighted and weighted) graphs, with and without hubs. Bad input: the same
InvalidArgument on every rank."""
import pytest

from conftest import MPI_DIR


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_analytics_match_networkx_scipy_and_one_rank(mpirun, n):
    out = mpirun(n, MPI_DIR / "graph_analytics.py", timeout=120).stdout
    assert f"OK graph_analytics P={n}" in out, out
    assert "FAIL" not in out, out


def test_analytics_bad_input_same_error_everywhere(mpirun):
    out = mpirun(2, MPI_DIR / "graph_analytics.py", "errors", timeout=60).stdout
    assert "OK graph_analytics errors P=2" in out, out


def test_analytics_command_line_on_an_edge_list(mpirun, tmp_path):
    """apps/graph/analytics.py on 3 ranks over a text edge list (two copies of the
    karate club, so two components): the HDF5 results equal networkx's PageRank to
    1e-10, scipy's components, and Louvain's stored modularity equals networkx's
    modularity of the stored partition."""
    import subprocess
    import sys

    import h5py
    import networkx as nx
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    from conftest import HERE, clean_env
    app = HERE.parent / "apps" / "graph" / "analytics.py"
    G = nx.disjoint_union(nx.karate_club_graph(), nx.karate_club_graph())
    e = np.array(list(G.edges()), np.int64)
    (tmp_path / "k.txt").write_text("# two karate clubs\n" + "".join(f"{u} {v}\n" for u, v in e.tolist()))
    out = tmp_path / "a.h5"
    p = mpirun(3, app, "--edges", tmp_path / "k.txt", "--unweighted", "--tol", "1e-14", "--max-iter", "500", "--out", out,
               timeout=120)
    assert "components: 2" in p.stdout, p.stdout
    with h5py.File(out) as f:
        pr, cc, lv = f["pagerank"][()], f["component"][()], f["louvain"][()]
        q = f.attrs["louvain_modularity"]
    ref = nx.pagerank(G, weight=None, tol=1e-14, max_iter=500)
    assert np.abs(pr - np.array([ref[v] for v in range(len(G))])).max() < 1e-10
    A = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(G), len(G)))
    ncc, lab = connected_components(A, directed=False)
    assert ncc == 2 and np.array_equal(cc, np.where(lab == lab[0], 0, 34))
    parts = [set(np.flatnonzero(lv == c).tolist()) for c in np.unique(lv)]
    assert q == pytest.approx(nx.community.modularity(G, parts, weight=None), abs=1e-12)
    nxq = [nx.community.modularity(G, nx.community.louvain_communities(G, weight=None, seed=s), weight=None)
           for s in range(3)]
    assert q >= 0.98 * np.mean(nxq)
    bad = subprocess.run([sys.executable, str(app), "--scale", "8", "--damping", "1.5", "--out", "-"],
                         capture_output=True, text=True, env=clean_env(), timeout=60)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "--damping" in bad.stderr, bad.stderr

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

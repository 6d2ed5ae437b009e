"""Distributed delta-stepping SSSP (apps/graph/sssp.py, mpi/graph_sssp.py): on
karate club (weighted and not), les miserables, graph atlas graphs, a gnp graph
with zero weights, a directed gnp graph and Kronecker SCALE 10, the distances
equal scipy's Dijkstra (1e-6 relative) and the 1-rank run (1e-12) from two
roots and two or three bucket widths (one so small that the distances span
over 2^16 of them), at 1 to 4 ranks, without hubs and with many (delegate
degree 4 or 8);
the Graph500 validation passes every result and rejects corrupted ones (a wrong
distance, a tree edge not in the graph, one of the wrong weight, a cycle, a
reached vertex without parent, the root away from 0) with the same message on
every rank; a bad root or delta is refused on every rank."""
import pytest

from conftest import MPI_DIR


@pytest.mark.parametrize("n, delegate_degree", [(1, 0), (2, 0), (2, 4), (3, 8), (4, 4)])
def test_sssp_equals_dijkstra_and_one_rank(mpirun, n, delegate_degree):
    out = mpirun(n, MPI_DIR / "graph_sssp.py", delegate_degree, timeout=120).stdout
    assert f"OK sssp P={n} dd={delegate_degree} searches=79" in out, out

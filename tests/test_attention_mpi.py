"""Tree decode and ring attention across ranks (mpi/attention.py)."""
import pytest

from conftest import MPI_DIR


@pytest.mark.parametrize("n, topology", [(1, ""), (2, ""), (3, ""), (4, ""), (4, "nodes=2"), (8, "")])
def test_attention(mpirun, n, topology):
    env = {"BAOBAB_TOPOLOGY": topology} if topology else {}
    out = mpirun(n, MPI_DIR / "attention.py", env=env, timeout=600).stdout
    assert f"OK attention p={n}" in out, out

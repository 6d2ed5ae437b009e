"""Non-blocking collectives: several in flight, waited in different orders,
overlapping computation, dropped Work objects, counters."""
import pytest

from conftest import MPI_DIR


@pytest.mark.parametrize("n, topology", [(1, ""), (2, ""), (3, ""), (4, "nodes=2")])
def test_nonblocking(mpirun, n, topology):
    env = {"BAOBAB_TOPOLOGY": topology} if topology else {}
    out = mpirun(n, MPI_DIR / "nonblocking.py", env=env, timeout=300).stdout
    assert "OK nonblocking" in out, out

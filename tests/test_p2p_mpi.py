"""Non-contiguous point-to-point and halo exchange under mpiexec (see
mpi/p2p_halo.py), with packing chosen by the model, always, and never."""
import pytest

from conftest import MPI_DIR


@pytest.mark.parametrize("mode", ["auto", "always", "never"])
@pytest.mark.parametrize("n", [2, 3, 4])
def test_p2p_and_halo(mpirun, n, mode):
    out = mpirun(n, MPI_DIR / "p2p_halo.py", env={"BAOBAB_PACK": mode}, timeout=300).stdout
    assert f"OK p2p p={n}" in out, out


def test_pack_mode_is_honoured(mpirun):
    code = """
        import numpy as np, baobab
        c = baobab.init()
        v = np.zeros((64, 64))[:, ::2]
        ctx = c._context()
        print("WILL", ctx.will_pack(v), ctx.will_pack(np.zeros(8)))
    """
    assert "WILL True False" in mpirun(1, code, env={"BAOBAB_PACK": "always"}).stdout
    assert "WILL False False" in mpirun(1, code, env={"BAOBAB_PACK": "never"}).stdout
    assert "WILL True False" in mpirun(1, code).stdout  # 8-byte blocks: baobab packs faster than MPI
    out = mpirun(1, code, env={"BAOBAB_PACK": "sometimes"}, expect_rc=None).stdout
    assert "BAOBAB_PACK='sometimes'" in out

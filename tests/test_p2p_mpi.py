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


@pytest.mark.parametrize("mode", ["never", "always"])
def test_descending_views_arrive_intact(mpirun, mode):
    """Reversed views (negative strides equal to minus the element size, the
    case Open MPI 4.1 mis-describes as an hvector) handed to MPI as derived
    datatypes (never) or packed (always): the receiver gets the view's values."""
    code = """
        import numpy as np, baobab
        c = baobab.init(timeout=60)
        peer = 1 - c.rank
        for dt in (np.int8, np.int32, np.float64):
            a = (np.arange(40) * 3 + 1).astype(dt)
            views = [a[::-1], a[::-2], a.reshape(5, 8)[::-1, ::-1], a.reshape(5, 8)[:, ::-1].T]
            for k, v in enumerate(views):
                out = np.zeros(v.shape, dt)
                r = c.irecv(out, peer, tag=k)
                c.send(v, peer, tag=k)
                r.wait()
                assert np.array_equal(out, v), (dt, k, out, v)
                back = np.zeros_like(a)
                bv = back[::-1] if k == 0 else None
                if bv is not None:  # receive INTO a descending view too
                    r = c.irecv(bv, peer, tag=100 + k)
                    c.send(a, peer, tag=100 + k)
                    r.wait()
                    assert np.array_equal(back[::-1], a)
        print("DESCENDING OK")
    """
    out = mpirun(2, code, env={"BAOBAB_PACK": mode}, timeout=120).stdout
    assert out.count("DESCENDING OK") == 2, out

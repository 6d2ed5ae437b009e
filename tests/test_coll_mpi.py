"""Multi-rank collectives under real mpiexec: every collective, algorithm, dtype
and op (see mpi/collectives.py), at 1, 2, 3, 4 and 8 ranks, flat and with
virtual topologies including uneven nodes and two levels."""
import pytest

from conftest import MPI_DIR

CASES = [
    (1, "", "full"),
    (2, "", "full"),
    (3, "", "quick"),
    (4, "", "quick"),
    (4, "nodes=2", "full"),
    (4, "groups=3,1", "quick"),
    (3, "groups=1,2", "quick"),
    (5, "groups=2,3", "quick"),
    (8, "switch=2,nodes=4", "quick"),
    (8, "groups=3,1,2,2", "quick"),
]


@pytest.mark.parametrize("n, topology, mode", CASES, ids=[f"{n}-{t or 'flat'}-{m}" for n, t, m in CASES])
def test_collectives(mpirun, n, topology, mode):
    env = {"BAOBAB_TOPOLOGY": topology} if topology else {}
    out = mpirun(n, MPI_DIR / "collectives.py", mode, env=env, timeout=600).stdout
    assert f"OK collectives p={n}" in out, out
    if topology:
        assert f"BAOBAB_TOPOLOGY={topology}" in out


def test_baobab_algo_environment_forces_algorithm(mpirun):
    code = """
        import numpy as np, baobab
        c = baobab.init()
        w = c.iallreduce(np.ones(1000, np.float32))
        y = w.wait()
        assert w.algorithm == "ring", w.algorithm
        assert (y == c.size).all()
        w = c.ibcast(np.ones(10), root=0)
        w.wait()
        assert w.algorithm == "scatter_allgather", w.algorithm
        print("FORCED", w.algorithm)
    """
    out = mpirun(3, code, env={"BAOBAB_ALGO": "allreduce=ring,bcast=scatter_allgather"}).stdout
    assert out.count("FORCED") == 3


def test_unknown_algorithm_in_environment_is_an_error_on_every_rank(mpirun):
    code = """
        import baobab
        try:
            baobab.init()
        except baobab.InvalidArgument as e:
            print("INVALID", e)
    """
    out = mpirun(2, code, env={"BAOBAB_ALGO": "allreduce=ring,gather=binomial"}).stdout
    assert out.count("INVALID") == 2 and "unknown collective 'gather'" in out
    # An unknown algorithm name is refused when the communicator is made, not at first use.
    out = mpirun(2, code, env={"BAOBAB_ALGO": "allreduce=bogus"}).stdout
    assert out.count("INVALID") == 2 and "unknown allreduce algorithm 'bogus'" in out


def test_forced_inner_algorithm_runs_and_is_exact(mpirun):
    """A composition's inner algorithm forced by name (algo="split_rail(ring)",
    or BAOBAB_ALGO) runs that variant on real ranks and matches MPI_Allreduce
    exactly; a family forced by name runs the variant explain shows as chosen."""
    code = """
        import numpy as np, baobab
        c = baobab.init()
        fams = {a["name"]: a["variants"] for a in baobab.algorithms() if a["variants"]}
        assert set(fams) == {"split_rail", "leader"}, fams
        rng = np.random.default_rng(c.rank)
        for n in (0, 1, 13, 1001, 1 << 20):
            x = rng.integers(-100, 100, size=n).astype(np.float32)
            ref = np.empty_like(x)
            c.mpi_comm.Allreduce(x, ref)
            w = c.iallreduce(x)  # BAOBAB_ALGO
            assert np.array_equal(w.wait(), ref) and w.algorithm == "leader(rabenseifner)", w.algorithm
            for fam, variants in fams.items():
                for v in variants:
                    w = c.iallreduce(x, algo=v)
                    assert np.array_equal(w.wait(), ref), (v, n)
                    assert w.algorithm == v, (v, w.algorithm)
                w = c.iallreduce(x, algo=fam)
                assert np.array_equal(w.wait(), ref), (fam, n)
                text = c.explain("allreduce", x.nbytes, algo=fam, file=False)
                assert f"choice: {w.algorithm} (family {fam} forced by algo=" in text, text
                assert all(v in text for v in variants), text
        print("INNER OK")
    """
    env = {"BAOBAB_TOPOLOGY": "nodes=2", "BAOBAB_ALGO": "allreduce=leader(rabenseifner)"}
    out = mpirun(4, code, env=env, timeout=300).stdout
    assert out.count("INNER OK") == 4, out


def test_sixteen_mib_hierarchical_allreduce_matches_mpi(mpirun):
    code = """
        import numpy as np, baobab
        from mpi4py import MPI
        c = baobab.init()
        rng = np.random.default_rng(c.rank)
        x = rng.integers(-100, 100, size=4 << 20).astype(np.float32)  # 16 MiB
        for algo in ("split_rail", "leader", "ring", "rabenseifner"):
            y = c.allreduce(x, algo=algo)
            ref = np.empty_like(x)
            c.mpi_comm.Allreduce(x, ref)
            assert np.array_equal(y, ref), algo
        print("MATCH")
    """
    out = mpirun(4, code, env={"BAOBAB_TOPOLOGY": "nodes=2"}, timeout=300).stdout
    assert out.count("MATCH") == 4


def test_lean_allreduce_path_agrees_with_the_general_path(mpirun):
    # allreduce of a plain C-contiguous numpy array takes a lean binding; every
    # dtype/op pair must give the same bytes, or the same exception class, as
    # the general path, and 0-d, empty, in-place and reshaped-out calls behave.
    code = """
        import numpy as np, baobab
        c = baobab.init()
        r = c.rank
        checked = 0
        for dt in (np.float64, np.float32, np.float16, np.int8, np.int32, np.int64, np.uint8, np.complex128):
            for op in ("sum", "prod", "max", "min", "band", "bor", "bxor", "land", "lor", "lxor"):
                x = np.arange(5, dtype=dt) + r
                got = []
                for general in (False, True):
                    try:
                        y = c._allreduce(True, x, op, None, None) if general else c.allreduce(x, op)
                        got.append(("ok", y.dtype, y.tobytes()))
                    except Exception as e:
                        got.append((type(e).__name__,))
                assert got[0] == got[1], (np.dtype(dt), op, got)
                checked += got[0][0] == "ok"
        assert checked >= 20, checked
        assert c.allreduce(np.full((), 3.0)).shape == () and float(c.allreduce(np.full((), 3.0))) == 6.0
        assert c.allreduce(np.zeros(0)).shape == (0,)
        x = np.ones(4)
        assert c.allreduce(x, out=x) is x and np.array_equal(x, [2.0] * 4)
        o = np.zeros((2, 2))
        assert c.allreduce(np.ones(4), out=o) is o and np.array_equal(o, np.full((2, 2), 2.0))
        for bad in (dict(x=np.arange(8.0)[::2]), dict(x=np.ones(4), out=np.zeros(3))):
            try:
                c.allreduce(**bad)
            except baobab.InvalidArgument as e:
                print("REFUSED", e)
        print("LEAN OK", checked)
    """
    out = mpirun(2, code, timeout=120).stdout
    assert out.count("LEAN OK") == 2 and out.count("REFUSED") == 4, out
    assert "not C-contiguous" in out


def test_lean_bcast_and_allgather_agree_with_the_general_path(mpirun):
    # bcast and allgather of plain C-contiguous numpy arrays take lean bindings
    # too: the same bytes as the general path for every dtype, root and shape,
    # and anything unusual (read-only, strided, a wrong out) gets the general
    # path's error.
    code = """
        import numpy as np, baobab
        c = baobab.init()
        r, p = c.rank, c.size
        for dt in (np.float64, np.float32, np.float16, np.int8, np.int64, np.uint16):
            for shape in ((), (0,), (5,), (2, 3)):
                for root in range(p):
                    src = (np.arange(int(np.prod(shape))) * (root + 2)).astype(dt).reshape(shape)
                    a = src.copy() if r == root else np.zeros(shape, dt)
                    b = a.copy()
                    assert c.bcast(a, root) is a
                    c._bcast(True, b, root, None)
                    assert a.tobytes() == b.tobytes() == src.tobytes(), (dt, shape, root)
                x = (np.arange(int(np.prod(shape))) + 10 * r).astype(dt).reshape(shape)
                g = c.allgather(x)
                assert g.shape == (p,) + shape and g.tobytes() == c._allgather(True, x, None, None).tobytes()
                for q in range(p):
                    assert np.array_equal(g[q], (np.arange(int(np.prod(shape))) + 10 * q).astype(dt).reshape(shape))
        o = np.zeros(p * 4)
        assert c.allgather(np.ones(4), out=o) is o and (o == 1).all()
        bad = [lambda: c.bcast(np.zeros(4)[::2]), lambda: c.allgather(np.ones(4), out=np.zeros(3)),
               lambda: c.bcast(np.frombuffer(b"12345678", np.uint8)), lambda: c.bcast(np.zeros(2), root=p),
               lambda: c.allgather(np.ones(8)[::2]), lambda: c.bcast(np.zeros(2, np.complex128)),
               lambda: c.allgather(np.zeros(2, np.complex128))]
        for f in bad:
            try:
                f()
            except baobab.InvalidArgument as e:
                print("REFUSED", e)
        print("LEAN2 OK")
    """
    out = mpirun(2, code, timeout=120).stdout
    assert out.count("LEAN2 OK") == 2 and out.count("REFUSED") == 14, out
    assert "read-only" in out and "not C-contiguous" in out

"""The language boundary: the core's enumerations reach Python from C++ (names
and values, never copied by hand), and each C++ exception class arrives as the
baobab exception class of the same name."""
import numpy as np
import pytest

import baobab
from baobab import _core
from baobab.dtypes import OPS, SUPPORTED, code_of, op_code


def test_collectives_are_the_cores_enum():
    names = [c.name for c in _core.Coll]
    assert names == ["allreduce", "reduce_scatter", "allgather", "bcast", "reduce", "alltoall", "barrier"]
    # every collective the algorithm table knows is a member, by the core's own name
    assert {a["collective"] for a in baobab.algorithms()} <= set(names)
    for c in _core.Coll:
        assert _core.coll_from_name(c.name) is c
    assert _core.coll_from_name("broadcast") is _core.Coll.bcast
    assert _core.coll_from_name("alltoallv") is _core.Coll.alltoall
    with pytest.raises(baobab.InvalidArgument, match="unknown collective 'gather'.*allreduce"):
        _core.coll_from_name("gather")


def test_dtypes_and_ops_come_from_the_core():
    import ml_dtypes
    assert [t.name for t in _core.DType][-1] == "byte"
    for t in _core.DType:
        if t is _core.DType.byte:
            continue  # opaque bytes: moved, never reduced, no numpy type
        dt = np.dtype(ml_dtypes.bfloat16) if t.name == "bfloat16" else np.dtype(t.name)
        assert code_of(dt) is t
        assert _core.dtype_size(t) == dt.itemsize
    assert len(SUPPORTED) == len(_core.DType) - 1
    assert list(OPS) == [op.name for op in _core.RedOp] == ["sum", "prod", "min", "max"]
    assert op_code("max") is _core.RedOp.max


def test_the_kernels_take_the_enums():
    a, b = np.arange(4, dtype=np.float32), np.full(4, 2, np.float32)
    out = np.empty_like(a)
    _core.reduce_local(_core.DType.float32, _core.RedOp.max, a, b, out)
    assert out.tolist() == [2, 2, 2, 3]
    with pytest.raises(baobab.InvalidArgument, match="float64"):  # items of the wrong size
        _core.reduce_local(_core.DType.float64, _core.RedOp.sum, a, b, out)
    with pytest.raises(TypeError):  # not a member: refused by the binding's signature
        _core.reduce_local("float32", _core.RedOp.sum, a, b, out)


def test_attention_no_mask_is_the_cores():
    assert baobab.attention.NO_MASK == _core.ATTENTION_NO_MASK == 2**63 - 1


def test_cpp_errors_arrive_as_baobab_classes():
    with pytest.raises(baobab.InvalidArgument) as e:
        _core.coll_from_name("nosuch")
    assert isinstance(e.value, ValueError) and isinstance(e.value, baobab.Error)
    comm = baobab.Communicator(timeout=30)
    with pytest.raises(baobab.TimeoutError) as t:
        comm.recv(np.zeros(2), 0, tag=5, timeout=0.05)  # nobody sends
    assert isinstance(t.value, TimeoutError) and isinstance(t.value, baobab.Error)
    assert t.value.op == "recv" and t.value.missing == [0] and isinstance(t.value.seq, int)
    if not _core.cuda_available():
        with pytest.raises(baobab.CUDAError):
            _core.cuda_synchronize(0)


def test_the_loader_no_longer_hands_classes_to_the_core():
    assert not hasattr(_core, "_set_exception_types")


# ---- arguments checked once: the Python layer's checks, the core's rules -----------------------------


@pytest.fixture(scope="module")
def comm():
    return baobab.Communicator(timeout=30)


def test_every_timeout_follows_the_cores_rule(comm):
    import math
    w = comm.iallreduce(np.ones(2))
    with pytest.raises(baobab.InvalidArgument, match="timeout=1e\\+10 is beyond the longest deadline"):
        w.wait(timeout=1e10)  # as BAOBAB_TIMEOUT=1e10 and Communicator(timeout=1e10) are
    with pytest.raises(baobab.InvalidArgument, match="timeout=-1 must be 0 or more seconds"):
        w.wait(timeout=-1)
    with pytest.raises(baobab.InvalidArgument, match="beyond the longest deadline"):
        w.wait(timeout=10**400)  # no OverflowError
    assert w.wait(timeout=0 if w.test() else math.inf).tolist() == [1.0, 1.0]
    with pytest.raises(baobab.InvalidArgument, match="timeout=1e\\+10"):
        baobab.Communicator(timeout=1e10)
    with pytest.raises(baobab.InvalidArgument, match="timeout=0 must be positive"):
        baobab.Communicator(timeout=0)


def test_counts_and_widths_are_not_truncated(comm):
    from mpi4py import MPI
    d = baobab.Datatype.from_array(np.zeros(4))
    with pytest.raises(baobab.InvalidArgument, match="count must be an integer, got 1.5"):
        d.pack(np.zeros(4), count=1.5)
    with pytest.raises(baobab.InvalidArgument, match="count must not be negative"):
        d.unpack(bytes(0), np.zeros(4), count=-1)
    cart = MPI.COMM_WORLD.Create_cart([MPI.COMM_WORLD.size], periods=[True])
    try:
        with pytest.raises(baobab.InvalidArgument, match="width must be an integer, got 1.5"):
            comm.halo_exchange(np.zeros(6), 1.5, cart)
        with pytest.raises(baobab.InvalidArgument, match="width must be at least 1, got 0"):
            comm.halo_exchange(np.zeros(6), 0, cart)
    finally:
        cart.Free()


def test_tree_decode_checks_its_root(comm):
    q = np.ones((1, 1, 1, 4))
    k = v = np.ones((1, 1, 3, 4))
    for bad in (comm.size, -1, 0.5):
        with pytest.raises(baobab.InvalidArgument, match="root"):
            baobab.attention.tree_decode(q, k, v, comm, root=bad)
    assert baobab.attention.tree_decode(q, k, v, comm, root=0) is not None or comm.rank != 0


def test_explain_takes_the_cores_collective_names(comm, capsys):
    from baobab._cli.main import main
    assert main(["explain", "broadcast", "64"]) == 0  # an alias of the core's coll_from_name
    assert "bcast" in capsys.readouterr().out
    assert comm.plan("alltoallv", 64)["algorithm"]
    with pytest.raises(baobab.InvalidArgument, match="unknown collective 'gather'"):
        comm.explain("gather", 8)
    with pytest.raises(baobab.InvalidArgument, match="unknown collective 7"):
        comm.plan(7, 8)

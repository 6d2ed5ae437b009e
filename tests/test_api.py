"""Single-rank API behaviour: results, argument validation and clear errors."""
import numpy as np
import pytest

import baobab
from baobab.dtypes import bfloat16


@pytest.fixture(scope="module")
def comm():
    c = baobab.Communicator(timeout=30)
    yield c


def test_single_rank_collectives(comm):
    x = np.arange(10, dtype=np.float32)
    assert np.array_equal(comm.allreduce(x), x)
    assert np.array_equal(comm.allgather(x), x[None])
    assert np.array_equal(comm.reduce_scatter(x), x)
    assert np.array_equal(comm.reduce(x, root=0), x)
    y = x.copy()
    assert comm.bcast(y) is y
    assert np.array_equal(comm.alltoall(x.reshape(1, 10)), x.reshape(1, 10))
    comm.barrier()
    assert comm.iallreduce(x).wait(timeout=5).tolist() == x.tolist()


def test_allreduce_out_in_place(comm):
    x = np.arange(5, dtype=np.int64)
    out = comm.allreduce(x, out=x)
    assert out is x


@pytest.mark.parametrize("dtype", [np.float16, bfloat16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                   np.int64, np.uint8, np.uint16, np.uint32, np.uint64])
def test_every_dtype_passes(comm, dtype):
    x = np.arange(7).astype(dtype)
    y = comm.allreduce(x, "max")
    assert y.dtype == np.dtype(dtype) and np.array_equal(y.astype(np.float64), x.astype(np.float64))


def test_non_contiguous_input_is_refused(comm):
    x = np.arange(20, dtype=np.float32)[::2]
    with pytest.raises(baobab.InvalidArgument, match="not C-contiguous"):
        comm.allreduce(x)


def test_read_only_out_is_refused(comm):
    out = np.zeros(4)
    out.flags.writeable = False
    with pytest.raises(baobab.InvalidArgument, match="read-only"):
        comm.allreduce(np.ones(4), out=out)


def test_read_only_input_is_fine(comm):
    x = np.ones(4)
    x.flags.writeable = False
    assert comm.allreduce(x).sum() == 4


def test_wrong_out_dtype_shape_and_layout(comm):
    with pytest.raises(baobab.InvalidArgument, match="dtype"):
        comm.allreduce(np.ones(4), out=np.zeros(4, np.float32))
    with pytest.raises(baobab.InvalidArgument, match="elements"):
        comm.allreduce(np.ones(4), out=np.zeros(5))
    with pytest.raises(baobab.InvalidArgument, match="not C-contiguous"):
        comm.allreduce(np.ones(4), out=np.zeros(8)[::2])
    with pytest.raises(baobab.InvalidArgument, match="numpy array"):
        comm.allreduce(np.ones(4), out=[0, 0, 0, 0])


def test_unsupported_dtype_and_op(comm):
    with pytest.raises(baobab.InvalidArgument, match="unsupported dtype"):
        comm.allreduce(np.ones(3, np.complex64))
    with pytest.raises(baobab.InvalidArgument, match="unsupported dtype"):
        comm.allreduce(np.array(["a", "b"]))
    with pytest.raises(baobab.InvalidArgument, match="unknown reduction op 'avg'"):
        comm.allreduce(np.ones(3), "avg")


def test_unknown_algorithm_and_collective(comm):
    with pytest.raises(baobab.InvalidArgument, match="unknown allreduce algorithm 'fast'.*known: recursive_doubling"):
        comm.allreduce(np.ones(3), algo="fast")
    with pytest.raises(baobab.InvalidArgument, match="unknown collective"):
        comm.explain("gather", 8)


def test_bad_root_and_counts(comm):
    with pytest.raises(baobab.InvalidArgument, match="root 3 is not a rank"):
        comm.bcast(np.ones(3), root=3)
    with pytest.raises(baobab.InvalidArgument, match="counts"):
        comm.reduce_scatter(np.ones(4), counts=[3])
    with pytest.raises(baobab.InvalidArgument, match="alltoall splits axis 0"):
        comm.alltoall(np.float64(1.0))


def test_bad_options():
    with pytest.raises(baobab.InvalidArgument, match="timeout"):
        baobab.Communicator(timeout=-1)
    with pytest.raises(baobab.InvalidArgument, match="expected an mpi4py communicator"):
        baobab.Communicator("COMM_WORLD")
    with pytest.raises(baobab.InvalidArgument, match="BAOBAB_TOPOLOGY"):
        baobab.Communicator(topology="nodes=banana")


def test_explain_lists_candidates_and_choice(comm):
    text = comm.explain("allreduce", 1 << 20, file=False)
    assert "choice:" in text and "recursive_doubling" in text and "predicted" in text
    plan = comm.plan("allreduce", 8)
    assert plan["algorithm"] in {c["name"] for c in plan["candidates"]}
    forced = comm.explain("allreduce", 8, algo="ring", file=False)
    assert "choice: ring (forced by algo=)" in forced
    full = comm.plan("allreduce", 1 << 20, full=True)
    assert full["algorithm"] == comm.plan("allreduce", 1 << 20)["algorithm"]
    assert full["candidates"] and not any(c["beaten"] for c in full["candidates"])
    with pytest.raises(baobab.InvalidArgument, match="give no algo"):
        comm.plan("allreduce", 8, algo="ring", full=True)


def test_error_hierarchy():
    assert issubclass(baobab.InvalidArgument, ValueError)
    assert issubclass(baobab.TimeoutError, TimeoutError)
    for cls in (baobab.InvalidArgument, baobab.MismatchError, baobab.TimeoutError, baobab.MPIError,
                baobab.CUDAError):
        assert issubclass(cls, baobab.Error)


def test_info_and_cuda_status(capsys):
    from baobab._cli.info import info
    info()
    out = capsys.readouterr().out
    assert "MPI library" in out and "topology:" in out and "allreduce" in out
    status = baobab.cuda_status()
    assert status.startswith(("compiled", "not compiled"))

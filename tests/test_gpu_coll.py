"""Collectives on cupy arrays (needs a CUDA device and cupy; tests/gpu/run.sh
runs these on a GPU machine): the device reduction kernels against the host
kernels bit for bit, special values included; every collective x dtype x op
on cupy arrays at 2, 3 and 4 ranks sharing the GPU, with virtual nodes, against
the host collectives bit for bit; an unsynchronised producer; host and device
ranks together; device arrays known only by __cuda_array_interface__."""
import numpy as np
import pytest

import baobab
from baobab import _core

try:
    import cupy
    HAVE_DEVICE = _core.cuda_available() and cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # noqa: BLE001 - no cupy, no driver, no device
    HAVE_DEVICE = False

pytestmark = pytest.mark.skipif(not HAVE_DEVICE, reason="no CUDA device (or no cupy / CUDA build)")

from conftest import MPI_DIR  # noqa: E402
from baobab.dtypes import code_of, dtype_from_name  # noqa: E402

SPECIAL = {
    "float16": [0x0000, 0x8000, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE3F, 0x0001, 0x8001, 0x03FF, 0x0400, 0x7BFF],
    "bfloat16": [0x0000, 0x8000, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC1, 0x0001, 0x8001, 0x007F, 0x0080, 0x7F7F],
}


def _operands(dtype, n, seed):
    dt = dtype_from_name(dtype)
    rng = np.random.default_rng(seed)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=n, endpoint=True, dtype=dt)
    if dtype in SPECIAL:
        bits = rng.integers(0, 1 << 16, size=n, dtype=np.uint16)  # every bit pattern, NaNs and subnormals too
        bits[: len(SPECIAL[dtype])] = SPECIAL[dtype]
        return bits.view(dt)
    ftype = np.float32 if dt == np.float32 else np.float64
    v = (rng.standard_normal(n) * 10.0 ** rng.integers(-40, 40, size=n)).astype(ftype)
    specials = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, 1e-45 if ftype is np.float32 else 5e-324,
                         np.finfo(ftype).max, np.finfo(ftype).tiny], ftype)
    v[: specials.size] = specials
    u = v.view(np.uint32 if ftype is np.float32 else np.uint64)
    u[specials.size: specials.size + 4] |= (0x7F800001 if ftype is np.float32 else 0x7FF0000000000001)  # NaN payloads
    return v


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64",
                                   "uint8", "uint16", "uint32", "uint64"])
@pytest.mark.parametrize("op", ["sum", "prod", "min", "max"])
@pytest.mark.parametrize("n, offset", [(1, 0), (37, 0), (4096, 0), (100003, 0), (1000, 1)],
                         ids=["1", "37", "4096", "100003", "unaligned"])
def test_device_reduce_kernel_has_the_host_bits(dtype, op, n, offset):
    dt = dtype_from_name(dtype)
    a = _operands(dtype, n + offset, 1)
    b = _operands(dtype, n + offset, 2)
    b[: n // 3] = a[: n // 3]  # equal operands (the -0/+0 and NaN-pair rules)
    want = np.empty(n, dt)
    _core.reduce_local(code_of(dt), _core.RedOp.__members__[op], a[offset:], b[offset:], want)
    raw = np.uint16 if dtype == "bfloat16" else dt  # cupy has no bfloat16: move the bits
    da, db = cupy.asarray(a.view(raw)), cupy.asarray(b.view(raw))
    out = cupy.empty(n + offset, raw)
    es = dt.itemsize
    _core.device_reduce(code_of(dt), _core.RedOp.__members__[op], out.data.ptr + offset * es,
                        da.data.ptr + offset * es, db.data.ptr + offset * es, n, 0, False)
    got = cupy.asnumpy(out)[offset:].view(dt)
    diff = np.flatnonzero((got.view(np.uint8).reshape(n, es) != want.view(np.uint8).reshape(n, es)).any(axis=1))
    assert diff.size == 0, f"{diff.size} of {n} differ, first at {diff[:4]}: {got[diff[:4]]} != {want[diff[:4]]}"


def _passed(out, n):
    assert out.count("PASS") == n and "FAIL" not in out, out


@pytest.mark.parametrize("n, topology, ipc", [(2, "", "1"), (2, "", "0"), (3, "nodes=3", "1"), (4, "nodes=2", "1")],
                         ids=["2-ipc", "2-staged", "3-nodes3-staged", "4-nodes2-ipc+staged"])
def test_cupy_collectives_equal_host_collectives(mpirun, n, topology, ipc):
    """IPC between ranks of one (virtual) node, the staged transport between
    nodes (the MPI of the lent machine is not CUDA-aware). The host plan
    (BAOBAB_DEVICE_PLAN=host) gives the host collective's bits."""
    env = {"BAOBAB_DEVICE_IPC": ipc, "BAOBAB_DEVICE_PLAN": "host"}
    if topology:
        env["BAOBAB_TOPOLOGY"] = topology
    out = mpirun(n, MPI_DIR / "device_coll.py", "bits", "cupy", env=env, timeout=300).stdout
    _passed(out, n)


@pytest.mark.parametrize("n, topology", [(3, ""), (4, "nodes=2")])
def test_cupy_device_plans_equal_the_reference_replay(mpirun, n, topology):
    """The device model's own plans on cupy arrays: bit for bit the reference
    executor's replay of the plan each call ran."""
    env = {"BAOBAB_TOPOLOGY": topology} if topology else {}
    out = mpirun(n, MPI_DIR / "device_coll.py", "plans", "cupy", env=env, timeout=300).stdout
    _passed(out, n)


def test_unsynchronised_producer_then_collective(mpirun):
    out = mpirun(2, MPI_DIR / "device_coll.py", "producer", "cupy", timeout=120).stdout
    _passed(out, 2)


def test_cupy_and_numpy_ranks_in_one_collective(mpirun):
    out = mpirun(3, MPI_DIR / "device_coll.py", "mixed", "cupy",
                 env={"BAOBAB_DEVICE_IPC": "0", "BAOBAB_DEVICE_PLAN": "host"}, timeout=120).stdout
    _passed(out, 3)
    out = mpirun(3, MPI_DIR / "device_coll.py", "mixed", "cupy", timeout=120).stdout  # IPC and device plan: refused
    _passed(out, 3)
    out = mpirun(3, MPI_DIR / "device_coll.py", "mixed", "cupy", env={"BAOBAB_DEVICE_IPC": "0"},
                 timeout=120).stdout  # the device plan: refused
    _passed(out, 3)


def test_cupy_collective_timeout_and_mismatch(mpirun):
    out = mpirun(3, MPI_DIR / "device_coll.py", "timeout", "cupy", env={"BAOBAB_TIMEOUT": "3"}, timeout=60).stdout
    _passed(out, 3)
    out = mpirun(3, MPI_DIR / "device_coll.py", "mismatch", "cupy", env={"BAOBAB_TIMEOUT": "20"}, timeout=60).stdout
    _passed(out, 3)


def test_device_results_stay_on_the_device_and_mixing_is_refused():
    c = baobab.Communicator(timeout=30)
    x = cupy.arange(10, dtype=cupy.float32)
    y = c.allreduce(x)
    assert isinstance(y, cupy.ndarray) and bool((y == x).all())
    out = cupy.empty_like(x)
    assert c.allreduce(x, out=out) is out
    with pytest.raises(baobab.InvalidArgument, match="host array"):
        c.allreduce(x, out=np.empty(10, np.float32))
    with pytest.raises(baobab.InvalidArgument, match="device array"):
        c.allreduce(np.ones(10, np.float32), out=out)
    w = c.iallgather(x)
    assert isinstance(w.wait(), cupy.ndarray)


class _Interface:
    """A device array seen only through __cuda_array_interface__ (as a torch or
    numba array is): baobab must take it without knowing its library."""

    def __init__(self, a):
        self.a = a

    @property
    def __cuda_array_interface__(self):
        return self.a.__cuda_array_interface__


def test_cuda_array_interface_arrays_of_any_library():
    c = baobab.Communicator(timeout=30)
    x = cupy.arange(12, dtype=cupy.float32)
    out = cupy.empty_like(x)
    wrapped = _Interface(out)
    assert c.allreduce(_Interface(x), out=wrapped) is wrapped
    assert bool((out == x * c.size).all())

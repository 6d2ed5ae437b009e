"""The datatype engine on cupy arrays: device pack/unpack against cupy's own
contiguous copy, and device views sent between ranks. These need a CUDA device
(and cupy); tests/gpu/run.sh runs them on a GPU machine."""
import pytest

from baobab import _core

try:
    import cupy
    HAVE_DEVICE = _core.cuda_available() and cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # noqa: BLE001 - no cupy, no driver, no device
    HAVE_DEVICE = False

pytestmark = pytest.mark.skipif(not HAVE_DEVICE, reason="no CUDA device (or no cupy / CUDA build)")

from conftest import run_mpi  # noqa: E402


@pytest.mark.parametrize("index", [
    (slice(1, 7, 2), slice(None, None, -1), slice(0, 10, 3)),
    (Ellipsis, 4), (slice(None), 2), (slice(None, None, -1),), (slice(0, 8), slice(1, 3), slice(None)),
])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int8", "complex128"])
def test_device_pack_and_unpack(index, dtype):
    import baobab
    a = cupy.arange(8 * 9 * 10).astype(dtype).reshape(8, 9, 10)
    view = a[index]
    packed = baobab.pack(view)
    assert isinstance(packed, cupy.ndarray) and packed.flags.c_contiguous
    assert bool((packed == cupy.ascontiguousarray(view)).all())
    b = cupy.zeros_like(a)
    baobab.unpack(packed, out=b[index])
    assert bool((b[index] == view).all())


def test_device_send_recv_between_ranks():
    code = """
        import cupy, numpy as np, baobab
        c = baobab.init(timeout=60)
        a = cupy.arange(1000, dtype=cupy.float64).reshape(10, 100) + c.rank
        out = cupy.zeros((50, 10))
        req = c.irecv(out.T, (c.rank - 1) % c.size, tag=3)
        c.send(a[:, ::2], (c.rank + 1) % c.size, tag=3)
        req.wait()
        src = (c.rank - 1) % c.size
        want = (cupy.arange(1000, dtype=cupy.float64).reshape(10, 100) + src)[:, ::2]
        assert bool((out.T == want).all())
        print("DEVICE OK", baobab._core.mpi_cuda_aware())
    """
    out = run_mpi(2, code, timeout=300).stdout
    assert out.count("DEVICE OK") == 2, out

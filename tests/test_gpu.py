"""The datatype engine on cupy arrays: device pack/unpack against cupy's own
contiguous copy, and device views sent between ranks; device attention; the
N-body application with its forces on the GPU against the host, and the
N-body j-split kernel against one thread per target. These need a CUDA device
(and cupy); tests/gpu/run.sh runs them on a GPU machine."""
import numpy as np
import pytest

from baobab import _core

try:
    import cupy
    HAVE_DEVICE = _core.cuda_available() and cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # noqa: BLE001 - no cupy, no driver, no device
    HAVE_DEVICE = False

pytestmark = pytest.mark.skipif(not HAVE_DEVICE, reason="no CUDA device (or no cupy / CUDA build)")

from conftest import HERE, run_mpi  # noqa: E402


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


@pytest.mark.parametrize("staged", [False, True], ids=["detected", "staged"])
def test_device_send_recv_between_ranks(staged):
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
    out = run_mpi(2, code, timeout=300, env={"BAOBAB_CUDA_AWARE": "0"} if staged else None).stdout
    assert out.count("DEVICE OK") == 2, out
    if staged:
        assert "(False, 'BAOBAB_CUDA_AWARE=0')" in out, out


def test_device_attention_matches_host():
    from baobab import attention
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 4, n, 64)).astype(np.float32) for n in (300, 1000, 1000))
    host = attention.partial(q, k, v, causal_offset=700)
    dev = attention.partial(cupy.asarray(q), cupy.asarray(k), cupy.asarray(v), causal_offset=700)
    assert float(abs(cupy.asnumpy(dev[0]) - host[0]).max()) < 1e-4
    assert float(abs(cupy.asnumpy(dev[1]) - host[1]).max()) < 1e-4


def test_device_ring_and_tree_decode_between_ranks():
    code = """
        import cupy, numpy as np, baobab
        from baobab import attention
        c = baobab.init(timeout=120)
        rng = np.random.default_rng(1)
        Q, K, V = (rng.standard_normal((1, 2, 40, 32)) for _ in range(3))
        sh = lambda x: cupy.asarray(attention.shard(x, c.rank, c.size, "zigzag"))
        out = attention.ring(sh(Q), sh(K), sh(V), c, causal=True, layout="zigzag")
        host = attention.ring(attention.shard(Q, c.rank, c.size, "zigzag"), attention.shard(K, c.rank, c.size, "zigzag"),
                              attention.shard(V, c.rank, c.size, "zigzag"), c, causal=True, layout="zigzag")
        assert float(abs(cupy.asnumpy(out) - host).max()) < 1e-10
        dec = attention.tree_decode(cupy.asarray(Q[:, :, :1]), sh(K), sh(V), c)
        ref = attention.tree_decode(Q[:, :, :1], attention.shard(K, c.rank, c.size, "zigzag"),
                                    attention.shard(V, c.rank, c.size, "zigzag"), c)
        assert float(abs(cupy.asnumpy(dec) - ref).max()) < 1e-10
        print("DEVICE ATTENTION OK")
    """
    out = run_mpi(2, code, timeout=300).stdout
    assert out.count("DEVICE ATTENTION OK") == 2, out


@pytest.mark.parametrize("nranks,dims,periods,shape,width", [
    (2, [2, 1], [True, False], (12, 9), 1),
    (4, [2, 2, 1], [True, False, True], (10, 8, 7), 2),
])
@pytest.mark.parametrize("staged", [False, True], ids=["detected", "staged"])
def test_device_halo_exchange_matches_host(nranks, dims, periods, shape, width, staged):
    code = f"""
        import cupy, numpy as np, baobab
        from mpi4py import MPI
        c = baobab.init(timeout=120)
        cart = MPI.COMM_WORLD.Create_cart({dims}, periods={periods})
        rng = np.random.default_rng(cart.rank)
        host = rng.standard_normal({shape})
        dev = cupy.asarray(host)
        c.halo_exchange(host, {width}, cart)
        out = c.halo_exchange(dev, {width}, cart)
        assert out is dev
        assert np.array_equal(cupy.asnumpy(dev), host)
        assert not np.array_equal(host, rng.standard_normal({shape}))
        print("DEVICE HALO OK")
    """
    out = run_mpi(nranks, code, timeout=300, env={"BAOBAB_CUDA_AWARE": "0"} if staged else None).stdout
    assert out.count("DEVICE HALO OK") == nranks, out


# ---- the N-body application with its forces on the GPU (apps/nbody, --device) -------------------

NBODY = HERE.parent / "apps" / "nbody"


def _final_positions(out):
    import h5py
    with h5py.File(out / "snapshot_0002.h5", "r") as f:
        return f["PartType1"]["Coordinates"][:]


@pytest.mark.parametrize("parallel", ["jreduce", "igather"])
@pytest.mark.parametrize("nranks", [1, 2])
def test_nbody_app_on_device_matches_host(tmp_path, nranks, parallel):
    common = ["--n", 1024, "--t-end", 0.25, "--dt-out", 0.125, "--parallel", parallel, "--no-core", "--quiet"]
    run_mpi(nranks, NBODY / "nbody.py", *common, "--out", tmp_path / "host", timeout=300)
    p = run_mpi(nranks, NBODY / "nbody.py", *common, "--device", "--out", tmp_path / "device", timeout=300)
    assert "Traceback" not in p.stdout, p.stdout
    host, dev = _final_positions(tmp_path / "host"), _final_positions(tmp_path / "device")
    assert np.abs(host - dev).max() <= 1e-9 * np.abs(host).max(), np.abs(host - dev).max()


def test_nbody_app_on_device_ring_and_restart_on_host(tmp_path):
    """The ring mode on the device, stopped after some steps and continued on
    the host: the same run as on the host throughout, to round-off."""
    common = ["--n", 512, "--t-end", 0.25, "--dt-out", 0.125, "--parallel", "ring", "--no-core", "--quiet"]
    run_mpi(2, NBODY / "nbody.py", *common, "--out", tmp_path / "host", timeout=300)
    run_mpi(2, NBODY / "nbody.py", *common, "--device", "--stop-after-steps", 100, "--out", tmp_path / "cut",
            timeout=300, expect_rc=3)
    run_mpi(2, NBODY / "nbody.py", *common, "--out", tmp_path / "cut", timeout=300)
    host, cut = _final_positions(tmp_path / "host"), _final_positions(tmp_path / "cut")
    assert np.abs(host - cut).max() <= 1e-9 * np.abs(host).max(), np.abs(host - cut).max()


@pytest.mark.parametrize("n,k", [(4096, 1), (4096, 5), (16384, 64), (1000, 300)])
def test_nbody_split_kernel_on_and_off_agree(n, k):
    """The j-split kernel and one thread per target on a small active set: within
    1e-12, the split's bits the same from call to call, and the automatic choice
    takes the split."""
    import sys
    sys.path.insert(0, str(NBODY))
    import kernels
    rng = np.random.default_rng(n + k)
    x, v = rng.standard_normal((n, 3)), rng.standard_normal((n, 3))
    m = rng.uniform(0.5, 1.5, n) / n
    act = np.sort(rng.choice(n, k, replace=False))
    d = [cupy.asarray(a) for a in (x[act], v[act], act, x, v, m)]
    on = [cupy.asnumpy(a) for a in kernels.forces(*d, eps2=1e-6, split="on")]
    again = [cupy.asnumpy(a) for a in kernels.forces(*d, eps2=1e-6, split="on")]
    off = [cupy.asnumpy(a) for a in kernels.forces(*d, eps2=1e-6, split="off")]
    for a, b, c in zip(on, off, again):
        assert np.array_equal(a, c)
        scale = np.abs(b).max()
        assert np.abs(a - b).max() <= 1e-12 * scale, (np.abs(a - b).max(), scale)
    assert kernels.native().device_plan(k, n, "auto")["split"]
    assert not kernels.native().device_plan(1 << 20, n, "auto")["split"]

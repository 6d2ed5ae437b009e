"""The N-body application's kernels (apps/nbody/src, its extension module
baobab_apps._nbody, and apps/nbody/kernels.py over it) against the numpy
implementation of the same formulas; argument checks; momentum conservation;
the device path on cupy arrays when a CUDA device is present; the app's module
apart from the runtime's (import baobab loads no N-body code)."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import baobab
from baobab import _core

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "apps" / "nbody"))
import kernels  # noqa: E402
from conftest import clean_env  # noqa: E402

nb = kernels.native()  # baobab_apps._nbody

try:
    import cupy
    HAVE_DEVICE = _core.cuda_available() and cupy.cuda.runtime.getDeviceCount() > 0
except Exception:  # noqa: BLE001 - no cupy, no driver, no device
    HAVE_DEVICE = False


def cluster(n, seed, first_id=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    x[::5] *= 0.01  # a dense core
    v = rng.standard_normal((n, 3))
    m = 10.0 ** rng.uniform(0, 2, n) / n
    return x, v, m, first_id + np.arange(n, dtype=np.int64)


def rel(a, b):
    """max over rows of |a - b| / |b| (row norms for (n, 3))."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 1:
        return float(np.max(np.abs(a - b) / np.abs(b))) if a.size else 0.0
    return float(np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1))) if a.size else 0.0


@pytest.mark.parametrize("n,ni,eps2,first_id", [
    (1, 1, 0.0, 0), (2, 2, 0.0, 5), (17, 17, 1e-3, -3), (300, 1, 0.0, 0), (300, 13, 1e-6, 100),
    (1000, 1000, 1e-4, -500), (1000, 257, 0.0, 7),
])
@pytest.mark.parametrize("threads", [1, None])
def test_matches_numpy(n, ni, eps2, first_id, threads):
    x, v, m, ids = cluster(n, seed=n + ni, first_id=first_id)
    rng = np.random.default_rng(ni)
    pick = rng.choice(n, ni, replace=False)
    xi, vi, idi = x[pick], v[pick], ids[pick]
    got = kernels.forces(xi, vi, idi, x, v, m, first_id, eps2, threads=threads)
    ref = kernels.forces_numpy(xi, vi, idi, x, v, m, first_id, eps2)
    if n == 1:  # only the self pair: all zero
        for g in got:
            assert not np.any(g)
        return
    for g, r in zip(got, ref):
        assert rel(g, r) < 1e-12


def test_outside_ids_and_foreign_targets():
    x, v, m, ids = cluster(400, seed=1, first_id=1000)
    t = cluster(9, seed=2)
    idi = np.array([-2**63, 2**63 - 1, 999, 1400, 1000, 1399, 0, 5, 1200], dtype=np.int64)
    got = kernels.forces(t[0], t[1], idi, x, v, m, 1000, 1e-3)
    ref = kernels.forces_numpy(t[0], t[1], idi, x, v, m, 1000, 1e-3)
    for g, r in zip(got, ref):
        assert rel(g, r) < 1e-12


def test_batch_independent_bitwise():
    x, v, m, ids = cluster(700, seed=3)
    full = kernels.forces(x, v, ids, x, v, m, 0, 0.0)
    one = kernels.forces(x, v, ids, x, v, m, 0, 0.0, threads=1)
    for a, b in zip(full, one):
        assert np.array_equal(a, b)
    for i, lo, hi in [(0, 0, 1), (100, 95, 117), (699, 690, 700), (333, 333, 334)]:
        sub = kernels.forces(x[lo:hi], v[lo:hi], ids[lo:hi], x, v, m, 0, 0.0)
        for a, b in zip(sub, full):
            assert np.array_equal(a[i - lo], b[i])


def test_momentum_conserved():
    x, v, m, ids = cluster(1500, seed=4)
    acc, jerk, pot = kernels.forces(x, v, ids, x, v, m, 0, 1e-6)
    scale = np.sum(m[:, None] * np.abs(acc))
    assert np.all(np.abs(np.sum(m[:, None] * acc, axis=0)) < 1e-12 * scale)
    assert np.all(np.abs(np.sum(m[:, None] * jerk, axis=0)) < 1e-12 * np.sum(m[:, None] * np.abs(jerk)))
    assert np.all(pot < 0)


def test_self_pair_skipped_by_id():
    x, v, m, ids = cluster(50, seed=5)
    acc, jerk, pot = kernels.forces(x, v, ids, x, v, m, 0, 0.0)
    assert np.all(np.isfinite(acc)) and np.all(np.isfinite(jerk)) and np.all(np.isfinite(pot))
    with np.errstate(all="ignore"):
        acc, jerk, pot = kernels.forces(x[:3], v[:3], ids[:3] + 1000, x, v, m, 0, 0.0)
    assert not np.any(np.isfinite(pot))  # coincident pair with another id: not skipped


def test_empty():
    x, v, m, ids = cluster(10, seed=6)
    acc, jerk, pot = kernels.forces(x, v, ids, x[:0], v[:0], m[:0])
    assert not np.any(acc) and not np.any(jerk) and not np.any(pot)
    acc, jerk, pot = kernels.forces(x[:0], v[:0], ids[:0], x, v, m)
    assert acc.shape == (0, 3) and pot.shape == (0,)


def test_isa():
    assert nb.forces_isa() in ("avx512", "avx2", "baseline")
    assert kernels.forces_isa() == nb.forces_isa()


def _args(n=8, ni=4):
    x, v, m, ids = cluster(n, seed=7)
    return dict(xi=x[:ni].copy(), vi=v[:ni].copy(), idi=ids[:ni].copy(), x=x, v=v, m=m, first_id=0, eps2=0.0,
                acc=np.empty((ni, 3)), jerk=np.empty((ni, 3)), pot=np.empty(ni))


@pytest.mark.parametrize("name,bad", [
    ("xi", lambda a: a["xi"].astype(np.float32)),
    ("xi", lambda a: a["xi"][:, :2].copy()),
    ("xi", lambda a: a["xi"].ravel()),
    ("vi", lambda a: a["vi"][:3].copy()),
    ("idi", lambda a: a["idi"].astype(np.int32)),
    ("idi", lambda a: a["idi"][:2].copy()),
    ("x", lambda a: np.asfortranarray(a["x"])),
    ("x", lambda a: np.ascontiguousarray(a["x"].T)),
    ("v", lambda a: a["v"][1:].copy()),
    ("m", lambda a: a["m"][:, None].copy()),
    ("m", lambda a: a["m"].astype(np.int64)),
    ("acc", lambda a: np.empty((5, 3))),
    ("jerk", lambda a: np.empty((4, 3), dtype=np.float32)),
    ("pot", lambda a: np.empty(3)),
    ("x", lambda a: np.zeros((16, 3))[::2]),
])
def test_bad_arguments(name, bad):
    a = _args()
    a[name] = bad(a)
    with pytest.raises(baobab.InvalidArgument, match=name):
        nb.forces(**a)


def test_bad_threads_and_shapes_via_kernels():
    x, v, m, ids = cluster(8, seed=8)
    with pytest.raises(baobab.InvalidArgument):
        nb.forces(**dict(_args(), threads=-1))
    with pytest.raises(baobab.InvalidArgument):
        kernels.forces(x, v, ids[:3], x, v, m)


def test_device_without_cuda_raises():
    if HAVE_DEVICE:
        pytest.skip("a CUDA device is present")
    with pytest.raises(baobab.Error):
        nb.forces_device(0, 0, 0, 1, 0, 0, 0, 1, 0, 0.0, 0, 0, 0, 0)


@pytest.mark.skipif(_core.cuda_status().startswith("not compiled"), reason="baobab built without CUDA")
def test_device_split_plan_and_setting():
    """The j-split's plan (arithmetic, no device needed for 'on' and 'off') and
    BAOBAB_NBODY_SPLIT, read once per process."""
    p = nb.device_plan(7, 16384, "on")
    assert p == {"split": True, "chunk": 256, "chunks": 64, "slab": 7, "work_bytes": 7 * 64 * 7 * 8}
    for ni, n in [(1, 1), (1, 257), (1000, 65536), (1000, 65537), (40000, 10 ** 6), (10 ** 6, 3000)]:
        p = nb.device_plan(ni, n, "on")
        assert p["chunk"] % 128 == 0 and p["chunk"] >= 256 and 1 <= p["chunks"] <= 256
        assert (p["chunks"] - 1) * p["chunk"] < n <= p["chunks"] * p["chunk"]
        assert 1 <= p["slab"] <= ni and p["work_bytes"] == p["slab"] * p["chunks"] * 56
        assert p["slab"] == ni or p["work_bytes"] <= 64 << 20
    assert nb.device_plan(40000, 10 ** 6, "on")["slab"] < 40000      # several passes
    assert nb.device_plan(7, 16384, "off") == {"split": False, "chunk": 0, "chunks": 0, "slab": 0,
                                                        "work_bytes": 0}
    assert not nb.device_plan(0, 100, "on")["split"] and not nb.device_plan(5, 0, "on")["split"]
    with pytest.raises(baobab.InvalidArgument, match="auto, on or off"):
        nb.device_plan(1, 10, "sometimes")
    code = "from baobab_apps import _nbody; print(_nbody.device_split())"
    for value, want in [("on", "on"), ("off", "off"), ("auto", "auto"), (None, "auto")]:
        env = clean_env({"BAOBAB_NBODY_SPLIT": value} if value else None)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
        assert out.stdout.strip() == want, (value, out.stdout, out.stderr)
    # any other value is refused, naming the variable (it used to mean auto, silently)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=clean_env({"BAOBAB_NBODY_SPLIT": "bogus"}), timeout=60)
    assert out.returncode != 0 and "BAOBAB_NBODY_SPLIT='bogus'" in out.stderr, out.stderr


@pytest.mark.skipif(not HAVE_DEVICE, reason="no CUDA device")
@pytest.mark.parametrize("n,ni,eps2", [(1, 1, 0.0), (100, 3, 0.0), (1000, 1000, 1e-4), (4097, 300, 1e-6)])
def test_device_matches_host(n, ni, eps2):
    x, v, m, ids = cluster(n, seed=9, first_id=11)
    pick = np.random.default_rng(1).choice(n, ni, replace=False)
    host = kernels.forces(x[pick], v[pick], ids[pick], x, v, m, 11, eps2)
    dev = kernels.forces(*(cupy.asarray(a) for a in (x[pick], v[pick], ids[pick], x, v, m)), first_id=11, eps2=eps2)
    cupy.cuda.get_current_stream().synchronize()
    for d, h in zip(dev, host):
        d = cupy.asnumpy(d)
        if n == 1:
            assert not np.any(d)
        else:
            assert rel(d, h) < 1e-12


def test_predictor_corrector_and_active_set_compiled():
    """The integrator's per-step work in the app's kernels: the predictor gives
    numpy's bits for the same expression; the active set is every body due at
    the earliest time; the corrector's steps are commensurate powers of two."""
    rng = np.random.default_rng(3)
    n = 50
    x, v, a, j = (rng.standard_normal((n, 3)) for _ in range(4))
    t = rng.integers(0, 8, n) * 0.125
    dt = np.full(n, 0.125)
    xp, vp = np.empty((n, 3)), np.empty((n, 3))
    nb.predict(x, v, a, j, t, None, 0, n, 1.0, xp, vp)
    h = (1.0 - t)[:, None]
    assert np.array_equal(xp, ((j * (h * (1 / 3)) + a) * (0.5 * h) + v) * h + x)
    assert np.array_equal(vp, (j * (0.5 * h) + a) * h + v)
    idx = np.array([3, 7, 11], np.int64)
    xs, vs = np.empty((3, 3)), np.empty((3, 3))
    nb.predict(x, v, a, j, t, idx, 0, 0, 1.0, xs, vs)
    assert np.array_equal(xs, xp[idx]) and np.array_equal(vs, vp[idx])
    with pytest.raises(baobab.InvalidArgument):
        nb.predict(x, v, a, j, t, np.array([n], np.int64), 0, 0, 1.0, xs[:1], vs[:1])
    act = np.empty(n, np.int64)
    t1, k = nb.active(t, dt, act)
    assert t1 == (t + dt).min() and list(act[:k]) == list(np.flatnonzero(t + dt == t1))
    a2 = np.zeros((n, 3))
    pot = np.zeros(n)
    tt, dd = t.copy(), dt.copy()
    acts = act[:k].copy()
    nb.correct(acts, xp[acts], vp[acts], a[acts] * 1.01, j[acts], -np.ones(k), t1, 0.02, 0.125, 2.0 ** -30,
                        x, v, a, j, a2, pot, tt, dd)
    assert np.all(tt[acts] == t1) and np.all(pot[acts] == -1)
    assert np.all(np.frexp(dd)[0] == 0.5) and np.all(np.fmod(t1, dd[acts]) == 0) and np.all(dd[acts] <= 0.125)


@pytest.mark.parametrize("t1", [float("nan"), float("inf")])
def test_block_steps_refuse_a_time_that_is_not_finite(t1):
    # A non-finite time has no power-of-two step dividing it: the search used to loop for ever.
    dt = np.zeros(3)
    with pytest.raises(baobab.InvalidArgument, match="not finite"):
        nb.block_steps(np.full(3, 0.01), t1, 0.125, 2.0 ** -30, dt)


def test_import_baobab_loads_no_nbody_code():
    """The runtime holds nothing of the app: importing baobab (and creating a
    communicator) loads no N-body module, baobab._core has no N-body entry
    point and its binary names none; the app's module is baobab_apps._nbody."""
    code = """
import sys
import baobab
from baobab import _core
c = baobab.Communicator()
assert not [m for m in sys.modules if "nbody" in m or m.startswith("baobab_apps")], sorted(sys.modules)
assert not [a for a in dir(_core) if "nbody" in a.lower()]
assert b"nbody" not in open(_core.__file__, "rb").read().lower()
from baobab_apps import _nbody
assert _nbody.__name__ == "baobab_apps._nbody" and "baobab_apps" in _nbody.__file__
print("APART")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=clean_env(), timeout=120)
    assert out.returncode == 0 and "APART" in out.stdout, out.stderr


@pytest.mark.parametrize("var,value", [("BAOBAB_NBODY_SPLIT", "sometimes"), ("BAOBAB_NBODY_ISA", "sse9")])
def test_app_environment_is_checked_by_the_app(var, value):
    """The app's variables are the app's to check: check_environment() raises
    baobab.InvalidArgument naming a bad one (the runtime's environment check
    covers every BAOBAB_*_ISA cap, but not BAOBAB_NBODY_SPLIT)."""
    code = f"""
import sys
sys.path.insert(0, {str(Path(kernels.__file__).parent)!r})
import baobab, kernels
try:
    kernels.check_environment()
except baobab.InvalidArgument as e:
    print("REFUSED", e)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=clean_env({var: value}), timeout=60)
    assert f"REFUSED {var}='{value}'" in out.stdout, (out.stdout, out.stderr)
    good = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=clean_env({"BAOBAB_NBODY_SPLIT": "off", "BAOBAB_NBODY_ISA": "baseline"}), timeout=60)
    assert good.returncode == 0 and "REFUSED" not in good.stdout, (good.stdout, good.stderr)

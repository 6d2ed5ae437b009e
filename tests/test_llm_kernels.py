"""The LLM application's kernels (apps/llm/src, the extension module
baobab_apps._llm, and apps/llm/ops.py over it with its xp fallback) against
PyTorch in float64 (layer_norm, gelu(approximate='tanh'), cross_entropy, and
autograd for every gradient); the padded vocabulary and the vocabulary-parallel
pieces against the fused kernel; the same bits for 1, 2 and 3 threads; every
SIMD tier; bfloat16 against ml_dtypes; argument checks.

Tolerances, as max|got - ref| / max|ref| per output. The inputs are rounded to
the kernel's dtype first and the reference runs on those exact values in
float64, so a difference is the kernel's own rounding only. float64: 1e-12.
float32 (unit roundoff u = 6e-8): an output is a few roundings per element plus
row sums of C terms (error bound about (C / W + log2 W) u = 30 u for C = 384
in 16 lanes) or column sums in blocks of 32 rows ((32 + N / 32) u = 60 u for
N = 1024); TOL32 = 1e-5, about 170 u, leaves a margin of 3 over those bounds and
is still far below what a wrong formula gives (1e-3 and more).
"""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import baobab

LLM = Path(__file__).resolve().parents[1] / "apps" / "llm"


def _load():
    # by path, under a name of its own (apps/nbody has a ops.py too)
    spec = importlib.util.spec_from_file_location("llm_kernels", LLM / "ops.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


K = _load()
TOL = {np.float32: 1e-5, np.float64: 1e-12}
IMPLS = {"compiled": K, "fallback": K.fallback}


@pytest.fixture(scope="module")
def torch():
    import torch  # a test dependency: make test installs it
    return torch


def rel(got, ref):
    got = np.asarray(got, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert got.shape == ref.shape
    if ref.size == 0:
        return 0.0
    return float(np.max(np.abs(got - ref)) / max(np.max(np.abs(ref)), 1e-300))


def t64(torch, a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64, requires_grad=grad)


def data(rng, dtype, *shape, scale=1.0, shift=0.0):
    return (shift + scale * rng.standard_normal(shape)).astype(dtype)


SHAPES = [(1, 3), (5, 7), (33, 130), (64, 384)]  # tails of every register width


# ---------------------------------------------------------------- LayerNorm

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", SHAPES)
def test_layernorm(torch, impl, dtype, n, c):
    K_ = IMPLS[impl]
    rng = np.random.default_rng(n * 1000 + c)
    x = data(rng, dtype, n, c, scale=2.0, shift=3.0)  # an offset: the variance is of centred values
    w, b, dy = data(rng, dtype, c), data(rng, dtype, c), data(rng, dtype, n, c)
    eps = 1e-5
    y, mean, rstd = K_.layernorm_forward(x, w, b, eps)
    dx, dw, db = K_.layernorm_backward(dy, x, w, mean, rstd)
    for a in (y, mean, rstd, dx, dw, db):
        assert a.dtype == dtype
    X, W, B = t64(torch, x, True), t64(torch, w, True), t64(torch, b, True)
    Y = torch.nn.functional.layer_norm(X, (c,), W, B, eps)
    Y.backward(t64(torch, dy))
    ref_mean = X.detach().mean(-1)
    ref_rstd = 1 / torch.sqrt(X.detach().var(-1, unbiased=False) + eps)
    tol = TOL[dtype]
    assert rel(y, Y.detach().numpy()) < tol
    assert rel(mean, ref_mean.numpy()) < tol
    assert rel(rstd, ref_rstd.numpy()) < tol
    assert rel(dx, X.grad.numpy()) < tol
    assert rel(dw, W.grad.numpy()) < tol
    assert rel(db, B.grad.numpy()) < tol


# ---------------------------------------------------------------- GELU, bias, residual

@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", SHAPES)
def test_bias_gelu(torch, impl, dtype, n, c):
    K_ = IMPLS[impl]
    rng = np.random.default_rng(c)
    h = data(rng, dtype, n, c, scale=4.0)
    h.flat[::7] = -12  # deep in the negative tail, where 1 + tanh cancels
    h.flat[::11] = 9
    bias, da = data(rng, dtype, c), data(rng, dtype, n, c)
    u, a = K_.bias_gelu_forward(h, bias)
    assert np.array_equal(u, h + bias)  # the same IEEE sum
    du = K_.gelu_backward(da, u)
    U = t64(torch, u, True)
    A = torch.nn.functional.gelu(U, approximate="tanh")
    A.backward(t64(torch, da))
    assert rel(a, A.detach().numpy()) < TOL[dtype]
    assert rel(du, U.grad.numpy()) < TOL[dtype]
    u2, a2 = K_.bias_gelu_forward(h, None)
    assert u2 is h
    assert rel(a2, torch.nn.functional.gelu(t64(torch, h), approximate="tanh").numpy()) < TOL[dtype]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_far_out(torch, impl, dtype):
    """Far from 0 the kernel takes the limits: gelu and its slope are exactly 0 at u <= -u0
    (-10 float32, -20 float64; the true values are below 1e-37 resp. 1e-260 there), u and 1 at
    u >= u0; between, PyTorch's value to the tolerance, up to PyTorch's own rounding of
    1 + tanh(z) (|u| 2^-52: it returns 0 where the true value is 1e-33); nothing overflows into
    inf or NaN; NaN stays NaN."""
    K_ = IMPLS[impl]
    big = 1e30 if dtype == np.float32 else 1e150
    u0 = 10 if dtype == np.float32 else 20
    u = np.array([[-big, -1e12, -1e4, -30, -20.5, -20, -19.5, -12, -10.5, -10, -9.5, -5, 0, 5, 9.5, 10, 10.5, 12,
                   19.5, 20, 20.5, 30, 1e4, 1e12, big]], dtype=dtype)
    a = K_.bias_gelu_forward(u, None)[1]
    du = K_.gelu_backward(np.ones_like(u), u)
    U = t64(torch, u, True)
    A = torch.nn.functional.gelu(U, approximate="tanh")
    A.sum().backward()
    for got, ref in ((a, A.detach().numpy()), (du, U.grad.numpy())):
        assert np.all(np.isfinite(got))
        assert np.all(np.abs(got - ref) <= TOL[dtype] * np.abs(ref) + np.abs(u) * 2.0 ** -52), (got, ref)
    low, high = u <= -u0, u >= u0
    assert np.all(a[low] == 0) and np.all(du[low] == 0)
    assert np.array_equal(a[high], u[high]) and np.all(du[high] == 1)
    nan = np.array([[np.nan, 1.0]], dtype=dtype)
    assert np.isnan(K_.bias_gelu_forward(nan, None)[1][0, 0])
    assert np.isnan(K_.gelu_backward(np.ones_like(nan), nan)[0, 0])


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bias_residual(impl, dtype):
    K_ = IMPLS[impl]
    rng = np.random.default_rng(4)
    h, r, bias = data(rng, dtype, 37, 91), data(rng, dtype, 37, 91), data(rng, dtype, 91)
    ref = (h + bias) + r  # the kernel's order: the same bits
    assert np.array_equal(K_.bias_residual(h, bias, r), ref)
    assert np.array_equal(K_.bias_residual(h, None, r), h + r)
    out = np.full_like(h, np.nan)
    assert K_.bias_residual(h, bias, r, out=out) is out and np.array_equal(out, ref)
    for which in ("h", "residual"):
        hh, rr = h.copy(), r.copy()
        dst = hh if which == "h" else rr
        assert K_.bias_residual(hh, bias, rr, out=dst) is dst
        assert np.array_equal(dst, ref)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,c", [(1, 5), (31, 17), (33, 384), (1000, 40)])
def test_bias_grad(torch, impl, dtype, n, c):
    dy = data(np.random.default_rng(n), dtype, n, c)
    db = IMPLS[impl].bias_grad(dy)
    assert db.dtype == dtype
    assert rel(db, t64(torch, dy).sum(0).numpy()) < TOL[dtype]


# ---------------------------------------------------------------- cross-entropy

def torch_xent(torch, logits, targets, scale):
    L = t64(torch, logits, True)
    losses = torch.nn.functional.cross_entropy(L, torch.tensor(targets), reduction="none")
    (losses.sum() * scale).backward()
    return losses.detach().numpy(), L.grad.numpy()


def padded(rng, logits, vp):
    """logits with vp - V padding columns of large garbage (must take no part)."""
    n, v = logits.shape
    out = np.empty((n, vp), logits.dtype)
    out[:, :v] = logits
    out[:, v:] = 50 + 10 * rng.random((n, vp - v))
    return out


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,v,pad", [(1, 1, 0), (9, 5, 0), (40, 256, 0), (17, 257, 0), (23, 51, 1), (30, 100, 28)])
def test_xent(torch, impl, dtype, n, v, pad):
    K_ = IMPLS[impl]
    rng = np.random.default_rng(v + pad)
    logits = data(rng, dtype, n, v, scale=3.0)
    targets = rng.integers(0, v, n).astype(np.int64)
    scale = 1 / 7
    ref_loss, ref_grad = torch_xent(torch, logits, targets, scale)
    work = padded(rng, logits, v + pad)
    losses = K_.xent_forward_backward(work, targets, scale, valid=v if pad else None)
    assert losses.dtype == dtype
    assert rel(losses, ref_loss) < TOL[dtype]
    assert rel(work[:, :v], ref_grad) < TOL[dtype]
    assert not np.any(work[:, v:])  # padding: gradient exactly 0


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shards,v", [(2, 64), (2, 51), (3, 50), (3, 7)])
def test_xent_vocab_parallel(torch, impl, dtype, shards, v):
    """Column shards (the last padded) recombined as the model does (max, then sums over TP)
    equal the fused kernel on the whole vocabulary, and PyTorch."""
    K_ = IMPLS[impl]
    rng = np.random.default_rng(shards * 100 + v)
    n, scale = 21, 0.25
    logits = data(rng, dtype, n, v, scale=3.0)
    targets = rng.integers(0, v, n).astype(np.int64)
    vl = -(-v // shards)
    full = padded(rng, logits, vl * shards)
    parts = [np.ascontiguousarray(full[:, s * vl:(s + 1) * vl]) for s in range(shards)]
    valid = [min(vl, v - s * vl) for s in range(shards)]
    gmax = np.max([K_.xent_local_max(p, q) for p, q in zip(parts, valid)], axis=0)
    pieces = [K_.xent_local_sumexp(p, targets, s * vl, gmax, q) for s, (p, q) in enumerate(zip(parts, valid))]
    sumexp = np.sum([s for s, _ in pieces], axis=0)
    tlogit = np.sum([t for _, t in pieces], axis=0)
    lse = gmax + np.log(sumexp)
    for s, (p, q) in enumerate(zip(parts, valid)):
        assert K_.xent_grad_(p, targets, s * vl, lse, scale, q) is None
    grad = np.concatenate(parts, axis=1)
    assert not np.any(grad[:, v:])
    fused = logits.copy()
    fused_loss = K.xent_forward_backward(fused, targets, scale)
    tol = TOL[dtype]
    assert rel(lse - tlogit, fused_loss) < tol
    assert rel(grad[:, :v], fused) < tol
    ref_loss, ref_grad = torch_xent(torch, logits, targets, scale)
    assert rel(lse - tlogit, ref_loss) < tol
    assert rel(grad[:, :v], ref_grad) < tol


def test_xent_target_logit_outside_shard():
    logits = np.arange(12.0).reshape(2, 6)
    targets = np.array([3, 9], dtype=np.int64)
    for impl in IMPLS.values():
        s, t = impl.xent_local_sumexp(logits, targets, 2, np.zeros(2), 5)  # shard: ids 2..6
        assert t.tolist() == [logits[0, 1], 0.0]
        g = logits.copy()
        impl.xent_grad_(g, targets, 2, np.full(2, 20.0), 1.0, 5)
        assert g[0, 1] == np.exp(logits[0, 1] - 20) - 1 and g[1, 5] == 0
        assert np.all(g[1, :5] == np.exp(logits[1, :5] - 20))


# ---------------------------------------------------------------- threads and tiers

def test_same_bits_for_any_thread_count():
    """The column sums (dw, db, bias_grad) add fixed row blocks in a fixed order: the same bits
    for 1, 2 and 3 threads (the size is chosen so that 3 threads really run)."""
    rng = np.random.default_rng(5)
    c, v = 400, 300
    for dtype in (np.float32, np.float64):
        n = (6 << 20) // (c * np.dtype(dtype).itemsize) + 1  # dy of just over 6 MiB
        assert K.native().plan_threads(n * c * np.dtype(dtype).itemsize, 3) == 3  # bias_grad's; the others do more
        x, dy = data(rng, dtype, n, c, shift=1.0), data(rng, dtype, n, c)
        w, b = data(rng, dtype, c), data(rng, dtype, c)
        logits = data(rng, dtype, n, v, scale=3.0)
        targets = rng.integers(0, v, n).astype(np.int64)
        runs = []
        for th in (1, 2, 3):
            y, mean, rstd = K.layernorm_forward(x, w, b, threads=th)
            g = logits.copy()
            out = [y, mean, rstd, *K.layernorm_backward(dy, x, w, mean, rstd, threads=th),
                   *K.bias_gelu_forward(x, b, threads=th), K.gelu_backward(dy, x, threads=th),
                   K.bias_grad(dy, threads=th), K.xent_forward_backward(g, targets, 0.5, threads=th), g]
            runs.append(out)
        for other in runs[1:]:
            for a, b_ in zip(runs[0], other):
                assert a.tobytes() == b_.tobytes()


TIER_SCRIPT = r"""
import importlib.util, sys
import numpy as np
spec = importlib.util.spec_from_file_location("llm_kernels", sys.argv[1])
K = importlib.util.module_from_spec(spec); spec.loader.exec_module(K)
assert K.isa() == sys.argv[2], (K.isa(), sys.argv[2])
rng = np.random.default_rng(0)
def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / np.max(np.abs(b))
for dt, tol in ((np.float32, 1e-5), (np.float64, 1e-13)):
    for n, c in ((3, 3), (19, 37), (8, 64)):
        x = (1 + rng.standard_normal((n, c))).astype(dt); w = rng.standard_normal(c).astype(dt)
        b = rng.standard_normal(c).astype(dt); dy = rng.standard_normal((n, c)).astype(dt)
        h = (4 * rng.standard_normal((n, c))).astype(dt)
        fw, fb = K.layernorm_forward(x, w, b), K.fallback.layernorm_forward(x, w, b)
        pairs = list(zip(fw, fb))
        pairs += zip(K.layernorm_backward(dy, x, w, *fw[1:]), K.fallback.layernorm_backward(dy, x, w, *fw[1:]))
        pairs += zip(K.bias_gelu_forward(h, b), K.fallback.bias_gelu_forward(h, b))
        pairs += [(K.gelu_backward(dy, h), K.fallback.gelu_backward(dy, h)), (K.bias_grad(dy), dy.sum(0)),
                  (K.bias_residual(h, b, x), h + b + x)]
        lg = (3 * rng.standard_normal((n, c + 2))).astype(dt); t = rng.integers(0, c, n)
        g1, g2 = lg.copy(), lg.copy()
        pairs += [(K.xent_forward_backward(g1, t, 0.5, c), K.fallback.xent_forward_backward(g2, t, 0.5, c)), (g1, g2)]
        m = K.xent_local_max(lg, c); pairs.append((m, lg[:, :c].max(1)))
        pairs += zip(K.xent_local_sumexp(lg, t, 0, m, c), K.fallback.xent_local_sumexp(lg, t, 0, m, c))
        g1, g2 = lg.copy(), lg.copy(); lse = m + 1.5
        K.xent_grad_(g1, t, 0, lse, 0.5, c); K.fallback.xent_grad_(g2, t, 0, lse, 0.5, c); pairs.append((g1, g2))
        for i, (p, q) in enumerate(pairs):
            assert rel(p, q) < tol, (dt, n, c, i, rel(p, q))
    bits = np.random.default_rng(1).integers(0, 2**32, 100003, dtype=np.uint64).astype(np.uint32).view(np.float32)
    assert np.array_equal(K.to_bfloat16(bits).view(np.uint16), K.fallback.to_bfloat16(bits).view(np.uint16))
print("ok")
"""


@pytest.mark.parametrize("tier", ["baseline", "avx2", "avx512"])
def test_every_tier(tier):
    """Each instruction-set tier (BAOBAB_LLM_ISA caps the CPU's; tails of every width) against
    the fallback, in a process of its own (the tier is chosen once per process)."""
    if tier not in K.native().tiers():
        pytest.skip(f"this CPU does not run {tier}")
    env = dict(os.environ, BAOBAB_LLM_ISA=tier)
    p = subprocess.run([sys.executable, "-c", TIER_SCRIPT, str(LLM / "ops.py"), tier], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_bad_isa_cap():
    env = dict(os.environ, BAOBAB_LLM_ISA="sse9")
    p = subprocess.run([sys.executable, "-c", TIER_SCRIPT, str(LLM / "ops.py"), "x"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode != 0 and "BAOBAB_LLM_ISA" in p.stderr


# ---------------------------------------------------------------- bfloat16

def bf16_cases():
    """Every bfloat16 high half with low halves at and around the rounding points: ties
    (0x8000, odd and even), just below/above, zero; so also every NaN class (payload only in
    the low half included), infinities, subnormals and the overflow to infinity."""
    hi = np.arange(1 << 16, dtype=np.uint32) << 16
    lo = np.array([0x0000, 0x0001, 0x4000, 0x7FFF, 0x8000, 0x8001, 0xC000, 0xFFFF], dtype=np.uint32)
    return (hi[:, None] | lo[None, :]).reshape(-1).view(np.float32)


@pytest.mark.parametrize("impl", IMPLS)
def test_bfloat16_vs_ml_dtypes(impl):
    import ml_dtypes
    K_ = IMPLS[impl]
    x = bf16_cases()
    got = K_.to_bfloat16(x)
    assert got.dtype == ml_dtypes.bfloat16 and got.shape == x.shape
    with np.errstate(invalid="ignore"):
        ref = x.astype(ml_dtypes.bfloat16)
    assert np.array_equal(got.view(np.uint16), ref.view(np.uint16))
    every = np.arange(1 << 16, dtype=np.uint16).view(ml_dtypes.bfloat16)
    for dt in (np.float32, np.float64):
        back = K_.from_bfloat16(every, dt)
        assert back.dtype == dt
        with np.errstate(invalid="ignore"):  # signalling NaNs
            exact = every.astype(dt)
        assert np.array_equal(back.view(np.uint8), exact.view(np.uint8))
    x2 = x[:1200].reshape(30, 40)  # any shape
    assert np.array_equal(K_.to_bfloat16(x2).view(np.uint16), ref[:1200].reshape(30, 40).view(np.uint16))


@pytest.mark.parametrize("impl", IMPLS)
def test_bfloat16_from_float64_rounds_once(impl):
    """float64 -> bfloat16 rounds once, to nearest even: values just off a bfloat16 midpoint,
    which float32 would round onto the midpoint (ml_dtypes' astype rounds via float32 and errs
    there), go to their side; the midpoint itself to even. Elsewhere it equals ml_dtypes."""
    import ml_dtypes
    K_ = IMPLS[impl]
    rng = np.random.default_rng(6)
    b = rng.integers(0, 0x7F7F, 4000, dtype=np.uint32)  # finite positive bfloat16, subnormals included
    b[:8] = [0, 1, 2, 3, 0x7F, 0x80, 0x81, 0x7F7E]
    lo = (b << 16).view(np.float32).astype(np.float64)
    hi = ((b + 1) << 16).view(np.float32).astype(np.float64)
    mid = (lo + hi) / 2  # exact in float64
    off = (hi - lo) * 2.0 ** -20  # below float32's resolution there: float32 rounds back onto mid
    sign = np.where(rng.random(b.size) < 0.5, -1.0, 1.0)
    x = np.concatenate([mid + off, mid - off, mid]) * np.concatenate([sign] * 3)
    up, down = b + 1, b
    even = np.where(b % 2 == 0, b, b + 1)
    want = np.concatenate([up, down, even]).astype(np.uint16) | np.where(np.concatenate([sign] * 3) < 0, 0x8000, 0)
    assert np.array_equal(K_.to_bfloat16(x).view(np.uint16), want.astype(np.uint16))
    y = np.concatenate([rng.standard_normal(5000) * 10.0 ** rng.integers(-40, 39, 5000),
                        [np.inf, -np.inf, np.nan, -np.nan, 1e300, -1e300, 1e-300, -1e-300, 0.0, -0.0, 3.4e38]])
    with np.errstate(over="ignore", invalid="ignore"):
        ref = y.astype(ml_dtypes.bfloat16)
        ref32 = y.astype(np.float32)
    safe = (ref32.view(np.uint32) & 0xFFFF) != 0x8000  # not a double-rounding case
    assert np.array_equal(K_.to_bfloat16(y).view(np.uint16)[safe], ref.view(np.uint16)[safe])


# ---------------------------------------------------------------- arguments

def test_empty_rows():
    for impl in IMPLS.values():
        x = np.zeros((0, 8))
        y, mean, rstd = impl.layernorm_forward(x, np.ones(8), np.zeros(8))
        assert y.shape == (0, 8) and mean.shape == (0,)
        dx, dw, db = impl.layernorm_backward(x, x, np.ones(8), mean, rstd)
        assert dx.shape == (0, 8) and not np.any(dw) and not np.any(db)
        assert impl.xent_forward_backward(np.zeros((0, 4)), np.zeros(0, np.int64), 1.0).shape == (0,)
        assert not np.any(impl.bias_grad(x))


def bad_calls():
    f4, f8 = np.float32, np.float64
    x = np.ones((4, 6), f8)
    w = np.ones(6, f8)
    t = np.array([0, 1, 2, 5], np.int64)
    m = np.zeros(4, f8)
    ro = np.ones((4, 6), f8)
    ro.flags.writeable = False
    return [
        ("dtype", lambda k: k.layernorm_forward(x.astype(np.float16), w, w), "x must be float32 or float64"),
        ("int", lambda k: k.bias_grad(np.ones((2, 2), np.int64)), "dy must be float32 or float64"),
        ("mixed", lambda k: k.layernorm_forward(x, w.astype(f4), w), "w must have the dtype"),
        ("layout", lambda k: k.layernorm_forward(np.ones((4, 12))[:, ::2], w, w), "x is not C-contiguous"),
        ("shape", lambda k: k.layernorm_forward(x, np.ones(5), w), "w must have shape (6,)"),
        ("ndim", lambda k: k.gelu_backward(np.ones(6), np.ones(6)), "da must be 2-d"),
        ("list", lambda k: k.bias_grad([[1.0]]), "dy must be an array"),
        ("eps", lambda k: k.layernorm_forward(x, w, w, eps=-1.0), "eps must be >= 0"),
        ("bwd", lambda k: k.layernorm_backward(x, x, w, np.zeros(3), m), "mean must have shape (4,)"),
        ("bias", lambda k: k.bias_gelu_forward(x, np.ones(7)), "bias must have shape (6,)"),
        ("res", lambda k: k.bias_residual(x, None, np.ones((4, 5))), "residual must have shape (4, 6)"),
        ("out", lambda k: k.bias_residual(x, None, x, out=ro), "out is read-only"),
        ("t dtype", lambda k: k.xent_forward_backward(x.copy(), t.astype(np.int32), 1.0), "targets must be int64"),
        ("t shape", lambda k: k.xent_forward_backward(x.copy(), t[:3], 1.0), "targets must have shape (4,)"),
        ("t range", lambda k: k.xent_forward_backward(x.copy(), t + 1, 1.0), "targets"),
        ("t valid", lambda k: k.xent_forward_backward(x.copy(), t, 1.0, valid=5), "targets"),
        ("t neg", lambda k: k.xent_forward_backward(x.copy(), t - 1, 1.0), "targets"),
        ("t neg piece", lambda k: k.xent_local_sumexp(x, t - 1, 0, m, 6), "targets"),
        ("valid 0", lambda k: k.xent_forward_backward(x.copy(), t, 1.0, valid=0), "valid must be in 1..6"),
        ("valid big", lambda k: k.xent_local_max(x, 7), "valid must be in 1..6"),
        ("valid type", lambda k: k.xent_local_max(x, 2.5), "valid must be an integer"),
        ("scale", lambda k: k.xent_forward_backward(x.copy(), t, float("nan")), "scale must be a finite number"),
        ("start", lambda k: k.xent_grad_(x.copy(), t, -1, m, 1.0, 6), "vocab_start must be in 0.."),
        ("lse", lambda k: k.xent_grad_(x.copy(), t, 0, m.astype(f4), 1.0, 6), "lse must have the dtype"),
        ("readonly", lambda k: k.xent_forward_backward(ro, t, 1.0), "logits is read-only"),
        ("threads", lambda k: k.bias_grad(x, threads=-1), "threads must be in 0.."),
        ("bf16 in", lambda k: k.from_bfloat16(np.ones(3, f4)), "x must be bfloat16"),
        ("bf16 dtype", lambda k: k.from_bfloat16(np.ones(3, np.uint16), np.int32), "dtype must be float32 or float64"),
        ("bf16 name", lambda k: k.from_bfloat16(np.ones(3, np.uint16), "no such"), "dtype must be float32 or float64"),
        ("to bf16", lambda k: k.to_bfloat16(np.ones(3, np.int16)), "x must be float32 or float64"),
    ]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", bad_calls(), ids=lambda c: c[0])
def test_bad_input(impl, case):
    _, call, msg = case
    with pytest.raises(baobab.InvalidArgument, match="llm .*" + msg.replace("(", r"\(").replace(")", r"\)")):
        call(IMPLS[impl])


def test_overlapping_out_refused():
    """out may be h or residual, or apart from both; a partial overlap is refused (the compiled
    kernel would read values it has already written)."""
    buf = np.ones((5, 6))
    h = buf[:4]
    with pytest.raises(baobab.InvalidArgument, match="out overlaps"):
        K.bias_residual(h, None, np.ones((4, 6)), out=buf[1:])


def test_module_checks_on_its_own():
    """The extension module refuses bad arrays itself (it is callable without ops.py)."""
    nb = K.native()
    x = np.ones((3, 4), np.float32)
    with pytest.raises(baobab.InvalidArgument, match="w must be float32"):
        nb.layernorm_forward(x, np.ones(4), np.ones(4, np.float32), 1e-5, x.copy(), np.ones(3, np.float32),
                             np.ones(3, np.float32), 0)
    with pytest.raises(baobab.InvalidArgument, match="targets"):
        nb.xent_forward_backward(x.copy(), np.array([0, 1, 9]), 1.0, 4, np.ones(3, np.float32), 0)
    with pytest.raises(baobab.InvalidArgument, match="not C-contiguous"):
        nb.bias_grad(np.ones((3, 8), np.float32)[:, ::2], np.ones(4, np.float32), 0)

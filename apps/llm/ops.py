"""The GPT's hot elementwise and row kernels: LayerNorm, bias + GELU (tanh),
bias + residual, bias gradients, softmax cross-entropy (whole, or in the
vocabulary-parallel pieces), and float <-> bfloat16.

Every function takes xp arrays (numpy now, cupy later) of float32 or float64,
2-D and C-contiguous (rows (N, C)) unless stated, and allocates its outputs
unless given `out=`. numpy float32/float64 arrays run the app's compiled kernels
(apps/llm/src, the extension module baobab_apps._llm that baobab's build
installs; native() returns it), SIMD and threads; any other array type runs the
xp fallback written below over the array's module. `fallback` holds the same
functions forced onto that fallback for any array type, numpy included: the
reference of the kernel tests and the benchmark's baseline.

Arguments are checked once per call, here, for both paths; a bad one raises
baobab.InvalidArgument naming it (the extension module checks dtypes, shapes
and layouts again, in O(1), so that it stays memory-safe when called directly;
the compiled kernels check the targets' range in their own pass). Column sums (dw, db, bias_grad) give the same
bits for any thread count. `threads` (keyword): None or 0 = all usable cores,
n = at most n (fewer when the work is too small to pay for a thread); the
fallback ignores it.

The contract between the model and these kernels is kept in the function
docstrings; the formulas are the usual GPT-2 ones:
    layernorm: y = (x - mean) rstd w + b, rstd = 1 / sqrt(var + eps), biased var
    gelu_tanh(u) = 0.5 u (1 + tanh(sqrt(2/pi) (u + 0.044715 u^3)))
    cross-entropy of a row: logsumexp(row) - row[target]
This module imports nothing heavy at import time (the extension module, baobab
and ml_dtypes are loaded on first use).
"""
import contextlib
import math
import numbers

import numpy as np

__all__ = ["layernorm_forward", "layernorm_backward", "bias_gelu_forward", "gelu_backward", "bias_residual",
           "bias_grad", "xent_forward_backward", "xent_local_max", "xent_local_sumexp", "xent_grad_",
           "to_bfloat16", "from_bfloat16", "fallback", "native", "isa"]

_native = None


def native():
    """The app's extension module, baobab_apps._llm (the compiled kernels)."""
    global _native
    if _native is None:
        try:
            from baobab_apps import _llm
        except ImportError as e:
            raise ImportError("the LLM kernels (baobab_apps._llm) are not installed: build baobab from this "
                              "repository (make build, or pip install .) in the environment that runs the app") from e
        _native = _llm
    return _native


def isa():
    """The instruction-set tier of the compiled kernels: 'avx512', 'avx2' or 'baseline' (BAOBAB_LLM_ISA caps it)."""
    return native().isa()


# ---------------------------------------------------------------- argument checks

def _bad(fn, msg):
    from baobab import InvalidArgument
    return InvalidArgument(f"llm {fn}: {msg}")


def _module(fn, **arrays):
    """The array module of the named arrays (all from one module; None entries skipped)."""
    first = None
    for name, a in arrays.items():
        if a is None:
            continue
        if isinstance(a, np.ndarray):
            xp = np
        elif type(a).__module__.split(".")[0] == "cupy":
            import cupy
            xp = cupy
        elif hasattr(a, "__array_namespace__"):
            xp = a.__array_namespace__()
        else:
            raise _bad(fn, f"{name} must be an array, got {type(a).__name__}")
        if first is None:
            first = xp
        elif xp is not first:
            raise _bad(fn, f"{name} is a {xp.__name__} array, the others {first.__name__} arrays")
    return first


def _float(fn, name, a, shape=None, ndim=None, dtype=None, writable=False):
    """Checks a float32/float64 C-contiguous array (shape: a tuple, None entries any); returns its dtype."""
    dt = getattr(a, "dtype", None)
    if dt is None:
        raise _bad(fn, f"{name} must be an array, got {type(a).__name__}")
    if dtype is None:
        if dt != np.float32 and dt != np.float64:
            raise _bad(fn, f"{name} must be float32 or float64, got {dt}")
    elif dt != dtype:
        raise _bad(fn, f"{name} must have the dtype of the other arrays ({np.dtype(dtype)}), got {dt}")
    _shape(fn, name, a, shape, ndim)
    if writable and not getattr(a.flags, "writeable", True):
        raise _bad(fn, f"{name} is read-only (it is written in place)")
    return dt


def _shape(fn, name, a, shape=None, ndim=None):
    if ndim is not None and a.ndim != ndim:
        raise _bad(fn, f"{name} must be {ndim}-d, got shape {tuple(a.shape)}")
    if shape is not None and (a.ndim != len(shape) or
                              any(s is not None and s != e for s, e in zip(shape, a.shape))):
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
        raise _bad(fn, f"{name} must have shape {want}, got {tuple(a.shape)}")
    if not a.flags.c_contiguous:
        raise _bad(fn, f"{name} is not C-contiguous; pass xp.ascontiguousarray({name})")


def _targets(fn, t, n, ranged, hi=None):
    """Checks targets: int64 (n,), C-contiguous; with `ranged` (the fallback path) also the range
    [0, hi) (hi None: >= 0). The compiled kernels check the range themselves while they read them."""
    dt = getattr(t, "dtype", None)
    if dt is None:
        raise _bad(fn, f"targets must be an int64 array, got {type(t).__name__}")
    if dt != np.int64:
        raise _bad(fn, f"targets must be int64, got {dt}")
    _shape(fn, "targets", t, (n,))
    if ranged and n:
        lo, top = int(t.min()), int(t.max())
        if lo < 0 or (hi is not None and top >= hi):
            bad = lo if lo < 0 else top
            rng = f"[0, {hi})" if hi is not None else "[0, inf)"
            raise _bad(fn, f"targets holds {bad}, outside {rng}")


def _int(fn, name, v, lo, hi=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise _bad(fn, f"{name} must be an integer, got {v!r}")
    v = int(v)
    if v < lo or (hi is not None and v > hi):
        raise _bad(fn, f"{name} must be in {lo}..{'' if hi is None else hi}, got {v}")
    return v


def _real(fn, name, v, lo=None):
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(float(v)):
        raise _bad(fn, f"{name} must be a finite number, got {v!r}")
    v = float(v)
    if lo is not None and v < lo:
        raise _bad(fn, f"{name} must be >= {lo}, got {v}")
    return v


def _threads(fn, threads):
    return 0 if threads is None else _int(fn, "threads", threads, 0)


def _valid(fn, valid, v):
    return v if valid is None else _int(fn, "valid", valid, 1, v)


def _quiet(xp):
    """numpy's floating-point warnings off (inf and NaN are expected values here)."""
    return np.errstate(all="ignore") if xp is np else contextlib.nullcontext()


# ---------------------------------------------------------------- the kernels
# Each public function is a thin wrapper over _<name>(..., compiled): compiled
# True runs numpy arrays on the extension module; `fallback` passes False.

def _layernorm_forward(x, w, b, eps, threads, compiled):
    fn = "layernorm_forward"
    xp = _module(fn, x=x, w=w, b=b)
    dt = _float(fn, "x", x, ndim=2)
    n, c = x.shape
    _float(fn, "w", w, (c,), dtype=dt)
    _float(fn, "b", b, (c,), dtype=dt)
    eps = _real(fn, "eps", eps, lo=0.0)
    th = _threads(fn, threads)
    if c == 0 and n:
        raise _bad(fn, "x has rows of 0 columns")
    if compiled and xp is np:
        y = np.empty_like(x)
        mean = np.empty(n, dt)
        rstd = np.empty(n, dt)
        native().layernorm_forward(x, w, b, eps, y, mean, rstd, th)
        return y, mean, rstd
    with _quiet(xp):
        mean = x.mean(axis=1)
        d = x - mean[:, None]
        rstd = 1 / xp.sqrt((d * d).mean(axis=1) + dt.type(eps))
        return d * rstd[:, None] * w + b, mean, rstd


def layernorm_forward(x, w, b, eps=1e-5, *, threads=None):
    """LayerNorm of the rows of x (N, C) with weight w and bias b (C,): (y, mean, rstd), mean and rstd (N,)."""
    return _layernorm_forward(x, w, b, eps, threads, True)


def _layernorm_backward(dy, x, w, mean, rstd, threads, compiled):
    fn = "layernorm_backward"
    xp = _module(fn, dy=dy, x=x, w=w, mean=mean, rstd=rstd)
    dt = _float(fn, "dy", dy, ndim=2)
    n, c = dy.shape
    _float(fn, "x", x, (n, c), dtype=dt)
    _float(fn, "w", w, (c,), dtype=dt)
    _float(fn, "mean", mean, (n,), dtype=dt)
    _float(fn, "rstd", rstd, (n,), dtype=dt)
    th = _threads(fn, threads)
    if compiled and xp is np:
        dx = np.empty_like(dy)
        dw = np.empty(c, dt)
        db = np.empty(c, dt)
        native().layernorm_backward(dy, x, w, mean, rstd, dx, dw, db, th)
        return dx, dw, db
    with _quiet(xp):
        xh = (x - mean[:, None]) * rstd[:, None]
        g = dy * w
        dx = rstd[:, None] * (g - g.mean(axis=1, keepdims=True) - xh * (g * xh).mean(axis=1, keepdims=True))
        return dx, (dy * xh).sum(axis=0), dy.sum(axis=0)


def layernorm_backward(dy, x, w, mean, rstd, *, threads=None):
    """Gradients (dx, dw, db) of LayerNorm from dy (N, C) and the forward's x, w, mean, rstd."""
    return _layernorm_backward(dy, x, w, mean, rstd, threads, True)


# gelu_tanh(u) = u s, s = 1 / (1 + e), e = exp(-2 z), z = sqrt(2/pi) (u + 0.044715 u^3): the same
# function as 0.5 u (1 + tanh z) without its cancellation for u << 0. As in the compiled kernel
# (kernels.inc, Gelu): for u <= -u0 gelu and its slope are taken as their limit 0 (they are below
# 1e-37 resp. 1e-260 there; the factor m), e is capped to stay finite, and the slope's second term
# is evaluated at u clamped to [-u0, u0] (it is 0 beyond u0), so that nothing overflows into NaN.
_K = math.sqrt(2 / math.pi)
_C = 0.044715


def _gelu_parts(xp, u):
    """(s, e, m, u0) of u."""
    f4 = u.dtype == np.float32
    u0, cap = (10.0, 88.0) if f4 else (20.0, 700.0)
    z = _K * (u + _C * u * u * u)
    e = xp.exp(xp.minimum(-2 * z, u.dtype.type(cap)))
    m = xp.clip((u + u0) * 2.0 ** 100, 0, 1)
    return 1 / (1 + e), e, m, u0


def _bias_gelu_forward(h, bias, threads, compiled):
    fn = "bias_gelu_forward"
    xp = _module(fn, h=h, bias=bias)
    dt = _float(fn, "h", h, ndim=2)
    n, c = h.shape
    if bias is not None:
        _float(fn, "bias", bias, (c,), dtype=dt)
    th = _threads(fn, threads)
    if compiled and xp is np:
        u = np.empty_like(h) if bias is not None else None
        a = np.empty_like(h)
        native().bias_gelu_forward(h, bias, u, a, th)
        return (h if u is None else u), a
    with _quiet(xp):
        u = h if bias is None else h + bias
        s, _, m, _ = _gelu_parts(xp, u)
        return u, u * (s * m)


def bias_gelu_forward(h, bias, *, threads=None):
    """(u, a): u = h + bias (bias None: u is h itself), a = gelu_tanh(u); h (N, C), bias (C,)."""
    return _bias_gelu_forward(h, bias, threads, True)


def _gelu_backward(da, u, threads, compiled):
    fn = "gelu_backward"
    xp = _module(fn, da=da, u=u)
    dt = _float(fn, "da", da, ndim=2)
    _float(fn, "u", u, da.shape, dtype=dt)
    th = _threads(fn, threads)
    if compiled and xp is np:
        du = np.empty_like(da)
        native().gelu_backward(da, u, du, th)
        return du
    with _quiet(xp):
        s, e, m, u0 = _gelu_parts(xp, u)
        uc = xp.clip(u, -u0, u0)
        dz = _K * (1 + 3 * _C * uc * uc)
        return da * ((s + 2 * uc * dz * ((e * s) * s)) * m)


def gelu_backward(da, u, *, threads=None):
    """du = da * gelu_tanh'(u), for u the forward's pre-activation."""
    return _gelu_backward(da, u, threads, True)


def _bias_residual(h, bias, residual, out, threads, compiled):
    fn = "bias_residual"
    xp = _module(fn, h=h, bias=bias, residual=residual, out=out)
    dt = _float(fn, "h", h, ndim=2)
    n, c = h.shape
    if bias is not None:
        _float(fn, "bias", bias, (c,), dtype=dt)
    _float(fn, "residual", residual, (n, c), dtype=dt)
    if out is not None:
        _float(fn, "out", out, (n, c), dtype=dt, writable=True)
    th = _threads(fn, threads)
    if compiled and xp is np:
        if out is None:
            out = np.empty_like(h)
        native().bias_residual(h, bias, residual, out, th)  # checks that out is h, residual or apart from both
        return out
    with _quiet(xp):
        r = (h if bias is None else h + bias) + residual
    if out is None:
        return r
    out[...] = r
    return out


def bias_residual(h, bias, residual, out=None, *, threads=None):
    """h + bias + residual (bias None: h + residual) into out (allocated when None; may be h or residual)."""
    return _bias_residual(h, bias, residual, out, threads, True)


def _bias_grad(dy, threads, compiled):
    fn = "bias_grad"
    xp = _module(fn, dy=dy)
    dt = _float(fn, "dy", dy, ndim=2)
    th = _threads(fn, threads)
    if compiled and xp is np:
        db = np.empty(dy.shape[1], dt)
        native().bias_grad(dy, db, th)
        return db
    return dy.sum(axis=0)


def bias_grad(dy, *, threads=None):
    """Column sums of dy (N, C): the gradient of a bias added to every row; (C,), deterministic."""
    return _bias_grad(dy, threads, True)


# ---------------------------------------------------------------- cross-entropy

def _xent_args(fn, logits, targets, arrays=None, writable=False):
    xp = _module(fn, logits=logits, targets=targets, **(arrays or {}))
    dt = _float(fn, "logits", logits, ndim=2, writable=writable)
    return xp, dt, logits.shape


def _xent_forward_backward(logits, targets, scale, valid, threads, compiled):
    fn = "xent_forward_backward"
    xp, dt, (n, v) = _xent_args(fn, logits, targets, writable=True)
    valid = _valid(fn, valid, v)
    scale = _real(fn, "scale", scale)
    th = _threads(fn, threads)
    _targets(fn, targets, n, not (compiled and xp is np), valid)
    if compiled and xp is np:
        losses = np.empty(n, dt)
        native().xent_forward_backward(logits, targets, scale, valid, losses, th)
        return losses
    rows = xp.arange(n)
    with _quiet(xp):
        x = logits[:, :valid]
        m = x.max(axis=1, keepdims=True)
        e = xp.exp(x - m)
        s = e.sum(axis=1, keepdims=True)
        losses = (m + xp.log(s))[:, 0] - x[rows, targets]
        x[...] = e * (dt.type(scale) / s)
        logits[:, valid:] = 0
        logits[rows, targets] -= dt.type(scale)
    return losses


def xent_forward_backward(logits, targets, scale, valid=None, *, threads=None):
    """Softmax cross-entropy of each row of logits (N, V) against targets (int64 (N,), in [0, valid)):
    returns losses (N,) = logsumexp(row) - row[target], and OVERWRITES logits with
    scale * (softmax(row) - onehot(target)), in one pass per row. Columns at or after `valid`
    (None: V; the padding of a vocabulary padded to a multiple of the TP degree) take no part:
    excluded from max and sum, gradient 0."""
    return _xent_forward_backward(logits, targets, scale, valid, threads, True)


def _xent_local_max(logits, valid, threads, compiled):
    fn = "xent_local_max"
    xp = _module(fn, logits=logits)
    dt = _float(fn, "logits", logits, ndim=2)
    n, v = logits.shape
    valid = _valid(fn, valid, v)
    th = _threads(fn, threads)
    if compiled and xp is np:
        rowmax = np.empty(n, dt)
        native().xent_local_max(logits, valid, rowmax, th)
        return rowmax
    return logits[:, :valid].max(axis=1)


def xent_local_max(logits, valid=None, *, threads=None):
    """Max of each row over its first `valid` columns (None: all): rowmax (N,). The vocabulary-parallel
    cross-entropy's first piece; its allreduce(max) over TP is the global max gmax."""
    return _xent_local_max(logits, valid, threads, True)


def _shard_target(xp, targets, vocab_start, valid):
    """(in shard mask, local column clipped into [0, valid))."""
    k = targets - vocab_start
    inside = (k >= 0) & (k < valid)
    return inside, xp.clip(k, 0, valid - 1)


def _xent_local_sumexp(logits, targets, vocab_start, gmax, valid, threads, compiled):
    fn = "xent_local_sumexp"
    xp, dt, (n, v) = _xent_args(fn, logits, targets, {"gmax": gmax})
    vocab_start = _int(fn, "vocab_start", vocab_start, 0)
    _float(fn, "gmax", gmax, (n,), dtype=dt)
    valid = _valid(fn, valid, v)
    th = _threads(fn, threads)
    _targets(fn, targets, n, not (compiled and xp is np))
    if compiled and xp is np:
        sumexp = np.empty(n, dt)
        tl = np.empty(n, dt)
        native().xent_local_sumexp(logits, targets, vocab_start, gmax, valid, sumexp, tl, th)
        return sumexp, tl
    x = logits[:, :valid]
    with _quiet(xp):
        sumexp = xp.exp(x - gmax[:, None]).sum(axis=1)
    inside, k = _shard_target(xp, targets, vocab_start, valid)
    return sumexp, xp.where(inside, x[xp.arange(n), k], dt.type(0))


def xent_local_sumexp(logits, targets, vocab_start, gmax, valid=None, *, threads=None):
    """The vocabulary-parallel pieces' second: for the shard holding global vocabulary ids
    [vocab_start, vocab_start + valid) in its logits (N, Vlocal), given the global row max gmax (N,):
    (sumexp, target_logit), sumexp = sum_j<valid exp(row_j - gmax), target_logit = row[target -
    vocab_start] when the target (int64 (N,), >= 0) falls in the shard, else 0. Summed over TP they
    give lse = gmax + log(sumexp) and the target's logit."""
    return _xent_local_sumexp(logits, targets, vocab_start, gmax, valid, threads, True)


def _xent_grad_(logits, targets, vocab_start, lse, scale, valid, threads, compiled):
    fn = "xent_grad_"
    xp, dt, (n, v) = _xent_args(fn, logits, targets, {"lse": lse}, writable=True)
    vocab_start = _int(fn, "vocab_start", vocab_start, 0)
    _float(fn, "lse", lse, (n,), dtype=dt)
    scale = _real(fn, "scale", scale)
    valid = _valid(fn, valid, v)
    th = _threads(fn, threads)
    _targets(fn, targets, n, not (compiled and xp is np))
    if compiled and xp is np:
        native().xent_grad(logits, targets, vocab_start, lse, scale, valid, th)
        return None
    with _quiet(xp):
        logits[:, :valid] = dt.type(scale) * xp.exp(logits[:, :valid] - lse[:, None])
    logits[:, valid:] = 0
    inside, k = _shard_target(xp, targets, vocab_start, valid)
    rows = xp.arange(n)
    logits[rows, k] -= xp.where(inside, dt.type(scale), dt.type(0))
    return None


def xent_grad_(logits, targets, vocab_start, lse, scale, valid=None, *, threads=None):
    """The vocabulary-parallel pieces' last, in place: logits := scale * (exp(logits - lse) -
    onehot(target - vocab_start)) over the first `valid` columns, padding columns 0; lse (N,) the
    global log-sum-exp. Returns None."""
    return _xent_grad_(logits, targets, vocab_start, lse, scale, valid, threads, True)


# ---------------------------------------------------------------- bfloat16

def _bfloat16():
    import ml_dtypes
    return ml_dtypes.bfloat16


def _to_bfloat16(x, threads, compiled):
    fn = "to_bfloat16"
    xp = _module(fn, x=x)
    dt = _float(fn, "x", x)
    th = _threads(fn, threads)
    if compiled and xp is np:
        bits = np.empty(x.size, np.uint16)
        native().to_bfloat16(x.reshape(-1), bits, th)
        return bits.reshape(x.shape).view(_bfloat16())
    with _quiet(xp):
        f = x if dt == np.float32 else x.astype(np.float32)
        b = f.view(np.uint32)
        rn = xp.where(f != f, ((b >> 16) & 0x8000) | 0x7FC0, (b + 0x7FFF + ((b >> 16) & 1)) >> 16)
        if dt == np.float64:  # f halfway between two bfloat16 values, x not: round x to its side
            f8 = f.astype(np.float64)
            mid = ((b & 0xFFFF) == 0x8000) & (f8 != x) & (x == x)
            rn = xp.where(mid, (b >> 16) + (xp.abs(x) > xp.abs(f8)).astype(np.uint32), rn)
    bits = rn.astype(np.uint16)
    return bits.view(_bfloat16()) if xp is np else bits


def to_bfloat16(x, *, threads=None):
    """x (float32 or float64, any shape, C-contiguous) rounded to bfloat16, to nearest even (once: a
    float64 is not rounded to float32 first, unlike ml_dtypes' astype); NaN stays NaN (0x7FC0 with
    its sign, as ml_dtypes gives). numpy: an ml_dtypes.bfloat16 array; array modules without bfloat16
    (cupy): its uint16 bits."""
    return _to_bfloat16(x, threads, True)


def _from_bfloat16(x, dtype, threads, compiled):
    fn = "from_bfloat16"
    xp = _module(fn, x=x)
    dt = getattr(x, "dtype", None)
    if dt is None:
        raise _bad(fn, f"x must be an array, got {type(x).__name__}")
    if dt != np.uint16 and not (xp is np and dt == _bfloat16()):
        raise _bad(fn, f"x must be bfloat16 (or its uint16 bits), got {dt}")
    _shape(fn, "x", x)
    try:
        want = np.dtype(dtype)
    except TypeError:
        want = None
    if want not in (np.float32, np.float64):
        raise _bad(fn, f"dtype must be float32 or float64, got {dtype!r}")
    dtype = want
    th = _threads(fn, threads)
    bits = x.view(np.uint16)
    if compiled and xp is np:
        out = np.empty(x.size, dtype)
        native().from_bfloat16(bits.reshape(-1), out, th)
        return out.reshape(x.shape)
    f = (bits.astype(np.uint32) << 16).view(np.float32)
    if dtype == np.float32:
        return f
    with _quiet(xp):  # signalling NaNs
        return f.astype(dtype)


def from_bfloat16(x, dtype=np.float32, *, threads=None):
    """The values of x (bfloat16, or its uint16 bits; any shape, C-contiguous) as float32 or float64
    (exact)."""
    return _from_bfloat16(x, dtype, threads, True)


# ---------------------------------------------------------------- the fallback

class fallback:
    """The kernels above on their xp fallback for any array type, numpy included (same signatures;
    threads ignored): the reference of the kernel tests and the benchmark's baseline."""

    @staticmethod
    def layernorm_forward(x, w, b, eps=1e-5, *, threads=None):
        return _layernorm_forward(x, w, b, eps, threads, False)

    @staticmethod
    def layernorm_backward(dy, x, w, mean, rstd, *, threads=None):
        return _layernorm_backward(dy, x, w, mean, rstd, threads, False)

    @staticmethod
    def bias_gelu_forward(h, bias, *, threads=None):
        return _bias_gelu_forward(h, bias, threads, False)

    @staticmethod
    def gelu_backward(da, u, *, threads=None):
        return _gelu_backward(da, u, threads, False)

    @staticmethod
    def bias_residual(h, bias, residual, out=None, *, threads=None):
        return _bias_residual(h, bias, residual, out, threads, False)

    @staticmethod
    def bias_grad(dy, *, threads=None):
        return _bias_grad(dy, threads, False)

    @staticmethod
    def xent_forward_backward(logits, targets, scale, valid=None, *, threads=None):
        return _xent_forward_backward(logits, targets, scale, valid, threads, False)

    @staticmethod
    def xent_local_max(logits, valid=None, *, threads=None):
        return _xent_local_max(logits, valid, threads, False)

    @staticmethod
    def xent_local_sumexp(logits, targets, vocab_start, gmax, valid=None, *, threads=None):
        return _xent_local_sumexp(logits, targets, vocab_start, gmax, valid, threads, False)

    @staticmethod
    def xent_grad_(logits, targets, vocab_start, lse, scale, valid=None, *, threads=None):
        return _xent_grad_(logits, targets, vocab_start, lse, scale, valid, threads, False)

    @staticmethod
    def to_bfloat16(x, *, threads=None):
        return _to_bfloat16(x, threads, False)

    @staticmethod
    def from_bfloat16(x, dtype=np.float32, *, threads=None):
        return _from_bfloat16(x, dtype, threads, False)

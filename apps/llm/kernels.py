"""STAND-IN for the LLM kernels: a plain xp (numpy/cupy) implementation of the
API in the issue's contract (layernorm, GELU, fused bias/residual, bias
gradient, softmax cross-entropy whole and vocabulary-parallel, bfloat16
conversion). The real module (compiled kernels in baobab_apps._llm with this
same code as its fallback) replaces this file; the model calls nothing else.

Arrays are rows of 2-D C-contiguous (N, C) float32/float64 arrays; `threads`
is accepted everywhere and ignored here.
"""
import math

import numpy as np

_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


def _xp(x):
    if hasattr(type(x), "__cuda_array_interface__"):
        import cupy
        return cupy
    return np


def layernorm_forward(x, w, b, eps=1e-5, *, threads=None):
    """(y, mean, rstd): y = (x - mean) * rstd * w + b over each row."""
    xp = _xp(x)
    mean = x.mean(axis=1)
    xc = x - mean[:, None]
    var = (xc * xc).mean(axis=1)
    rstd = 1.0 / xp.sqrt(var + x.dtype.type(eps))
    y = xc * rstd[:, None] * w + b
    return y, mean, rstd.astype(x.dtype, copy=False)


def layernorm_backward(dy, x, w, mean, rstd, *, threads=None):
    """(dx, dw, db) of layernorm_forward given dy."""
    xhat = (x - mean[:, None]) * rstd[:, None]
    db = dy.sum(axis=0)
    dw = (dy * xhat).sum(axis=0)
    g = dy * w
    c = x.shape[1]
    dx = (g - g.sum(axis=1, keepdims=True) / c - xhat * ((g * xhat).sum(axis=1, keepdims=True) / c)) * rstd[:, None]
    return dx, dw, db


def _gelu(u):
    xp = _xp(u)
    return 0.5 * u * (1.0 + xp.tanh(_GELU_C * (u + _GELU_A * u * u * u)))


def bias_gelu_forward(h, bias, *, threads=None):
    """(u, a): u = h + bias (h itself when bias is None), a = gelu_tanh(u)."""
    u = h if bias is None else h + bias
    return u, _gelu(u)


def gelu_backward(da, u, *, threads=None):
    """da * gelu_tanh'(u)."""
    xp = _xp(u)
    t = xp.tanh(_GELU_C * (u + _GELU_A * u * u * u))
    dt = (1.0 - t * t) * _GELU_C * (1.0 + 3.0 * _GELU_A * u * u)
    return da * (0.5 * (1.0 + t) + 0.5 * u * dt)


def bias_residual(h, bias, residual, out=None, *, threads=None):
    """h + bias + residual (bias may be None); out may be h or residual."""
    xp = _xp(h)
    if out is None:
        out = xp.empty_like(h)
    xp.add(h, residual, out=out)
    if bias is not None:
        out += bias
    return out


def bias_grad(dy, *, threads=None):
    """Column sums of dy, (C,)."""
    return dy.sum(axis=0)


def _valid(logits, valid):
    return logits.shape[1] if valid is None else int(valid)


def xent_forward_backward(logits, targets, scale, valid=None, *, threads=None):
    """Per-row losses logsumexp(row) - row[target]; logits is overwritten with
    scale * (softmax(row) - onehot(target)), padding columns (>= valid) 0."""
    xp = _xp(logits)
    n = logits.shape[0]
    vv = _valid(logits, valid)
    rows = xp.arange(n)
    part = logits[:, :vv]
    m = part.max(axis=1)
    e = xp.exp(part - m[:, None])
    s = e.sum(axis=1)
    lse = m + xp.log(s)
    losses = lse - logits[rows, targets]
    logits[:, :vv] = e * (scale / s)[:, None]
    logits[:, vv:] = 0
    logits[rows, targets] -= scale
    return losses


def xent_local_max(logits, valid, *, threads=None):
    """Row maxima over the valid columns (-inf when there is none)."""
    xp = _xp(logits)
    vv = _valid(logits, valid)
    if vv == 0:
        return xp.full(logits.shape[0], -xp.inf, logits.dtype)
    return logits[:, :vv].max(axis=1)


def xent_local_sumexp(logits, targets, vocab_start, gmax, valid, *, threads=None):
    """(sum_j<valid exp(row_j - gmax), row[target - vocab_start] or 0 when the
    target is not among this rank's valid columns)."""
    xp = _xp(logits)
    vv = _valid(logits, valid)
    sumexp = xp.exp(logits[:, :vv] - gmax[:, None]).sum(axis=1)
    local = targets - vocab_start
    mine = (local >= 0) & (local < vv)
    picked = logits[xp.arange(logits.shape[0]), xp.where(mine, local, 0)]
    return sumexp, xp.where(mine, picked, 0).astype(logits.dtype, copy=False)


def xent_grad_(logits, targets, vocab_start, lse, scale, valid, *, threads=None):
    """logits := scale * (exp(row - lse) - onehot(target - vocab_start)), padding 0."""
    xp = _xp(logits)
    vv = _valid(logits, valid)
    logits[:, :vv] = xp.exp(logits[:, :vv] - lse[:, None]) * scale
    logits[:, vv:] = 0
    local = targets - vocab_start
    mine = (local >= 0) & (local < vv)
    rows = xp.arange(logits.shape[0])[mine]
    logits[rows, local[mine]] -= scale


def to_bfloat16(x, *, threads=None):
    """bfloat16 copy (round to nearest even, NaN kept)."""
    import ml_dtypes
    return np.asarray(x, np.float32).astype(ml_dtypes.bfloat16)


def from_bfloat16(x, dtype=np.float32, *, threads=None):
    return np.asarray(x).astype(dtype)

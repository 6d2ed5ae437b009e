"""Dense float64 reference attention (forward and backward) for the tests."""
import numpy as np


def dense(q, k, v, scale, qpos=None, kpos=None, causal=False):
    """out, lse, P of softmax attention; queries at qpos see keys at kpos <= qpos."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    s = np.einsum("bhid,bhjd->bhij", q, k) * scale
    if causal:
        mask = kpos[None, :] <= qpos[:, None]
        s = np.where(mask, s, -np.inf)
    m = s.max(axis=-1, keepdims=True) if s.shape[-1] else np.full(s.shape[:-1] + (1,), -np.inf)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    e = np.exp(s - m_safe)
    z = e.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(z > 0, e / np.where(z > 0, z, 1), 0.0)
        lse = np.where(z[..., 0] > 0, m_safe[..., 0] + np.log(np.where(z[..., 0] > 0, z[..., 0], 1)), -np.inf)
    out = np.einsum("bhij,bhjd->bhid", p, v)
    return out, lse, p


def dense_backward(q, k, v, dout, scale, qpos=None, kpos=None, causal=False):
    out, lse, p = dense(q, k, v, scale, qpos, kpos, causal)
    q, k, v, dout = (x.astype(np.float64) for x in (q, k, v, dout))
    dv = np.einsum("bhij,bhid->bhjd", p, dout)
    dp = np.einsum("bhid,bhjd->bhij", dout, v)
    delta = (dout * out).sum(-1, keepdims=True)
    ds = p * (dp - delta)
    dq = np.einsum("bhij,bhjd->bhid", ds, k) * scale
    dk = np.einsum("bhij,bhid->bhjd", ds, q) * scale
    return dq, dk, dv


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.size == 0:
        return 0.0
    scale = max(np.abs(b).max(), 1e-300)
    return float(np.abs(a - b).max() / scale)

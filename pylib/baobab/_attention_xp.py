"""Attention for device (cupy) arrays, written once over an array module `xp`.

The same blockwise online softmax as the C++ kernels, built from xp.matmul
(cuBLAS on a GPU) and elementwise operations: memory O(q_len x block), not
O(q_len x kv_len). Run with xp = numpy it is checked against the dense
reference on machines without a GPU.
"""
import math

BLOCK = 1024
DEVICE_SCORES = 256 << 20  # bytes of scores per block on a device: few, large launches


def _arange(xp, a, b):
    return xp.arange(a, b, dtype=xp.int64)


def _block_for(xp, q, lk, block):
    """Keys per block: `block` on the host; on a device as many as fit
    DEVICE_SCORES of scores (a decode step over a long shard is one block)."""
    if block is not None:
        return block
    if xp.__name__ == "numpy":
        return BLOCK
    b, h, lq, _ = q.shape
    return max(BLOCK, min(lk, DEVICE_SCORES // max(1, b * h * lq * q.dtype.itemsize)))


_KERNELS = {}


def _device_kernels(cupy):
    """Fused elementwise passes over the score block (one read, one write each)."""
    if not _KERNELS:
        _KERNELS["mask"] = cupy.ElementwiseKernel(
            "int64 qi, int64 kj, int64 off, T neg", "T s", "if (kj - qi > off) s = neg;", "baobab_mask")
        _KERNELS["exp"] = cupy.ElementwiseKernel("T s, T m", "T p", "p = exp(s - m)", "baobab_exp_shift")
    return _KERNELS


def partial(xp, q, k, v, scale, causal_offset, block=None):
    b, h, lq, d = q.shape
    lk = k.shape[2]
    dt = q.dtype
    neg = -math.inf
    block = _block_for(xp, q, lk, block)
    device = xp.__name__ != "numpy"
    kern = _device_kernels(xp) if device else None
    qs = q * dt.type(scale)  # the scale once on q, not on every score
    out = xp.zeros_like(q)
    m = xp.full((b, h, lq), neg, dtype=dt)
    l = xp.zeros((b, h, lq), dtype=dt)
    qi = _arange(xp, 0, lq)
    for s0 in range(0, lk, block):
        kb, vb = k[:, :, s0:s0 + block], v[:, :, s0:s0 + block]
        if causal_offset is not None and s0 - (lq - 1) > causal_offset:
            break  # this block and all later ones are in every query's future
        s = xp.matmul(qs, xp.swapaxes(kb, -1, -2))
        if causal_offset is not None:
            kj = _arange(xp, s0, s0 + kb.shape[2])
            if device:
                kern["mask"](qi[:, None], kj[None, :], causal_offset, dt.type(neg), s)
            else:
                s = xp.where((kj[None, :] - qi[:, None]) <= causal_offset, s, dt.type(neg))
        m_new = xp.maximum(m, s.max(axis=-1))
        m_safe = xp.where(xp.isfinite(m_new), m_new, dt.type(0))
        p = kern["exp"](s, m_safe[..., None], s) if device else xp.exp(s - m_safe[..., None])
        alpha = xp.where(xp.isfinite(m), xp.exp(m - m_safe), dt.type(0))
        l = l * alpha + p.sum(axis=-1)
        out = out * alpha[..., None] + xp.matmul(p, vb)
        m = m_new
    seen = l > 0
    lsafe = xp.where(seen, l, dt.type(1))
    lse = xp.where(seen, xp.where(xp.isfinite(m), m, dt.type(0)) + xp.log(lsafe), dt.type(neg))
    out = xp.where(seen[..., None], out / lsafe[..., None], dt.type(0))
    return out, lse


def backward(xp, q, k, v, dout, lse, delta, scale, causal_offset, dq, dk, dv, block=None):
    """Accumulates this shard's gradients into dq, dk, dv (see attention.hpp)."""
    lq, lk = q.shape[2], k.shape[2]
    block = _block_for(xp, q, lk, block)
    dt = q.dtype
    qi = _arange(xp, 0, lq)
    lse_safe = xp.where(xp.isfinite(lse), lse, dt.type(0))
    for s0 in range(0, lk, block):
        sl = slice(s0, s0 + block)
        kb, vb = k[:, :, sl], v[:, :, sl]
        s = xp.matmul(q, xp.swapaxes(kb, -1, -2)) * dt.type(scale)
        p = xp.exp(s - lse_safe[..., None])
        p = xp.where(xp.isfinite(lse)[..., None], p, dt.type(0))
        if causal_offset is not None:
            kj = _arange(xp, s0, s0 + kb.shape[2])
            p = xp.where((kj[None, :] - qi[:, None]) <= causal_offset, p, dt.type(0))
        dv[:, :, sl] += xp.matmul(xp.swapaxes(p, -1, -2), dout)
        ds = p * (xp.matmul(dout, xp.swapaxes(vb, -1, -2)) - delta[..., None])
        dq += xp.matmul(ds, kb) * dt.type(scale)
        dk[:, :, sl] += xp.matmul(xp.swapaxes(ds, -1, -2), q) * dt.type(scale)


def merge_rows(xp, a, b):
    """The log-sum-exp merge of packed rows [out.., lse] (see merge.cpp)."""
    d = a.shape[-1] - 1
    la, lb = a[..., d], b[..., d]
    m = xp.maximum(la, lb)
    finite = xp.isfinite(m)
    ms = xp.where(finite, m, 0)
    wa = xp.where(finite, xp.exp(la - ms), 0)
    wb = xp.where(finite, xp.exp(lb - ms), 0)
    w = wa + wb
    ws = xp.where(finite, w, 1)
    out = xp.empty_like(a)
    out[..., :d] = xp.where(finite[..., None], (wa / ws)[..., None] * a[..., :d] + (wb / ws)[..., None] * b[..., :d],
                            0)
    out[..., d] = xp.where(finite, ms + xp.log(ws), m)
    return out

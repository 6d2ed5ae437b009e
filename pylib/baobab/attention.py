"""Attention over a sequence-sharded key/value cache.

Every shard yields a partial result: its output normalised over its own keys and
the log-sum-exp of its scores. Partials combine exactly and associatively
(new_lse = logaddexp(lse_a, lse_b); out = out_a e^(lse_a - new_lse) + out_b
e^(lse_b - new_lse)), so decoding is one topology-aware reduction of packed
(out, lse) rows with that merge as the operator, not a sequence of p - 1 steps.
Training uses the ring: K/V blocks travel rank to rank while each rank computes,
and in the backward pass the K/V gradients travel with them back to their owner.

Arrays are float32 or float64, shaped (batch, heads, length, d): numpy arrays
run on the C++ kernels; cupy arrays run on the GPU (blockwise with cuBLAS
matmuls, _attention_xp), and their messages go through baobab's device paths.
"""
import math

import numpy as np

from . import _args, _core
from ._errors import InvalidArgument

NO_MASK = _core.ATTENTION_NO_MASK  # causal_offset value of the kernels meaning "no mask"


def _threads(threads):
    return 0 if threads is None else int(threads)


def _xp(x):
    """numpy for host arrays, cupy for device arrays."""
    if hasattr(type(x), "__cuda_array_interface__"):
        import cupy
        return cupy
    return np


def _check4(name, x):
    if not isinstance(x, np.ndarray) and not hasattr(type(x), "__cuda_array_interface__"):
        raise InvalidArgument(f"{name} must be a numpy or cupy array, got {type(x).__name__}")
    if x.ndim != 4:
        raise InvalidArgument(f"{name} must have shape (batch, heads, length, d), got {x.shape}")
    if x.dtype not in (np.float32, np.float64):
        raise InvalidArgument(f"{name} must be float32 or float64, got {x.dtype}")
    return _xp(x).ascontiguousarray(x)


def _check_qkv(q, k, v):
    q, k, v = _check4("q", q), _check4("k", k), _check4("v", v)
    if not (q.dtype == k.dtype == v.dtype):
        raise InvalidArgument(f"q, k, v must share one dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if q.shape[:2] != k.shape[:2] or k.shape != v.shape or q.shape[3] != k.shape[3]:
        raise InvalidArgument(f"shapes do not fit: q {q.shape}, k {k.shape}, v {v.shape} "
                              "(batch, heads and d must agree; k and v must match)")
    return q, k, v


def partial(q, k, v, scale=None, causal_offset=None, *, threads=None):
    """(out, lse) of q against one K/V shard: out (batch, heads, q_len, d) is
    normalised over this shard's visible keys, lse (batch, heads, q_len) is the
    log-sum-exp of their scores. Causal: key j is visible to query i iff
    j - i <= causal_offset (the first query's global position minus the first
    key's). A query that sees no key gets lse = -inf and out = 0."""
    q, k, v = _check_qkv(q, k, v)
    d = q.shape[3]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    if _xp(q) is not np:
        from . import _attention_xp
        return _attention_xp.partial(_xp(q), q, k, v, scale, causal_offset)
    out = np.empty_like(q)
    lse = np.empty(q.shape[:3], q.dtype)
    off = NO_MASK if causal_offset is None else int(causal_offset)
    _core.attention_forward(q, k, v, scale, off, out, lse, _threads(threads))
    return out, lse


def backward(q, k, v, out, lse, dout, *, scale=None, causal_offset=None, threads=None):
    """Gradients (dq, dk, dv) of partial()'s output for one K/V shard, given its
    out and lse and the output gradient dout (shapes as partial's). The same
    scale and causal_offset as the forward call; queries that saw no key get
    zero gradient."""
    q, k, v = _check_qkv(q, k, v)
    out, dout = _check4("out", out), _check4("dout", dout)
    xp = _xp(q)
    if out.dtype != q.dtype or dout.dtype != q.dtype:
        raise InvalidArgument(f"out and dout must have q's dtype {q.dtype}, got {out.dtype}, {dout.dtype}")
    if out.shape != q.shape or dout.shape != q.shape or tuple(lse.shape) != q.shape[:3]:
        raise InvalidArgument(f"out {out.shape} and dout {dout.shape} must have q's shape {q.shape} and "
                              f"lse {tuple(lse.shape)} q's shape without d")
    lse = xp.ascontiguousarray(lse, dtype=q.dtype)
    d = q.shape[3]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    off = NO_MASK if causal_offset is None else int(causal_offset)
    delta = (dout * out).sum(axis=-1)
    dq, dk, dv = xp.zeros_like(q), xp.zeros_like(k), xp.zeros_like(v)
    _backward(q, k, v, dout, lse, delta, scale, off, dq, dk, dv, threads)
    return dq, dk, dv


def pack_rows(out, lse):
    """(..., d) and (...) -> contiguous (..., d + 1) rows [out, lse], the merge's element."""
    return _xp(out).concatenate([out, lse[..., None]], axis=-1)


def _merge_into(acc, rows):
    """acc <- merge(acc, rows), packed rows, host or device."""
    if _xp(acc) is np:
        _core.attention_merge_rows(acc, acc, rows, acc.shape[-1] - 1)
    else:
        from . import _attention_xp
        acc[...] = _attention_xp.merge_rows(_xp(acc), acc, rows)


def merge(out_a, lse_a, out_b, lse_b):
    """The exact combination of two partials of the same queries (commutative)."""
    a, b = pack_rows(out_a, lse_a), pack_rows(out_b, lse_b)
    _merge_into(a, b)
    return a[..., :-1], a[..., -1]


def tree_decode(q, k, v, comm, *, scale=None, causal_offset=None, root=None, algo=None, return_lse=False,
                threads=None):
    """Exact attention of q over the K/V cache sharded across `comm` (each rank
    passes its own, possibly empty, shard): one collective of the packed
    (out, lse) rows with the merge as the reduction, whose algorithm the
    topology-aware selection picks. Every rank gets the output, or only `root`
    (others get None)."""
    if root is not None:
        root = _args.rank(root, comm.size, "root")
    out, lse = partial(q, k, v, scale, causal_offset, threads=threads)
    rows = pack_rows(out, lse)
    d = q.shape[3]
    if _xp(rows) is not np or comm._emulate:
        # Device rows: the collective's device lanes, merged on the device (no host copy of the rows).
        from . import _device_coll
        call = _device_coll.call_for(rows) if _xp(rows) is not np else _device_coll.emulated_call(comm._emulate)
        with call.context():
            _core.attention_merge_collective_device(comm._c, call.ptr(rows), rows.size, rows.dtype == np.float64, d,
                                                    root, algo or "", call.stream, call.path, call.emulated,
                                                    call.ipc)
    else:
        _core.attention_merge_collective(comm._c, rows, d, root, algo or "")
    if root is not None and comm.rank != root:
        return None
    res = rows[..., :d]
    return (res, rows[..., d]) if return_lse else res


def ring_decode(q, k, v, comm, *, scale=None, threads=None):
    """The ring alternative to tree_decode, as a baseline: every rank holds the
    same queries and its K/V shard; the shards travel p - 1 steps around the
    ring while each rank merges its partial for every shard. Every rank ends
    with the output, after sending K/V bytes that grow with the sequence."""
    q, k, v = _check_qkv(q, k, v)
    p, r = comm.size, comm.rank
    d = q.shape[3]
    lens = comm.allgather(np.array([k.shape[2]], np.int64)).reshape(-1).tolist()
    ctx = comm._context()
    xp = _xp(q)
    acc = pack_rows(*partial(q, k, v, scale, threads=threads))
    kv = xp.concatenate([k.reshape(-1), v.reshape(-1)])
    for step in range(1, p):
        j = (r - step) % p
        incoming = xp.empty(2 * k.shape[0] * k.shape[1] * lens[j] * d, k.dtype)
        reqs = [ctx.irecv(incoming, (r - 1) % p, tag=step), ctx.isend(kv, (r + 1) % p, tag=step)]
        ctx.wait_all(reqs)
        kv = incoming
        half = kv.size // 2
        shape = (k.shape[0], k.shape[1], lens[j], d)
        o, l = partial(q, kv[:half].reshape(shape), kv[half:].reshape(shape), scale, threads=threads)
        _merge_into(acc, pack_rows(o, l))
    return acc[..., :d]


# ---- sequence layouts ------------------------------------------------------------------

def shard_bounds(total, size, layout="contiguous"):
    """Per rank, the list of (global start, length) segments it holds.

    contiguous: rank r holds the r-th of `size` near-equal chunks. zigzag: the
    sequence is cut into 2*size near-equal chunks and rank r holds chunks r and
    2*size-1-r, which balances causal work."""
    if layout == "contiguous":
        n = size
    elif layout == "zigzag":
        n = 2 * size
    else:
        raise InvalidArgument(f"unknown layout {layout!r} (contiguous or zigzag)")
    base, extra = divmod(int(total), n)
    lens = [base + (1 if i < extra else 0) for i in range(n)]
    starts = np.concatenate([[0], np.cumsum(lens)]).tolist()
    if layout == "contiguous":
        return [[(starts[r], lens[r])] for r in range(size)]
    return [[(starts[r], lens[r]), (starts[n - 1 - r], lens[n - 1 - r])] for r in range(size)]


def shard(x, rank, size, layout="contiguous", axis=2):
    """This rank's part of a global sequence array (segments concatenated)."""
    size = _args.integer(size, "size")
    if size < 1:
        raise InvalidArgument(f"size must be at least 1, got {size}")
    rank = _args.rank(rank, size, "rank")
    xp = _xp(x)
    if not -x.ndim <= _args.integer(axis, "axis") < x.ndim:
        raise InvalidArgument(f"axis {axis} is out of range for an array of {x.ndim} dimensions")
    segs = shard_bounds(x.shape[axis], size, layout)[rank]
    return xp.concatenate([xp.take(x, xp.arange(s, s + n), axis=axis) for s, n in segs], axis=axis)


def unshard(parts, layout="contiguous", axis=2):
    """The global sequence from every rank's part (the inverse of shard)."""
    size = len(parts)
    total = sum(p.shape[axis] for p in parts)
    bounds = shard_bounds(total, size, layout)
    xp = _xp(parts[0])
    pieces = []
    for r, p in enumerate(parts):
        at = 0
        for s, n in bounds[r]:
            pieces.append((s, xp.take(p, xp.arange(at, at + n), axis=axis)))
            at += n
    pieces.sort(key=lambda t: t[0])
    return xp.concatenate([p for _, p in pieces], axis=axis)


class _Ring:
    """Shared set-up of ring forward and backward: segments, neighbours, messages."""

    def __init__(self, q, comm, layout, causal):
        self.comm = comm
        self.p, self.r = comm.size, comm.rank
        self.causal = causal
        # Every rank's segment lengths: from the local length and the layout's rule.
        local = q.shape[2]
        lens = comm.allgather(np.array([local], np.int64)).reshape(-1).tolist()
        total = int(sum(lens))
        self.bounds = shard_bounds(total, self.p, layout)
        for j, segs in enumerate(self.bounds):
            if sum(n for _, n in segs) != lens[j]:
                raise InvalidArgument(f"rank {j} holds {lens[j]} positions, but the {layout} layout of a "
                                      f"{total}-long sequence gives it {sum(n for _, n in segs)}: "
                                      "shard with baobab.attention.shard()")
        self.ctx = comm._context()
        self.next, self.prev = (self.r + 1) % self.p, (self.r - 1) % self.p

    def segments(self, x, j):
        """Contiguous per-segment copies of a (b, h, L, d) array of rank j."""
        out, at = [], 0
        for _, n in self.bounds[j]:
            out.append(_xp(x).ascontiguousarray(x[:, :, at:at + n]))
            at += n
        return out

    def offset(self, qstart, qlen, kstart, klen):
        """The kernels' causal_offset for a (query, key) segment pair, or None when
        every pair is masked (skip it)."""
        if not self.causal:
            return NO_MASK
        if qlen == 0 or klen == 0 or qstart + qlen - 1 < kstart:
            return None
        return qstart - kstart


def _flat(segs):
    return _xp(segs[0]).concatenate([s.reshape(-1) for s in segs])


def _split(buf, shapes):
    out, at = [], 0
    for sh in shapes:
        n = int(np.prod(sh))
        out.append(buf[at:at + n].reshape(sh))
        at += n
    return out


def ring(q, k, v, comm, *, causal=True, layout="contiguous", scale=None, return_lse=False, threads=None):
    """Ring attention forward: each rank holds its shard of q, k, v (in `layout`,
    see shard()); K/V blocks travel around the ring with non-blocking messages
    overlapping the block computation. Returns this rank's output (and lse)."""
    q, k, v = _check_qkv(q, k, v)
    if q.shape[2] != k.shape[2]:
        raise InvalidArgument("ring attention is self-attention: q and k shards must have the same length")
    R = _Ring(q, comm, layout, causal)
    d = q.shape[3]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    xp = _xp(q)
    qs = R.segments(q, R.r)
    acc = [pack_rows(xp.zeros_like(s), xp.full(s.shape[:3], -np.inf, s.dtype)) for s in qs]
    kv = xp.concatenate([_flat(R.segments(k, R.r)), _flat(R.segments(v, R.r))])
    for step in range(R.p):
        j = (R.r - step) % R.p  # the rank whose block this is
        reqs = []
        if step < R.p - 1:
            nxt = (R.r - step - 1) % R.p
            nlen = sum(n for _, n in R.bounds[nxt])
            incoming = xp.empty(2 * q.shape[0] * q.shape[1] * nlen * d, q.dtype)
            reqs = [R.ctx.irecv(incoming, R.prev, tag=step), R.ctx.isend(kv, R.next, tag=step)]
        shapes = [(q.shape[0], q.shape[1], n, d) for _, n in R.bounds[j]]
        half = kv.size // 2
        ks, vs = _split(kv[:half], shapes), _split(kv[half:], shapes)
        for qi, ((qstart, qlen), qseg) in enumerate(zip(R.bounds[R.r], qs)):
            for (kstart, klen), kseg, vseg in zip(R.bounds[j], ks, vs):
                off = R.offset(qstart, qlen, kstart, klen)
                if off is None:
                    continue
                o, l = partial(qseg, kseg, vseg, scale, None if off == NO_MASK else off, threads=threads)
                _merge_into(acc[qi], pack_rows(o, l))
        R.ctx.wait_all(reqs)
        if reqs:
            kv = incoming
    out = xp.concatenate([a[..., :d] for a in acc], axis=2)
    lse = xp.concatenate([a[..., d] for a in acc], axis=2)
    return (out, lse) if return_lse else out


def ring_backward(q, k, v, out, lse, dout, comm, *, causal=True, layout="contiguous", scale=None, threads=None):
    """Gradients (dq, dk, dv) of this rank's shards, given the ring forward's
    output and lse and the output gradient dout. K/V blocks travel around the
    ring as in the forward pass, their gradients accumulating as they go, and a
    last hop returns every block's dK/dV to its owner."""
    q, k, v = _check_qkv(q, k, v)
    out, dout = _check4("out", out), _check4("dout", dout)
    xp = _xp(q)
    lse = xp.ascontiguousarray(lse, dtype=q.dtype)
    if out.shape != q.shape or dout.shape != q.shape or lse.shape != q.shape[:3]:
        raise InvalidArgument("out and dout must have q's shape and lse q's shape without d")
    R = _Ring(q, comm, layout, causal)
    d = q.shape[3]
    scale = 1.0 / math.sqrt(d) if scale is None else float(scale)
    delta = (dout * out).sum(axis=-1)
    qs, douts = R.segments(q, R.r), R.segments(dout, R.r)
    lses = R.segments(lse[..., None], R.r)
    deltas = R.segments(delta[..., None], R.r)
    lses = [xp.ascontiguousarray(x[..., 0]) for x in lses]
    deltas = [xp.ascontiguousarray(x[..., 0]) for x in deltas]
    dqs = [xp.zeros_like(s) for s in qs]
    kv = xp.concatenate([_flat(R.segments(k, R.r)), _flat(R.segments(v, R.r))])
    grads = xp.zeros_like(kv)  # dK, dV of the block in hand
    for step in range(R.p):
        j = (R.r - step) % R.p
        reqs = []
        if step < R.p - 1:
            nxt = (R.r - step - 1) % R.p
            nlen = sum(n for _, n in R.bounds[nxt])
            incoming = xp.empty(2 * q.shape[0] * q.shape[1] * nlen * d, q.dtype)
            reqs = [R.ctx.irecv(incoming, R.prev, tag=2 * step), R.ctx.isend(kv, R.next, tag=2 * step)]
        shapes = [(q.shape[0], q.shape[1], n, d) for _, n in R.bounds[j]]
        half = kv.size // 2
        ks, vs = _split(kv[:half], shapes), _split(kv[half:], shapes)
        dks, dvs = _split(grads[:half], shapes), _split(grads[half:], shapes)
        for qi, (qstart, qlen) in enumerate(R.bounds[R.r]):
            for (kstart, klen), kseg, vseg, dk, dv in zip(R.bounds[j], ks, vs, dks, dvs):
                off = R.offset(qstart, qlen, kstart, klen)
                if off is None:
                    continue
                _backward(qs[qi], kseg, vseg, douts[qi], lses[qi], deltas[qi], scale, off, dqs[qi], dk, dv,
                          threads)
        # The block's gradients follow it (the last hop takes them home).
        incoming_grads = xp.empty(2 * q.shape[0] * q.shape[1] * sum(n for _, n in R.bounds[(j - 1) % R.p]) * d,
                                  q.dtype) if R.p > 1 else None
        if R.p > 1:
            reqs += [R.ctx.irecv(incoming_grads, R.prev, tag=2 * step + 1),
                     R.ctx.isend(grads, R.next, tag=2 * step + 1)]
        R.ctx.wait_all(reqs)
        if R.p > 1:
            grads = incoming_grads
            if step < R.p - 1:
                kv = incoming
    # After p hops the gradients in hand are this rank's own block's.
    shapes = [(q.shape[0], q.shape[1], n, d) for _, n in R.bounds[R.r]]
    half = grads.size // 2
    dk = xp.concatenate(_split(grads[:half], shapes), axis=2)
    dv = xp.concatenate(_split(grads[half:], shapes), axis=2)
    dq = xp.concatenate(dqs, axis=2)
    return dq, dk, dv


def _backward(q, k, v, dout, lse, delta, scale, off, dq, dk, dv, threads):
    if _xp(q) is np:
        _core.attention_backward(q, k, v, dout, lse, delta, scale, off, dq, dk, dv, _threads(threads))
    else:
        from . import _attention_xp
        _attention_xp.backward(_xp(q), q, k, v, dout, lse, delta, scale, None if off == NO_MASK else off, dq, dk, dv)

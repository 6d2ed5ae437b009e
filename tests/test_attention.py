"""Local attention kernels and the merge, against a dense float64 reference."""
import math

import numpy as np
import pytest

import baobab
from baobab import attention
from attention_ref import dense, dense_backward, rel_err

TOL = {np.float64: 1e-12, np.float32: 1e-5}


def data(shape_q, kv_len, dtype, seed=0, scale=1.0):
    rng = np.random.default_rng(seed)
    b, h, lq, d = shape_q
    q = (rng.standard_normal((b, h, lq, d)) * scale).astype(dtype)
    k = (rng.standard_normal((b, h, kv_len, d)) * scale).astype(dtype)
    v = rng.standard_normal((b, h, kv_len, d)).astype(dtype)
    return q, k, v


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lq, lk, d", [(1, 1, 1), (5, 37, 16), (33, 129, 64), (70, 200, 80), (4, 1000, 64),
                                       (3, 0, 8)])
@pytest.mark.parametrize("offset", [None, 0, 7, -3, 150])
def test_partial_matches_dense(dtype, lq, lk, d, offset):
    q, k, v = data((2, 3, lq, d), lk, dtype, seed=lq * 7 + lk)
    scale = 1 / math.sqrt(d)
    out, lse = attention.partial(q, k, v, causal_offset=offset)
    qpos, kpos = np.arange(lq) + (offset or 0), np.arange(lk)
    ref_out, ref_lse, _ = dense(q, k, v, scale, qpos, kpos, causal=offset is not None)
    assert out.dtype == dtype and lse.dtype == dtype
    assert rel_err(out, ref_out) < TOL[dtype]
    finite = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(lse), finite)
    assert rel_err(lse[finite], ref_lse[finite]) < TOL[dtype]
    assert (out[~finite] == 0).all()


def test_empty_shard_and_merge_identity():
    q, k, v = data((1, 2, 4, 8), 0, np.float64)
    out, lse = attention.partial(q, k, v)
    assert np.isneginf(lse).all() and (out == 0).all()
    q, k, v = data((1, 2, 4, 8), 10, np.float64, seed=3)
    o, l = attention.partial(q, k, v)
    m_out, m_lse = attention.merge(o, l, out, lse)  # merging "nothing" changes nothing
    assert np.array_equal(m_out, o) and np.array_equal(m_lse, l)
    e_out, e_lse = attention.merge(out, lse, out, lse)
    assert np.isneginf(e_lse).all() and (e_out == 0).all() and not np.isnan(e_out).any()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_merged_shards_equal_the_whole_and_merge_is_commutative(dtype):
    q, k, v = data((2, 2, 6, 32), 301, dtype, seed=11)
    ref_out, ref_lse, _ = dense(q, k, v, 1 / math.sqrt(32))
    cuts = [0, 17, 17, 150, 301]  # uneven, and one empty shard
    parts = [attention.partial(q, k[:, :, a:b], v[:, :, a:b]) for a, b in zip(cuts, cuts[1:])]
    acc = parts[0]
    for p in parts[1:]:
        ab = attention.merge(*acc, *p)
        ba = attention.merge(*p, *acc)
        assert np.array_equal(ab[0], ba[0]) and np.array_equal(ab[1], ba[1])  # bitwise
        acc = ab
    assert rel_err(acc[0], ref_out) < TOL[dtype] * 4 and rel_err(acc[1], ref_lse) < TOL[dtype] * 4


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_extreme_inputs(dtype):
    rng = np.random.default_rng(5)
    # scores of magnitude ~1e4
    q, k, v = data((1, 2, 3, 16), 64, dtype, seed=9, scale=30.0)
    out, lse = attention.partial(q, k, v, scale=1.0)
    ref_out, ref_lse, _ = dense(q, k, v, 1.0)
    assert np.abs(np.einsum("bhid,bhjd->bhij", q.astype(float), k.astype(float))).max() > 1e3
    assert not np.isnan(out).any() and rel_err(out, ref_out) < TOL[dtype] * 10
    assert rel_err(lse, ref_lse) < TOL[dtype] * 10
    # identical keys: uniform weights, the mean of v
    q = rng.standard_normal((1, 1, 4, 8)).astype(dtype)
    k = np.repeat(rng.standard_normal((1, 1, 1, 8)), 50, axis=2).astype(dtype)
    v = rng.standard_normal((1, 1, 50, 8)).astype(dtype)
    out, _ = attention.partial(q, k, v)
    assert rel_err(out, np.broadcast_to(v.astype(float).mean(axis=2, keepdims=True), out.shape)) < TOL[dtype] * 10
    # one shard holds all the mass: the other's weight underflows to exactly zero
    q = np.ones((1, 1, 1, 4), dtype)
    k_hot, v_hot = np.full((1, 1, 3, 4), 200.0, dtype), rng.standard_normal((1, 1, 3, 4)).astype(dtype)
    k_cold, v_cold = np.full((1, 1, 5, 4), -200.0, dtype), rng.standard_normal((1, 1, 5, 4)).astype(dtype)
    a = attention.partial(q, k_hot, v_hot, scale=1.0)
    b = attention.partial(q, k_cold, v_cold, scale=1.0)
    out, lse = attention.merge(*a, *b)
    assert np.allclose(out, v_hot.astype(float).mean(axis=2, keepdims=True), rtol=TOL[dtype] * 10)
    assert np.isfinite(lse).all()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("offset", [None, 0, 40, -5])
def test_backward_matches_dense(dtype, offset):
    lq, lk, d = 45, 97, 24
    q, k, v = data((2, 2, lq, d), lk, dtype, seed=21)
    dout = np.random.default_rng(22).standard_normal(q.shape).astype(dtype)
    scale = 1 / math.sqrt(d)
    causal = offset is not None
    qpos, kpos = np.arange(lq) + (offset or 0), np.arange(lk)
    out, lse = attention.partial(q, k, v, causal_offset=offset)
    delta = np.einsum("bhld,bhld->bhl", dout, out).astype(dtype)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    baobab._core.attention_backward(q, k, v, dout, lse, delta, scale,
                                    attention.NO_MASK if offset is None else offset, dq, dk, dv, 0)
    rq, rk, rv = dense_backward(q, k, v, dout, scale, qpos, kpos, causal)
    tol = TOL[dtype] * (1 if dtype == np.float64 else 10)
    assert rel_err(dq, rq) < tol and rel_err(dk, rk) < tol and rel_err(dv, rv) < tol


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("lq, lk, offset", [(45, 97, None), (45, 97, 40), (64, 64, 0), (30, 30, -5), (1, 0, 0)])
def test_public_backward_matches_dense(dtype, lq, lk, offset):
    """attention.backward (the public API over partial's out and lse) against the dense reference."""
    d = 24
    q, k, v = data((2, 3, lq, d), lk, dtype, seed=lq + lk)
    dout = np.random.default_rng(5).standard_normal(q.shape).astype(dtype)
    out, lse = attention.partial(q, k, v, causal_offset=offset)
    dq, dk, dv = attention.backward(q, k, v, out, lse, dout, causal_offset=offset)
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    assert dq.dtype == dk.dtype == dv.dtype == dtype
    qpos, kpos = np.arange(lq) + (offset or 0), np.arange(lk)
    rq, rk, rv = dense_backward(q, k, v, dout, 1 / math.sqrt(d), qpos, kpos, offset is not None)
    rq = np.nan_to_num(rq)  # a query that sees no key has no gradient
    tol = TOL[dtype] * (1 if dtype == np.float64 else 10)
    assert rel_err(dq, rq) < tol and rel_err(dk, rk) < tol and rel_err(dv, rv) < tol
    # An explicit scale goes to both passes.
    out2, lse2 = attention.partial(q, k, v, scale=0.3, causal_offset=offset)
    dq2, _, _ = attention.backward(q, k, v, out2, lse2, dout, scale=0.3, causal_offset=offset, threads=1)
    rq2, _, _ = dense_backward(q, k, v, dout, 0.3, qpos, kpos, offset is not None)
    assert rel_err(dq2, np.nan_to_num(rq2)) < tol


def test_public_backward_refuses_bad_input():
    q, k, v = data((1, 2, 4, 8), 6, np.float64)
    out, lse = attention.partial(q, k, v)
    with pytest.raises(baobab.InvalidArgument, match="dout"):
        attention.backward(q, k, v, out, lse, out[:, :, :3])
    with pytest.raises(baobab.InvalidArgument, match="lse"):
        attention.backward(q, k, v, out, lse[:, :, :2], out)
    with pytest.raises(baobab.InvalidArgument, match="dtype"):
        attention.backward(q, k, v, out, lse, out.astype(np.float32))


def test_backward_against_finite_differences():
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 2, n, 6)) for n in (4, 7, 7))
    w = rng.standard_normal((1, 2, 4, 6))

    def loss(q, k, v):
        return float((attention.partial(q, k, v, causal_offset=3)[0] * w).sum())
    out, lse = attention.partial(q, k, v, causal_offset=3)
    delta = np.einsum("bhld,bhld->bhl", w, out)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    baobab._core.attention_backward(q, k, v, w, lse, delta, 1 / math.sqrt(6), 3, dq, dk, dv, 1)
    h = 1e-6
    for x, g in ((q, dq), (k, dk), (v, dv)):
        num = np.zeros_like(x)
        for idx in np.ndindex(*x.shape):
            old = x[idx]
            x[idx] = old + h
            up = loss(q, k, v)
            x[idx] = old - h
            down = loss(q, k, v)
            x[idx] = old
            num[idx] = (up - down) / (2 * h)
        assert rel_err(g, num) < 1e-7


def test_bad_input():
    q, k, v = data((1, 1, 2, 4), 3, np.float64)
    with pytest.raises(baobab.InvalidArgument, match="float32 or float64"):
        attention.partial(q.astype(np.float16), k, v)
    with pytest.raises(baobab.InvalidArgument, match="share one dtype"):
        attention.partial(q, k.astype(np.float32), v)
    with pytest.raises(baobab.InvalidArgument, match="shapes do not fit"):
        attention.partial(q, k[..., :3], v)
    with pytest.raises(baobab.InvalidArgument, match="batch, heads, length, d"):
        attention.partial(q[0], k, v)
    with pytest.raises(baobab.InvalidArgument, match="layout"):
        attention.shard_bounds(10, 2, "spiral")


@pytest.mark.parametrize("layout", ["contiguous", "zigzag"])
def test_shard_and_unshard(layout):
    x = np.arange(2 * 3 * 23 * 2).reshape(2, 3, 23, 2)
    parts = [attention.shard(x, r, 4, layout) for r in range(4)]
    assert sum(p.shape[2] for p in parts) == 23
    assert np.array_equal(attention.unshard(parts, layout), x)


# ---- the device implementation, run with numpy as its array module -------------------

@pytest.mark.parametrize("offset", [None, 0, 30, -4])
def test_array_module_path_matches_dense(offset):
    """_attention_xp is what cupy arrays run on; with xp = numpy it runs here."""
    from baobab import _attention_xp
    q, k, v = data((2, 2, 33, 16), 150, np.float64, seed=31)
    dout = np.random.default_rng(32).standard_normal(q.shape)
    scale = 1 / math.sqrt(16)
    qpos, kpos = np.arange(33) + (offset or 0), np.arange(150)
    out, lse = _attention_xp.partial(np, q, k, v, scale, offset, block=64)
    ref_out, ref_lse, _ = dense(q, k, v, scale, qpos, kpos, causal=offset is not None)
    assert rel_err(out, ref_out) < 1e-12
    finite = np.isfinite(ref_lse)
    assert np.array_equal(np.isfinite(lse), finite) and rel_err(lse[finite], ref_lse[finite]) < 1e-12
    delta = (dout * out).sum(-1)
    dq, dk, dv = np.zeros_like(q), np.zeros_like(k), np.zeros_like(v)
    _attention_xp.backward(np, q, k, v, dout, lse, delta, scale, offset, dq, dk, dv, block=64)
    rq, rk, rv = dense_backward(q, k, v, dout, scale, qpos, kpos, offset is not None)
    assert rel_err(dq, rq) < 1e-12 and rel_err(dk, rk) < 1e-12 and rel_err(dv, rv) < 1e-12
    # its merge agrees with the core's
    a = attention.pack_rows(*attention.partial(q, k[:, :, :70], v[:, :, :70]))
    b = attention.pack_rows(*attention.partial(q, k[:, :, 70:], v[:, :, 70:]))
    mine = _attention_xp.merge_rows(np, a, b)
    core = a.copy()
    baobab._core.attention_merge_rows(core, a, b, 16)
    assert rel_err(mine, core) < 1e-15
    empty = attention.pack_rows(np.zeros_like(q), np.full(q.shape[:3], -np.inf))
    both = _attention_xp.merge_rows(np, empty, empty)
    assert np.isneginf(both[..., -1]).all() and (both[..., :-1] == 0).all()

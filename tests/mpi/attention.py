"""Run under mpiexec: tree decode and ring attention (forward and backward) on
every rank's shard against a dense float64 reference computed on every rank."""
import math
import sys

import numpy as np

import baobab
from baobab import attention
from attention_ref import dense, dense_backward, rel_err

comm = baobab.init(timeout=120)
r, p = comm.rank, comm.size
fails, checks = [], [0]
TOL = {np.float64: 1e-12, np.float32: 1e-5}


def check(cond, what):
    checks[0] += 1
    if not cond:
        fails.append(what)
        sys.stdout.write(f"rank {r}: FAILED {what}\n")
        sys.stdout.flush()


for dtype in (np.float64, np.float32):
    tol = TOL[dtype]
    rng = np.random.default_rng(42)  # the same global data on every rank
    # ---- tree decode: uneven shards, one empty when p >= 3
    total, d, nq = 101 + 7 * p, 32, 3
    q = rng.standard_normal((2, 4, nq, d)).astype(dtype)
    K = rng.standard_normal((2, 4, total, d)).astype(dtype)
    V = rng.standard_normal((2, 4, total, d)).astype(dtype)
    cuts = np.linspace(0, total, p + 1).astype(int).tolist()
    if p >= 3:
        cuts[2] = cuts[1]  # rank 1 holds nothing
    a, b = cuts[r], cuts[r + 1]
    ref, ref_lse, _ = dense(q, K, V, 1 / math.sqrt(d))
    out, lse = attention.tree_decode(q, K[:, :, a:b], V[:, :, a:b], comm, return_lse=True)
    check(rel_err(out, ref) < tol and rel_err(lse, ref_lse) < tol, f"tree_decode {np.dtype(dtype).name}")
    everyone = comm.mpi_comm.allgather(out.tobytes())
    check(all(e == everyone[0] for e in everyone), "tree_decode identical bits on every rank")
    res = attention.tree_decode(q, K[:, :, a:b], V[:, :, a:b], comm, root=p - 1)
    check((res is None) == (r != p - 1), "tree_decode root= returns on root only")
    if r == p - 1:
        check(rel_err(res, ref) < tol, "tree_decode root result")
    # causal decode: queries at the end of the sequence (positions total - nq ..)
    qstart = total - nq
    out = attention.tree_decode(q, K[:, :, a:b], V[:, :, a:b], comm, causal_offset=qstart - a)
    ref_c, _, _ = dense(q, K, V, 1 / math.sqrt(d), np.arange(qstart, total), np.arange(total), causal=True)
    check(rel_err(out, ref_c) < tol, f"causal tree_decode {np.dtype(dtype).name}")

    # ---- ring forward and backward: both layouts, causal and not, uneven lengths
    for layout in ("contiguous", "zigzag"):
        for causal in (True, False):
            L = 2 * p * 5 + 3  # not divisible by the rank count or 2p
            dd = 16
            Q = rng.standard_normal((1, 2, L, dd)).astype(dtype)
            Kr = rng.standard_normal((1, 2, L, dd)).astype(dtype)
            Vr = rng.standard_normal((1, 2, L, dd)).astype(dtype)
            dO = rng.standard_normal((1, 2, L, dd)).astype(dtype)
            pos = np.arange(L)
            scale = 1 / math.sqrt(dd)
            ref, ref_lse, _ = dense(Q, Kr, Vr, scale, pos, pos, causal)
            rq, rk, rv = dense_backward(Q, Kr, Vr, dO, scale, pos, pos, causal)
            sh = lambda x: attention.shard(x, r, p, layout)  # noqa: E731
            out, lse = attention.ring(sh(Q), sh(Kr), sh(Vr), comm, causal=causal, layout=layout, return_lse=True)
            tag = f"ring {layout} causal={causal} {np.dtype(dtype).name}"
            check(rel_err(out, sh(ref)) < tol * 4, tag + " out")
            check(rel_err(lse, attention.shard(ref_lse[..., None], r, p, layout)[..., 0]) < tol * 4, tag + " lse")
            dq, dk, dv = attention.ring_backward(sh(Q), sh(Kr), sh(Vr), out, lse, sh(dO), comm, causal=causal,
                                                 layout=layout)
            btol = tol * (4 if dtype == np.float64 else 20)
            check(rel_err(dq, sh(rq)) < btol, tag + " dq")
            check(rel_err(dk, sh(rk)) < btol, tag + " dk")
            check(rel_err(dv, sh(rv)) < btol, tag + " dv")

# ---- a mismatched head count is a MismatchError, not a hang or garbage
try:
    attention.tree_decode(np.zeros((1, 2 + (r == 0), 1, 8)), np.zeros((1, 2 + (r == 0), 4, 8)),
                          np.zeros((1, 2 + (r == 0), 4, 8)), comm)
    check(p == 1, "mismatched shapes raised nothing")
except baobab.MismatchError as e:
    check("count" in str(e), str(e))

total = sum(comm.mpi_comm.allgather(len(fails))) if p > 1 and not fails else len(fails)
if r == 0:
    sys.stdout.write(f"{'OK' if not fails else 'FAILED'} attention p={p} checks={checks[0]}\n")
sys.exit(1 if fails else 0)

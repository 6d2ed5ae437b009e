"""AdamW with decoupled weight decay, gradient clipping by global norm, and a
linear warm-up then cosine learning-rate schedule.

The update is a function over flat arrays (adamw_), so a sharded optimizer
(ZeRO) can run it on its slice of a flat buffer; AdamW is the per-parameter
wrapper that keeps one (m, v) pair per parameter. Everything is in place on
xp arrays of the parameters' dtype.
"""
import math

import numpy as np

from baobab import InvalidArgument

CLIP_EPS = 1e-6  # max_norm / (norm + CLIP_EPS), as torch.nn.utils.clip_grad_norm_


def lr_at(step, *, lr, warmup, total, min_lr=0.0):
    """The learning rate of step `step` (0-based): lr * (step + 1) / warmup
    during the warm-up, then a cosine from lr down to min_lr at step `total`,
    min_lr after it."""
    if step < warmup:
        return lr * (step + 1) / warmup
    if step >= total:
        return min_lr
    progress = (step - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * progress))


BLOCK = 1 << 15  # elements per block of the host update: its temporaries stay in the L2 cache


def adamw_(p, g, m, v, *, step, lr, beta1, beta2, eps, wd, grad_scale=1.0, block=None):
    """One AdamW step in place on flat (or equally shaped, C-contiguous) arrays:
    p parameters, g gradients, m and v the moment estimates; step counts from
    1. wd is the weight decay, a number or an array over p (0 where a parameter
    is not decayed); the gradient used is grad_scale * g (the clipping factor,
    applied here instead of in a pass of its own):
        m <- beta1 m + (1 - beta1) g,  v <- beta2 v + (1 - beta2) g^2
        p <- p (1 - lr wd) - lr/(1 - beta1^step) m / (sqrt(v)/sqrt(1 - beta2^step) + eps)
    On the host it runs block by block (`block` elements, BLOCK by default), so
    that its dozen elementwise passes read memory once; the result does not
    depend on the block size."""
    if step < 1:
        raise InvalidArgument(f"adamw_: step counts from 1, got {step}")
    xp = _xp(p)
    p, g, m, v = (x.reshape(-1) for x in (p, g, m, v))
    if not all(x.size == p.size for x in (g, m, v)):
        raise InvalidArgument(f"adamw_: sizes differ: p {p.size}, g {g.size}, m {m.size}, v {v.size}")
    scalar_wd = isinstance(wd, (int, float))
    if not scalar_wd:
        wd = wd.reshape(-1)
    n = p.size
    block = (BLOCK if xp is np else n) if block is None else int(block)
    bc1 = 1.0 - beta1 ** step
    c2 = 1.0 / math.sqrt(1.0 - beta2 ** step)
    tmp = xp.empty(min(block, n), p.dtype)
    for a in range(0, n, block):
        sl = slice(a, a + block)
        P, G, Mm, V = p[sl], g[sl], m[sl], v[sl]
        T = tmp[:P.size]
        if scalar_wd:
            if wd != 0:
                P *= 1.0 - lr * wd
        else:
            xp.multiply(wd[sl], -lr, out=T)
            T += 1.0
            P *= T
        Mm *= beta1
        xp.multiply(G, (1.0 - beta1) * grad_scale, out=T)
        Mm += T
        V *= beta2
        xp.multiply(G, G, out=T)
        T *= (1.0 - beta2) * grad_scale * grad_scale
        V += T
        xp.sqrt(V, out=T)
        T *= c2
        T += eps
        xp.divide(Mm, T, out=T)
        T *= lr / bc1
        P -= T


def _xp(x):
    if hasattr(type(x), "__cuda_array_interface__"):
        import cupy
        return cupy
    return np


def sq_sum(arrays, block=8192):
    """Sum of squares of the arrays, a Python float, in a fixed order: the dot
    product of each block of `block` elements (in the arrays' dtype; BLAS keeps
    a vector this short on one thread) added up in float64. Device arrays take
    one dot product per array."""
    total = 0.0
    for a in arrays:
        a = a.reshape(-1)
        if _xp(a) is not np:
            total += float(a @ a)
            continue
        for i in range(0, a.size, block):
            c = a[i:i + block]
            total += float(c @ c)
    return total


def global_grad_norm(grads, specs, tp=None):
    """The L2 norm of the whole model's gradient: the tensor-parallel blocks'
    squares summed over the TP group (tp, a baobab Communicator or None), the
    replicated parameters (identical on every TP rank) counted once."""
    split = sq_sum(grads[n] for n, s in specs.items() if s.axis is not None)
    if tp is not None and tp.size > 1:
        split = float(tp.allreduce(np.array([split]))[0])
    return math.sqrt(split + sq_sum(grads[n] for n, s in specs.items() if s.axis is None))


def clip_coef(norm, max_norm):
    """The factor (at most 1) that scales gradients of global norm `norm` to max_norm."""
    if not math.isfinite(norm):
        return 1.0
    return min(1.0, max_norm / (norm + CLIP_EPS))


def decays(spec, decay_embeddings=False):
    """Weight decay applies to matrices (and embeddings when asked), never to biases and LayerNorms."""
    return spec.kind == "matrix" or (decay_embeddings and spec.kind == "embedding")


class AdamW:
    """Per-parameter AdamW over dicts of arrays (state: m, v per parameter)."""

    def __init__(self, params, specs, *, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, decay_embeddings=False,
                 xp=np, threads=1):
        b1, b2 = betas
        if not (0 <= b1 < 1 and 0 <= b2 < 1):
            raise InvalidArgument(f"AdamW betas must lie in [0, 1), got {betas}")
        if not (eps > 0 and math.isfinite(eps)):
            raise InvalidArgument(f"AdamW eps must be positive, got {eps}")
        if not (weight_decay >= 0 and math.isfinite(weight_decay)):
            raise InvalidArgument(f"AdamW weight_decay must be non-negative, got {weight_decay}")
        self.beta1, self.beta2, self.eps = float(b1), float(b2), float(eps)
        self.wd = {n: (float(weight_decay) if decays(specs[n], decay_embeddings) else 0.0) for n in params}
        self.m = {n: xp.zeros_like(p) for n, p in params.items()}
        self.v = {n: xp.zeros_like(p) for n, p in params.items()}
        self.step = 0
        self._pool = None
        if xp is np and threads and threads > 1:  # numpy's elementwise loops release the GIL
            from concurrent.futures import ThreadPoolExecutor
            self._pool = ThreadPoolExecutor(int(threads), thread_name_prefix="adamw")

    def update(self, params, grads, lr, grad_scale=1.0):
        """One step on every parameter with learning rate lr and the gradients
        scaled by grad_scale (the parameters spread over the threads; each
        one's arithmetic is the same)."""
        self.step += 1

        def one(n):
            adamw_(params[n], grads[n], self.m[n], self.v[n], step=self.step, lr=lr, beta1=self.beta1,
                   beta2=self.beta2, eps=self.eps, wd=self.wd[n], grad_scale=grad_scale)
        if self._pool is None:
            for n in params:
                one(n)
        else:
            for f in [self._pool.submit(one, n) for n in params]:
                f.result()

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


def adamw_(p, g, m, v, *, step, lr, beta1, beta2, eps, wd):
    """One AdamW step in place on flat (or equally shaped) arrays: p parameters,
    g gradients, m and v the moment estimates; step counts from 1. wd is the
    weight decay, a number or an array over p (0 where a parameter is not
    decayed): p <- p (1 - lr wd) - lr m_hat / (sqrt(v_hat) + eps)."""
    if step < 1:
        raise InvalidArgument(f"adamw_: step counts from 1, got {step}")
    if not (isinstance(wd, (int, float)) and wd == 0):
        p *= 1.0 - lr * wd
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * (g * g)
    bc1 = 1.0 - beta1 ** step
    bc2 = 1.0 - beta2 ** step
    denom = v ** 0.5
    denom *= 1.0 / math.sqrt(bc2)
    denom += eps
    denom = m / denom
    denom *= lr / bc1
    p -= denom


def sq_sum(arrays):
    """Sum of squares of the arrays, a Python float (accumulated in float64, in order)."""
    total = 0.0
    for a in arrays:
        a = a.reshape(-1)
        total += float((a @ a) if a.dtype == np.float64 else (a.astype(np.float64) @ a.astype(np.float64)))
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
                 xp=np):
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

    def update(self, params, grads, lr):
        """One step on every parameter with learning rate lr."""
        self.step += 1
        for n, p in params.items():
            adamw_(p, grads[n], self.m[n], self.v[n], step=self.step, lr=lr, beta1=self.beta1, beta2=self.beta2,
                   eps=self.eps, wd=self.wd[n])

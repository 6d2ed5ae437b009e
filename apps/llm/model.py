"""A decoder-only transformer in the GPT-2 layout, forward and backward by hand,
written once over an array module xp (numpy now).

Layout: token + position embeddings, `layers` pre-LayerNorm blocks (causal
multi-head attention, then a GELU(tanh) MLP of 4x width, each added to the
residual stream), a final LayerNorm, and an output head tied to the token
embedding. Attention goes through baobab.attention (partial/backward on one
rank, the zigzag ring over the sequence-parallel group); LayerNorm, GELU,
bias/residual and cross-entropy through ops.py; matmuls are `@` on xp.

Parallelism (a Parallel object says which):
- tensor parallel (Megatron): the fused qkv and MLP fc are column-parallel
  (heads, and MLP columns, split over the TP ranks), the attention and MLP
  output projections row-parallel, joined by the conjugate operators
  f (identity forward, all-reduce backward) before each column-parallel
  block and g (all-reduce forward, identity backward) after each row-parallel
  one. The token embedding is split by vocabulary rows (padded to a multiple
  of the TP degree with zero rows that are never trained and never enter the
  loss); the head's cross-entropy combines per-rank pieces with two small
  all-reduces (row max, then sum of exponentials with the target logit), so
  full logits are never gathered.
- sequence parallel: every rank holds its zigzag shard of each sequence
  (baobab.attention.shard_bounds: the sequence is cut into 2*sp near-equal
  chunks, rank r holds chunks r and 2*sp-1-r, so lengths that do not divide
  give shards differing by a token or two); everything but attention is
  token-local, attention is the ring. Gradients of every parameter are this
  rank's tokens' contributions: the caller sums them over the SP (and DP)
  ranks, exactly as for data parallelism.

Parameters live in a dict name -> local array; param_specs() gives their
global shapes and split axes (the layout-independent form a checkpoint
stores), in a fixed order whose reverse is the order gradients become final
in backward().
"""
import dataclasses
import math
import time
from collections import OrderedDict, namedtuple

import numpy as np

from baobab import InvalidArgument
from baobab import attention as battn

import ops as K

DTYPES = {"float64": np.float64, "float32": np.float32}

Spec = namedtuple("Spec", "shape axis kind")
Spec.__doc__ = """A parameter: global shape, tensor-parallel split axis (None: replicated), and kind
(matrix, bias, norm, embedding: what the optimizer's weight decay looks at)."""


@dataclasses.dataclass(frozen=True)
class Config:
    """Model size and precision. vocab: token ids 0..vocab-1; context: the
    longest sequence (rows of the position embedding)."""
    vocab: int = 256
    context: int = 256
    layers: int = 6
    width: int = 384
    heads: int = 6
    dtype: str = "float32"
    ln_eps: float = 1e-5

    def __post_init__(self):
        for name in ("vocab", "context", "layers", "width", "heads"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InvalidArgument(f"Config.{name} must be a positive integer, got {v!r}")
        if self.width % self.heads:
            raise InvalidArgument(f"Config.width {self.width} must be a multiple of heads {self.heads}")
        if self.dtype not in DTYPES:
            raise InvalidArgument(f"Config.dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        if not (isinstance(self.ln_eps, (int, float)) and 0 < self.ln_eps < 1):
            raise InvalidArgument(f"Config.ln_eps must be in (0, 1), got {self.ln_eps!r}")

    @property
    def head_dim(self):
        return self.width // self.heads

    @property
    def np_dtype(self):
        return np.dtype(DTYPES[self.dtype])


def param_specs(cfg):
    """name -> Spec in the fixed parameter order (the reverse is the order in
    which backward() finishes the gradients)."""
    C, V = cfg.width, cfg.vocab
    s = OrderedDict()
    s["wte"] = Spec((V, C), 0, "embedding")
    s["wpe"] = Spec((cfg.context, C), None, "embedding")
    for i in range(cfg.layers):
        p = f"h{i}."
        s[p + "ln1.w"] = Spec((C,), None, "norm")
        s[p + "ln1.b"] = Spec((C,), None, "norm")
        s[p + "attn.qkv.w"] = Spec((C, 3, C), 2, "matrix")
        s[p + "attn.qkv.b"] = Spec((3, C), 1, "bias")
        s[p + "attn.proj.w"] = Spec((C, C), 0, "matrix")
        s[p + "attn.proj.b"] = Spec((C,), None, "bias")
        s[p + "ln2.w"] = Spec((C,), None, "norm")
        s[p + "ln2.b"] = Spec((C,), None, "norm")
        s[p + "mlp.fc.w"] = Spec((C, 4 * C), 1, "matrix")
        s[p + "mlp.fc.b"] = Spec((4 * C,), 0, "bias")
        s[p + "mlp.proj.w"] = Spec((4 * C, C), 0, "matrix")
        s[p + "mlp.proj.b"] = Spec((C,), None, "bias")
    s["lnf.w"] = Spec((C,), None, "norm")
    s["lnf.b"] = Spec((C,), None, "norm")
    return s


def num_params(cfg):
    """Parameters of the model (the tied head counted once)."""
    return sum(int(np.prod(s.shape)) for s in param_specs(cfg).values())


def padded_vocab(vocab, tp_size):
    """The vocabulary rounded up to a multiple of the TP degree."""
    return -(-vocab // tp_size) * tp_size


def check_tp(cfg, tp_size):
    """Refuses a TP degree the model cannot be split by."""
    if cfg.heads % tp_size:
        raise InvalidArgument(f"the tensor-parallel degree {tp_size} must divide heads ({cfg.heads})")
    if cfg.vocab < tp_size:
        raise InvalidArgument(f"the tensor-parallel degree {tp_size} exceeds the vocabulary ({cfg.vocab})")


def local_shape(spec, tp_size):
    """This rank's block of a parameter (the token embedding's rows padded)."""
    shape = list(spec.shape)
    if spec.axis is not None:
        n = shape[spec.axis]
        if spec.kind == "embedding":
            n = padded_vocab(n, tp_size)
        shape[spec.axis] = n // tp_size
    return tuple(shape)


def shard_param(spec, full, tp_rank, tp_size, xp=np):
    """This rank's block (a new xp array) of a parameter given whole in its global shape."""
    full = np.asarray(full) if xp is np else full
    if tuple(full.shape) != spec.shape:
        raise InvalidArgument(f"expected global shape {spec.shape}, got {tuple(full.shape)}")
    if spec.axis is None:
        return xp.array(full, copy=True)
    ls = local_shape(spec, tp_size)
    n = ls[spec.axis]
    a, b = tp_rank * n, min((tp_rank + 1) * n, spec.shape[spec.axis])
    out = xp.zeros(ls, full.dtype)
    if b > a:
        idx = [slice(None)] * len(ls)
        idx[spec.axis] = slice(0, b - a)
        src = [slice(None)] * len(ls)
        src[spec.axis] = slice(a, b)
        out[tuple(idx)] = full[tuple(src)]
    return out


def gather_param(spec, parts, xp=np):
    """The global parameter from every TP rank's block (in rank order); padding dropped."""
    if spec.axis is None:
        return parts[0]
    full = xp.concatenate(list(parts), axis=spec.axis)
    idx = [slice(None)] * full.ndim
    idx[spec.axis] = slice(0, spec.shape[spec.axis])
    return full[tuple(idx)]


def init_params(cfg, seed, tp_rank=0, tp_size=1, xp=np):
    """GPT-2 initialisation: normal(0, 0.02) weights, the residual output
    projections normal(0, 0.02/sqrt(2*layers)), biases 0, LayerNorm weights 1.
    Drawn on the global shapes in the fixed order from `seed`, then sliced, so
    every layout starts from the same weights."""
    check_tp(cfg, tp_size)
    rng = np.random.default_rng(seed)
    std_resid = 0.02 / math.sqrt(2 * cfg.layers)
    params = OrderedDict()
    for name, spec in param_specs(cfg).items():
        if spec.kind in ("matrix", "embedding"):
            std = std_resid if name.endswith("proj.w") else 0.02
            full = rng.standard_normal(spec.shape) * std
        elif name.endswith(".w"):  # LayerNorm gain
            full = np.ones(spec.shape)
        else:
            full = np.zeros(spec.shape)
        params[name] = shard_param(spec, full.astype(cfg.np_dtype), tp_rank, tp_size, xp)
    return params


def zeros_like_params(params, xp=np):
    return OrderedDict((k, xp.zeros_like(v)) for k, v in params.items())


def flat_zeros(params, xp=np):
    """(flat, views): one zeroed buffer of all the parameters' sizes and a dict of
    views of it shaped like them, in the parameters' order (a gradient buffer
    that one collective can reduce)."""
    first = next(iter(params.values()))
    flat = xp.zeros(sum(int(v.size) for v in params.values()), first.dtype)
    views, at = OrderedDict(), 0
    for k, v in params.items():
        views[k] = flat[at:at + v.size].reshape(v.shape)
        at += v.size
    return flat, views


def flops_per_token(cfg, seq_len=None):
    """Model FLOPs per trained token (forward + backward = 3x forward): 6 per
    matmul weight (the head included) plus the causal attention scores and
    values, 6 * layers * width * seq_len (half of the full 12, for the mask)."""
    T = cfg.context if seq_len is None else seq_len
    C, L = cfg.width, cfg.layers
    matmul = L * (3 * C * C + C * C + 8 * C * C) + cfg.vocab * C
    return 6 * matmul + 6 * L * C * T


class Parallel:
    """Which tensor- and sequence-parallel group this rank is in: tp and sp are
    baobab Communicators (None: a group of one). Keeps the seconds spent in
    the model's own collectives (tp_seconds) and in ring attention
    (ring_seconds: computation and its overlapped messages together)."""

    def __init__(self, tp=None, sp=None):
        self.tp = tp if tp is not None and tp.size > 1 else None
        self.sp = sp if sp is not None and sp.size > 1 else None
        self.tp_size = self.tp.size if self.tp else 1
        self.tp_rank = self.tp.rank if self.tp else 0
        self.sp_size = self.sp.size if self.sp else 1
        self.sp_rank = self.sp.rank if self.sp else 0
        self.tp_seconds = 0.0
        self.tp_bytes = 0  # bytes handed to the TP all-reduces
        self.ring_seconds = 0.0

    def tp_allreduce(self, x, op="sum"):
        """In place over the TP group (nothing when it is one rank)."""
        if self.tp is not None:
            t = time.perf_counter()
            self.tp.allreduce(x, op=op, out=x)
            self.tp_bytes += x.nbytes
            self.tp_seconds += time.perf_counter() - t
        return x

    def seq_bounds(self, T):
        """(start, length) segments of a T-long sequence this rank holds."""
        if self.sp is None:
            return [(0, T)]
        return battn.shard_bounds(T, self.sp_size, "zigzag")[self.sp_rank]

    def seq_shard(self, x, axis=1):
        """This rank's part of full sequences along `axis` (the zigzag shard)."""
        if self.sp is None:
            return x
        return battn.shard(x, self.sp_rank, self.sp_size, "zigzag", axis=axis)


class Cache:
    """What forward() keeps for backward()."""

    def nbytes(self):
        """Bytes of the arrays kept (the layers' included): the activation memory of a micro-batch."""
        total = 0
        for v in vars(self).values():
            if isinstance(v, Cache):
                total += v.nbytes()
            elif isinstance(v, list):
                total += sum(x.nbytes() for x in v if isinstance(x, Cache))
            elif hasattr(v, "nbytes") and hasattr(v, "dtype"):
                total += int(v.nbytes)
        return total


class GPT:
    """The model's math for one configuration, parallel layout and array module."""

    def __init__(self, cfg, par=None, xp=np, threads=None, act_dtype=None):
        """act_dtype: None (activations kept for backward in the model's dtype) or
        "bfloat16": the five largest per layer (the inputs of the four weight
        gradients' matmuls, LayerNorm outputs h1 and h2, attention output y, GELU
        output g, and GELU's input u: 11 of the 17 N x C floats a layer keeps) are
        stored as bfloat16 (rounded once, to nearest even) and widened back in
        backward; matmuls, reductions and gradients stay float32. A float32 model
        only."""
        if not isinstance(cfg, Config):
            raise InvalidArgument(f"cfg must be a model.Config, got {type(cfg).__name__}")
        if act_dtype not in (None, "bfloat16"):
            raise InvalidArgument(f"act_dtype must be None or 'bfloat16', got {act_dtype!r}")
        if act_dtype and cfg.dtype != "float32":
            raise InvalidArgument(f"bfloat16 activations need a float32 model, not {cfg.dtype}")
        self.act_dtype = act_dtype
        self.cfg = cfg
        self.par = par or Parallel()
        self.xp = xp
        self.threads = threads
        check_tp(cfg, self.par.tp_size)
        self.specs = param_specs(cfg)
        tp = self.par.tp_size
        self.vloc = padded_vocab(cfg.vocab, tp) // tp
        self.vstart = self.par.tp_rank * self.vloc
        self.valid = max(0, min(self.vloc, cfg.vocab - self.vstart))
        self.hloc = cfg.heads // tp
        self.cloc = cfg.width // tp

    # ---- checks ---------------------------------------------------------------------

    def check_params(self, params):
        for name, spec in self.specs.items():
            p = params.get(name)
            shape = local_shape(spec, self.par.tp_size)
            if p is None or tuple(p.shape) != shape or p.dtype != self.cfg.np_dtype:
                got = "missing" if p is None else f"{tuple(p.shape)} {p.dtype}"
                raise InvalidArgument(f"parameter {name}: expected {shape} {self.cfg.dtype}, got {got}")

    def _check_tokens(self, tokens, what):
        xp = self.xp
        if tokens.ndim != 2 or tokens.shape[0] < 1 or tokens.shape[1] < 1:
            raise InvalidArgument(f"{what} must have shape (batch, seq_len), got {tuple(tokens.shape)}")
        if tokens.dtype.kind not in "iu":
            raise InvalidArgument(f"{what} must be integers, got {tokens.dtype}")
        lo, hi = int(tokens.min()), int(tokens.max())
        if lo < 0 or hi >= self.cfg.vocab:
            raise InvalidArgument(f"{what} must lie in [0, {self.cfg.vocab}), got values in [{lo}, {hi}]")
        return xp.ascontiguousarray(tokens, dtype=xp.int64)

    # ---- forward ---------------------------------------------------------------------

    def forward(self, params, tokens, targets=None, *, loss_scale=None, keep_logits=False, grad=True):
        """Runs the model on full sequences tokens (batch, T) (every SP rank
        passes the same; each computes its zigzag shard). With targets
        (batch, T): the per-token cross-entropy of this rank's tokens, and for
        backward() the logits' gradient scaled by loss_scale (default 1/(batch*T):
        summed over the SP ranks, the gradient of the batch's mean loss).

        Returns a Cache: loss_sum (this rank's summed loss, a float), ntok (its
        token count), logits (this rank's (batch, T_local, vocab-block) logits when
        keep_logits; the padding columns excluded)."""
        cfg, par, xp = self.cfg, self.par, self.xp
        tokens = self._check_tokens(tokens, "tokens")
        B, T = tokens.shape
        if T > cfg.context:
            raise InvalidArgument(f"sequence length {T} exceeds the context {cfg.context}")
        if targets is not None:
            targets = self._check_tokens(targets, "targets")
            if targets.shape != tokens.shape:
                raise InvalidArgument(f"targets {tuple(targets.shape)} must have the tokens' shape {(B, T)}")
        if T < 2 * par.sp_size and par.sp is not None:
            raise InvalidArgument(f"sequence length {T} is too short for {par.sp_size} sequence-parallel ranks "
                                  f"(at least {2 * par.sp_size})")
        c = Cache()
        c.B, c.T_global = B, T
        segs = par.seq_bounds(T)
        c.pos = xp.asarray(np.concatenate([np.arange(s, s + n) for s, n in segs]))
        tok = xp.ascontiguousarray(par.seq_shard(tokens)).reshape(-1)
        c.T = Tl = int(c.pos.shape[0])
        c.tok = tok
        N = B * Tl
        c.ntok = N
        # Embedding (vocabulary-parallel under TP: rows outside this rank's block give 0).
        x = self._embed(params["wte"], tok)
        x.reshape(B, Tl, -1)[...] += params["wpe"][c.pos][None]
        c.layers = []
        for i in range(cfg.layers):
            x, lc = self._block_forward(params, i, x, B, Tl)
            c.layers.append(lc)
        c.xL = x
        c.hf, c.mf, c.rf = K.layernorm_forward(x, params["lnf.w"], params["lnf.b"], cfg.ln_eps, threads=self.threads)
        wte = params["wte"]
        logits = c.hf @ wte.T  # (N, vloc); the f operator before it is the identity
        c.logits = logits[:, :self.valid].reshape(B, Tl, -1).copy() if keep_logits else None
        c.loss_sum = None
        c.dlogits = None
        if targets is not None:
            tgt = xp.ascontiguousarray(par.seq_shard(targets)).reshape(-1)
            scale = 1.0 / (B * T) if loss_scale is None else float(loss_scale)
            losses = self._xent(logits, tgt, scale, grad)
            c.loss_sum = float(losses.sum())
            c.dlogits = logits if grad else None
        return c

    def _embed(self, wte, tok):
        xp = self.xp
        if self.par.tp is None:
            return wte[tok]
        loc = tok - self.vstart
        mine = (loc >= 0) & (loc < self.valid)
        x = wte[xp.where(mine, loc, 0)]
        x[~mine] = 0
        return self.par.tp_allreduce(x)

    def _xent(self, logits, tgt, scale, grad):
        """Per-row losses; logits becomes their gradient (when grad)."""
        xp, th = self.xp, self.threads
        if self.par.tp is None and grad:
            return K.xent_forward_backward(logits, tgt, scale, self.valid, threads=th)
        gmax = self.par.tp_allreduce(K.xent_local_max(logits, self.valid, threads=th), op="max")
        sumexp, tlogit = K.xent_local_sumexp(logits, tgt, self.vstart, gmax, self.valid, threads=th)
        both = self.par.tp_allreduce(xp.stack([sumexp, tlogit]))
        lse = gmax + xp.log(both[0])
        if grad:
            K.xent_grad_(logits, tgt, self.vstart, lse, scale, self.valid, threads=th)
        return lse - both[1]

    def _attention(self, q, k, v):
        par = self.par
        if par.sp is None:
            return battn.partial(q, k, v, causal_offset=0, threads=self.threads)
        t = time.perf_counter()
        out, lse = battn.ring(q, k, v, par.sp, causal=True, layout="zigzag", return_lse=True, threads=self.threads)
        par.ring_seconds += time.perf_counter() - t
        return out, lse

    def _attention_backward(self, q, k, v, out, lse, dout):
        par = self.par
        if par.sp is None:
            return battn.backward(q, k, v, out, lse, dout, causal_offset=0, threads=self.threads)
        t = time.perf_counter()
        g = battn.ring_backward(q, k, v, out, lse, dout, par.sp, causal=True, layout="zigzag", threads=self.threads)
        par.ring_seconds += time.perf_counter() - t
        return g

    def _block_forward(self, params, i, x, B, T):
        cfg, xp, th = self.cfg, self.xp, self.threads
        P = lambda n: params[f"h{i}.{n}"]  # noqa: E731
        C, Cl, Hl, d = cfg.width, self.cloc, self.hloc, cfg.head_dim
        lc = Cache()
        lc.x = x
        lc.h1, lc.m1, lc.r1 = K.layernorm_forward(x, P("ln1.w"), P("ln1.b"), cfg.ln_eps, threads=th)
        qkv = lc.h1 @ P("attn.qkv.w").reshape(C, 3 * Cl)
        # (B, T, 3, Hl, d) -> (3, B, Hl, T, d), the bias added on the way: q, k, v contiguous blocks of one array
        lc.qkv = qkv5 = xp.empty((3, B, Hl, T, d), qkv.dtype)
        xp.add(qkv.reshape(B, T, 3, Hl, d).transpose(2, 0, 3, 1, 4), P("attn.qkv.b").reshape(3, 1, Hl, 1, d),
               out=qkv5)
        del qkv
        lc.out, lc.lse = self._attention(qkv5[0], qkv5[1], qkv5[2])
        lc.y = xp.ascontiguousarray(lc.out.transpose(0, 2, 1, 3)).reshape(B * T, Cl)
        a = self.par.tp_allreduce(lc.y @ P("attn.proj.w"))  # g: all-reduce the row-parallel partial sums
        lc.x1 = x1 = K.bias_residual(a, P("attn.proj.b"), x, out=a, threads=th)
        lc.h2, lc.m2, lc.r2 = K.layernorm_forward(x1, P("ln2.w"), P("ln2.b"), cfg.ln_eps, threads=th)
        lc.u, lc.g = K.bias_gelu_forward(lc.h2 @ P("mlp.fc.w"), P("mlp.fc.b"), threads=th)
        m = self.par.tp_allreduce(lc.g @ P("mlp.proj.w"))
        x2 = K.bias_residual(m, P("mlp.proj.b"), x1, out=m, threads=th)
        if self.act_dtype:  # the float32 copies go now; backward widens these back
            for n in ("h1", "y", "h2", "u", "g"):
                setattr(lc, n, K.to_bfloat16(getattr(lc, n), threads=th))
        return x2, lc

    def _act(self, a):
        """A kept activation in the model's dtype (widened if stored as bfloat16)."""
        if self.act_dtype:
            return K.from_bfloat16(a, self.cfg.np_dtype, threads=self.threads)
        return a

    # ---- backward --------------------------------------------------------------------

    def backward(self, params, cache, grads, *, on_grad=None, accumulate=True):
        """Adds this rank's gradients of the loss (scaled as in forward) into
        grads (a dict of arrays of the parameters' local shapes), or with
        accumulate=False overwrites them (the first micro-batch of a step: no
        zeroing, no extra pass). on_grad(name), if given, is called as each
        parameter's gradient becomes final, in the reverse of param_specs'
        order."""
        if cache.dlogits is None:
            raise InvalidArgument("backward() needs a forward() with targets and grad=True")
        cfg, xp, th = self.cfg, self.xp, self.threads
        done = on_grad or (lambda name: None)

        def put(name, g):
            G = grads[name]
            if accumulate:
                G += g.reshape(G.shape)
            else:
                G[...] = g.reshape(G.shape)

        def put_mm(name, a, b):  # grads[name] (+)= a.T @ b, straight into it when it may be overwritten
            G = grads[name]
            if accumulate or not G.flags.c_contiguous:
                put(name, a.T @ b)
            else:
                xp.matmul(a.T, b, out=G.reshape(a.shape[1], b.shape[1]))

        dlog = cache.dlogits
        wte = params["wte"]
        put_mm("wte", dlog, cache.hf)
        dh = self.par.tp_allreduce(dlog @ wte)  # f: all-reduce in backward
        cache.dlogits = None
        dx, dw, db = K.layernorm_backward(dh, cache.xL, params["lnf.w"], cache.mf, cache.rf, threads=th)
        put("lnf.b", db)
        done("lnf.b")
        put("lnf.w", dw)
        done("lnf.w")
        for i in reversed(range(cfg.layers)):
            dx = self._block_backward(params, i, cache.layers[i], dx, cache.B, cache.T, put, put_mm, done)
            cache.layers[i] = None
        # Position embedding: this rank's positions are distinct.
        G = grads["wpe"]
        if not accumulate:
            G[...] = 0
        G[cache.pos] += dx.reshape(cache.B, cache.T, -1).sum(axis=0)
        done("wpe")
        loc = cache.tok - self.vstart
        mine = (loc >= 0) & (loc < self.valid)
        if self.par.tp is None:
            xp.add.at(grads["wte"], cache.tok, dx)
        else:
            xp.add.at(grads["wte"], loc[mine], dx[mine])
        done("wte")

    def _block_backward(self, params, i, lc, dx2, B, T, put, put_mm, done):
        cfg, xp, th, par = self.cfg, self.xp, self.threads, self.par
        pre = f"h{i}."
        P = lambda n: params[pre + n]  # noqa: E731
        C, Cl, Hl, d = cfg.width, self.cloc, self.hloc, cfg.head_dim

        def emit(n, g):
            put(pre + n, g)
            done(pre + n)

        def emit_mm(n, a, b):
            put_mm(pre + n, a, b)
            done(pre + n)
        # MLP
        emit("mlp.proj.b", K.bias_grad(dx2, threads=th))
        emit_mm("mlp.proj.w", self._act(lc.g), dx2)
        du = K.gelu_backward(dx2 @ P("mlp.proj.w").T, self._act(lc.u), threads=th)
        lc.g = lc.u = None
        emit("mlp.fc.b", K.bias_grad(du, threads=th))
        emit_mm("mlp.fc.w", self._act(lc.h2), du)
        dh2 = par.tp_allreduce(du @ P("mlp.fc.w").T)
        del du
        dx1, dw, db = K.layernorm_backward(dh2, lc.x1, P("ln2.w"), lc.m2, lc.r2, threads=th)
        dx1 += dx2
        emit("ln2.b", db)
        emit("ln2.w", dw)
        # Attention
        emit("attn.proj.b", K.bias_grad(dx1, threads=th))
        emit_mm("attn.proj.w", self._act(lc.y), dx1)
        dy = dx1 @ P("attn.proj.w").T
        dout = xp.ascontiguousarray(dy.reshape(B, T, Hl, d).transpose(0, 2, 1, 3))
        q, k, v = lc.qkv[0], lc.qkv[1], lc.qkv[2]
        dq, dk, dv = self._attention_backward(q, k, v, lc.out, lc.lse, dout)
        dqkv5 = xp.empty((B, T, 3, Hl, d), dq.dtype)  # (B, Hl, T, d) x 3 -> (B, T, 3, Hl, d), one pass each
        for j, g in enumerate((dq, dk, dv)):
            dqkv5[:, :, j] = g.transpose(0, 2, 1, 3)
        del dq, dk, dv
        dqkv = dqkv5.reshape(B * T, 3 * Cl)
        emit("attn.qkv.b", K.bias_grad(dqkv, threads=th))
        emit_mm("attn.qkv.w", self._act(lc.h1), dqkv)
        dh1 = par.tp_allreduce(dqkv @ P("attn.qkv.w").reshape(C, 3 * Cl).T)
        dx, dw, db = K.layernorm_backward(dh1, lc.x, P("ln1.w"), lc.m1, lc.r1, threads=th)
        dx += dx1
        emit("ln1.b", db)
        emit("ln1.w", dw)
        return dx

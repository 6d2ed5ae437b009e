"""Data parallelism: gradient buckets reduced while the backward pass runs, and
ZeRO-1/ZeRO-2 sharding of the optimizer state (and gradients) over the
data-parallel group.

Layout. The parameters are taken in the order their gradients become ready in
the backward pass (the reverse of the model's order) and packed into buckets of
about `bucket_bytes` (default 25 MB, as PyTorch DDP). A parameter larger than
the limit gets a bucket of its own; no parameter is split across buckets. Each
bucket is padded to a multiple of the group size, so that rank r owns the r-th
equal slice of every bucket: that slice is rank r's shard under ZeRO, and the
same positions in the flat parameter buffer are the parameters it updates.

Reduction. `GradReducer.add(name, grad)` adds one parameter's gradient into its
bucket. On the micro-batch that synchronises (the last of an accumulation), a
bucket whose parameters have all arrived starts a non-blocking collective at
once (iallreduce; ireduce_scatter under ZeRO-2), so the reduction of the last
layers overlaps the backward pass of the earlier ones; earlier micro-batches
only accumulate. `finish()` waits for what is still in flight (the exposed
communication, timed) and divides by the group size: the result is the mean
gradient over the group's micro-batches, as one rank with the whole batch gets.

ZeRO-2 reduce-scatters on every micro-batch and accumulates into the shard, so
that no full-size gradient survives a micro-batch (DeepSpeed does the same):
with accumulation it communicates more than plain DP, in exchange for memory.

Memory per rank for Psi parameter elements (local to the tensor-parallel rank,
bucket padding included), N ranks in the group, b bytes per element, held
across steps (the persistent_bytes of each structure; tests check it):
    ZeRO-0: params Psi + grads Psi + AdamW m, v 2 Psi          = 4 Psi b
    ZeRO-1: params Psi + grads Psi + m, v 2 Psi/N + master Psi/N = (2 + 3/N) Psi b
    ZeRO-2: params Psi + grads Psi/N + m, v 2 Psi/N + master Psi/N = (1 + 4/N) Psi b
plus, under ZeRO-2, at most `max_in_flight` + 1 buckets alive during the
backward pass (peak_bucket_bytes).
"""
import math
import time
from dataclasses import dataclass, field

import numpy as np

from baobab import InvalidArgument

DEFAULT_BUCKET_BYTES = 25 * 1000 * 1000


@dataclass
class Slot:
    bucket: int
    offset: int  # in elements, inside the bucket
    size: int
    shape: tuple


@dataclass
class Layout:
    """Where each parameter lives in the bucketed flat buffer."""
    names: list  # in ready order (the backward pass's)
    slots: dict
    bucket_sizes: list  # padded, a multiple of `parts`
    bucket_members: list = field(default_factory=list)
    parts: int = 1

    @property
    def total(self):
        return sum(self.bucket_sizes)

    def bucket_offset(self, b):
        return sum(self.bucket_sizes[:b])

    def shard_ranges(self, rank):
        """The [lo, hi) ranges of the flat buffer that `rank` owns (one per bucket)."""
        out, at = [], 0
        for n in self.bucket_sizes:
            part = n // self.parts
            out.append((at + rank * part, at + (rank + 1) * part))
            at += n
        return out

    def shard_size(self):
        return sum(n // self.parts for n in self.bucket_sizes)


def make_layout(shapes, itemsize, parts=1, bucket_bytes=DEFAULT_BUCKET_BYTES):
    """shapes: [(name, shape)] in the order gradients become ready."""
    if bucket_bytes <= 0:
        raise InvalidArgument(f"bucket size must be positive, got {bucket_bytes} bytes")
    if parts < 1:
        raise InvalidArgument(f"parts must be at least 1, got {parts}")
    limit = max(1, bucket_bytes // itemsize)
    names, slots, sizes, members = [], {}, [], []
    cur, cur_members = 0, []

    def close():
        nonlocal cur, cur_members
        if cur_members:
            sizes.append(-(-cur // parts) * parts)
            members.append(cur_members)
        cur, cur_members = 0, []

    for name, shape in shapes:
        if name in slots:
            raise InvalidArgument(f"parameter {name!r} named twice")
        size = int(np.prod(shape, dtype=np.int64))
        if cur_members and cur + size > limit:
            close()
        slots[name] = Slot(len(sizes), cur, size, tuple(shape))
        cur += size
        cur_members.append(name)
        names.append(name)
    close()
    return Layout(names, slots, sizes, members, parts)


class _LazyBuckets(dict):
    """ZeRO-2's gradients: each bucket's buffer exists from the first gradient
    written into it until its reduce-scatter has completed."""

    def __init__(self, red):
        super().__init__()
        self.red = red

    def __missing__(self, name):
        s = self.red.layout.slots.get(name)
        if s is None:
            raise KeyError(name)
        buf = self.red._live.get(s.bucket)
        if buf is None:
            buf = self.red._live[s.bucket] = self.red.xp.zeros(self.red.layout.bucket_sizes[s.bucket],
                                                                self.red.dtype)
        return buf[s.offset:s.offset + s.size].reshape(s.shape)  # not cached: the bucket is dropped later


class GradReducer:
    """Bucketed, overlapped gradient reduction over a data-parallel communicator.

    comm: a baobab Communicator of the data-parallel group (None or size 1: no
    communication). zero: 0 or 1 keep a full gradient buffer and all-reduce it
    (accumulating over micro-batches locally); 2 reduce-scatters each bucket on
    every micro-batch into this rank's shard, and a bucket's full-size buffer
    lives only until its reduce-scatter completes (at most `max_in_flight`
    buckets wait at once).

    `grads` maps each parameter name to the array its gradient goes into (the
    model's backward writes there); `ready(name)` says a gradient is final."""

    def __init__(self, comm, layout, dtype, zero=0, xp=np, max_in_flight=2, average=True, comm_dtype=None):
        if zero not in (0, 1, 2):
            raise InvalidArgument(f"ZeRO stage must be 0, 1 or 2, got {zero!r}")
        if comm_dtype not in (None, "bfloat16"):
            raise InvalidArgument(f"gradients travel in their own dtype or bfloat16, got {comm_dtype!r}")
        # bfloat16 on the wire: each bucket is rounded once (to nearest even) when it
        # starts and the reduced values are widened back; accumulation over
        # micro-batches and the optimizer stay in the gradients' own dtype.
        self.comm_dtype = comm_dtype
        self.comm, self.layout, self.zero, self.xp = comm, layout, zero, xp
        self.size = 1 if comm is None else comm.size
        self.rank = 0 if comm is None else comm.rank
        if layout.parts != self.size:
            raise InvalidArgument(f"layout made for {layout.parts} parts, group has {self.size} ranks")
        self.dtype = np.dtype(dtype)
        self.max_in_flight = max(1, int(max_in_flight))
        self.average = bool(average)  # False: the sum over the group (the loss was scaled for it)
        self._live = {}
        if zero == 2:
            self.flat = None
            self.shard = xp.zeros(layout.shard_size(), self.dtype)
            self.grads = _LazyBuckets(self)
        else:
            self.flat = xp.zeros(layout.total, self.dtype)  # full-size buckets
            self.shard = None
            self.grads = {n: self.view(n) for n in layout.names}
        self._pending = [len(m) for m in layout.bucket_members]
        self._work = []
        self._sync = True
        self._fresh = True
        self.exposed = 0.0  # seconds waited for reductions (this step)
        self.bytes_sent = 0  # bytes handed to collectives (this step)
        self.peak_bucket_bytes = 0  # ZeRO-2: the most bucket memory alive at once

    def bucket(self, b):
        if self.zero == 2:
            return self._live[b]
        off = self.layout.bucket_offset(b)
        return self.flat[off:off + self.layout.bucket_sizes[b]]

    def view(self, name):
        """The gradient of `name` inside its bucket (shaped like the parameter)."""
        if self.zero == 2:
            return self.grads[name]
        s = self.layout.slots[name]
        off = self.layout.bucket_offset(s.bucket) + s.offset
        return self.flat[off:off + s.size].reshape(s.shape)

    def persistent_bytes(self):
        """Bytes of gradient storage that live across steps."""
        return (self.flat if self.flat is not None else self.shard).nbytes

    def begin(self, sync, overwrite=False):
        """Starts a micro-batch's backward pass; sync=True on the one that communicates
        (ZeRO-2 communicates on every micro-batch). overwrite=True: the backward pass
        writes every gradient (does not add), so the buffer need not be zeroed."""
        if self._work:
            raise InvalidArgument("begin() while reductions are in flight: call finish() first")
        self._sync = bool(sync) or self.zero == 2
        self._pending = [len(m) for m in self.layout.bucket_members]
        if self._fresh:
            if self.flat is not None:
                if not overwrite:
                    self.flat[...] = 0
            else:
                self.shard[...] = 0
            self.exposed, self.bytes_sent = 0.0, 0
            self._fresh = False

    def ready(self, name):
        """The gradient of `name` is final for this micro-batch; starts its bucket's
        reduction once the whole bucket is."""
        s = self.layout.slots.get(name)
        if s is None:
            raise InvalidArgument(f"unknown parameter {name!r}")
        self._pending[s.bucket] -= 1
        if self._pending[s.bucket] < 0:
            raise InvalidArgument(f"gradient of {name!r} declared ready twice in one micro-batch")
        if self._pending[s.bucket] == 0 and self._sync:
            self._start(s.bucket)
        self.poll()

    def add(self, name, grad):
        """Adds a parameter's gradient into its slot, then ready(name)."""
        if name not in self.layout.slots:
            raise InvalidArgument(f"unknown parameter {name!r}")
        v = self.view(name)
        if grad.shape != v.shape:
            raise InvalidArgument(f"gradient of {name!r} has shape {grad.shape}, expected {v.shape}")
        v += grad
        self.ready(name)

    def _start(self, b):
        if self.zero == 2 and b not in self._live:  # a bucket no gradient was written into
            self._live[b] = self.xp.zeros(self.layout.bucket_sizes[b], self.dtype)
        buf = self.bucket(b)
        if self.zero == 2:
            self.peak_bucket_bytes = max(self.peak_bucket_bytes, sum(x.nbytes for x in self._live.values()))
        if self.size > 1:
            self.bytes_sent += buf.nbytes
        if self.size == 1:
            if self.zero == 2:
                self._shard_of(b)[...] += buf
                del self._live[b]
            return
        if self.comm_dtype is not None:
            import ops
            wire = ops.to_bfloat16(buf)
            self.bytes_sent += wire.nbytes - buf.nbytes
        else:
            wire = buf
        if self.zero < 2:
            self._work.append((b, self.comm.iallreduce(wire, out=wire), wire))
            return
        out = self.xp.empty(buf.size // self.size, wire.dtype)
        self._work.append((b, self.comm.ireduce_scatter(wire, out=out), out))
        while len(self._work) > self.max_in_flight:
            self._complete(self._work.pop(0))

    def _complete(self, item):
        b, work, out = item
        t0 = time.perf_counter()
        work.wait()
        self.exposed += time.perf_counter() - t0
        if self.comm_dtype is not None:
            import ops
            out = ops.from_bfloat16(out, self.dtype)
        if self.zero == 2:
            self._shard_of(b)[...] += out
            del self._live[b]
        elif self.comm_dtype is not None:
            self.bucket(b)[...] = out

    def _shard_of(self, b):
        at = sum(n // self.size for n in self.layout.bucket_sizes[:b])
        return self.shard[at:at + self.layout.bucket_sizes[b] // self.size]

    def poll(self):
        """Lets the collectives in flight progress (called from ready())."""
        for w in self._work:
            w[1].test()

    def finish(self, last=True):
        """Completes a micro-batch. On the last one, returns the mean gradient over the
        group (the sum if average=False): the full flat buffer (ZeRO 0/1) or this
        rank's shard (ZeRO-2)."""
        missing = [b for b, n in enumerate(self._pending) if n]
        if missing:
            names = [m for b in missing for m in self.layout.bucket_members[b]]
            raise InvalidArgument(f"gradients never declared ready: {names[:5]}")
        for item in self._work:
            self._complete(item)
        self._work = []
        if not last:
            return None
        self._fresh = True
        out = self.flat if self.zero < 2 else self.shard
        if self.size > 1 and self.average:
            out /= self.size
        return out


class ShardedParams:
    """The parameters in one flat buffer with the bucket layout, for ZeRO.

    `params` (name -> array) are copied in and then replaced by views into the
    flat buffer, so the model keeps using them and sees every all-gather. Rank
    r's shard (the r-th slice of each bucket) is also kept as a contiguous
    array, `shard`, which the optimizer updates; `gather()` writes it back and
    all-gathers every bucket, so all ranks hold the updated parameters."""

    def __init__(self, comm, layout, params, xp=np):
        self.comm, self.layout, self.xp = comm, layout, xp
        self.size = 1 if comm is None else comm.size
        self.rank = 0 if comm is None else comm.rank
        if layout.parts != self.size:
            raise InvalidArgument(f"layout made for {layout.parts} parts, group has {self.size} ranks")
        missing = [n for n in layout.names if n not in params]
        if missing:
            raise InvalidArgument(f"parameters missing from the layout's set: {missing[:5]}")
        dtype = params[layout.names[0]].dtype
        self.flat = xp.zeros(layout.total, dtype)
        for name in layout.names:
            s = layout.slots[name]
            off = layout.bucket_offset(s.bucket) + s.offset
            view = self.flat[off:off + s.size].reshape(s.shape)
            if params[name].shape != view.shape:
                raise InvalidArgument(f"parameter {name!r} has shape {params[name].shape}, layout says {view.shape}")
            view[...] = params[name]
            params[name] = view
        self.ranges = layout.shard_ranges(self.rank)
        self.shard = xp.concatenate([self.flat[lo:hi] for lo, hi in self.ranges]) if self.ranges else \
            xp.zeros(0, dtype)

    def shard_of(self, flat_like):
        """This rank's shard of any array laid out like the flat buffer (e.g. a mask)."""
        return self.xp.concatenate([flat_like[lo:hi] for lo, hi in self.ranges])

    def gather(self):
        """Writes the updated shard back and all-gathers every bucket."""
        at, works = 0, []
        for b, (lo, hi) in enumerate(self.ranges):
            n = hi - lo
            self.flat[lo:hi] = self.shard[at:at + n]
            at += n
            if self.size > 1:
                bucket = self.flat[self.layout.bucket_offset(b):self.layout.bucket_offset(b) + n * self.size]
                works.append(self.comm.iallgather(self.shard[at - n:at], out=bucket.reshape(self.size, n)))
        for w in works:
            w.wait()

    def persistent_bytes(self):
        """The parameters (full) and this rank's master shard."""
        return self.flat.nbytes + self.shard.nbytes


def flat_per_element(layout, values, dtype=np.float64):
    """A flat array over the layout holding values[name] on every element of parameter
    `name` (0 in the padding)."""
    out = np.zeros(layout.total, dtype)
    for name in layout.names:
        s = layout.slots[name]
        off = layout.bucket_offset(s.bucket) + s.offset
        out[off:off + s.size] = values[name]
    return out


class ZeroAdamW:
    """AdamW on this rank's shard of the flat parameters (ZeRO-1 and ZeRO-2): the
    moments exist for the shard only; after the update the parameters are
    all-gathered (ShardedParams.gather). The arithmetic is optim.adamw_'s, so a
    ZeRO run follows the unsharded one to rounding."""

    def __init__(self, sharded, specs, *, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, decay_embeddings=False):
        import optim
        self.optim, self.sp = optim, sharded
        self.beta1, self.beta2 = (float(b) for b in betas)
        self.eps = float(eps)
        lay = sharded.layout
        wd = {n: (float(weight_decay) if optim.decays(specs[n], decay_embeddings) else 0.0) for n in lay.names}
        dt = sharded.shard.dtype
        self.wd = sharded.shard_of(sharded.xp.asarray(flat_per_element(lay, wd, dt)))
        split = {n: 1.0 if specs[n].axis is not None else 0.0 for n in lay.names}
        self.split = sharded.shard_of(sharded.xp.asarray(flat_per_element(lay, split, np.float64))).astype(bool)
        self.m = sharded.xp.zeros_like(sharded.shard)
        self.v = sharded.xp.zeros_like(sharded.shard)
        self.step = 0

    def persistent_bytes(self):
        return self.m.nbytes + self.v.nbytes

    def grad_norm(self, grad_shard, data_comm, tp_comm):
        """The global gradient norm from the shards: squares of tensor-parallel blocks
        summed over the TP group, replicated parameters counted once."""
        g = grad_shard.astype(np.float64)
        sq = np.array([float(g[self.split] @ g[self.split]), float(g[~self.split] @ g[~self.split])])
        if data_comm is not None and data_comm.size > 1:
            data_comm.allreduce(sq, out=sq)
        if tp_comm is not None and tp_comm.size > 1:
            part = np.array([sq[0]])
            tp_comm.allreduce(part, out=part)
            sq[0] = part[0]
        return math.sqrt(sq[0] + sq[1])

    def update(self, grad_shard, lr, grad_scale=1.0):
        self.step += 1
        self.optim.adamw_(self.sp.shard, grad_shard, self.m, self.v, step=self.step, lr=lr, beta1=self.beta1,
                          beta2=self.beta2, eps=self.eps, wd=self.wd, grad_scale=grad_scale)
        self.sp.gather()

    def full_moments(self):
        """{"m": {name: array}, "v": {...}} shaped like the local parameters (all-gathered
        over the group; collective), for a checkpoint."""
        out = {}
        for key, shard in (("m", self.m), ("v", self.v)):
            flat = gather_flat(self.sp.comm, self.sp.layout, shard, self.sp.xp)
            out[key] = {n: unflatten(self.sp.layout, flat, n) for n in self.sp.layout.names}
        return out

    def load_moments(self, moments, step):
        """Sets this rank's shard of the moments from full local arrays (a checkpoint's)."""
        for key, shard in (("m", self.m), ("v", self.v)):
            flat = self.sp.xp.zeros(self.sp.layout.total, shard.dtype)
            for n in self.sp.layout.names:
                unflatten(self.sp.layout, flat, n)[...] = moments[key][n]
            shard[...] = self.sp.shard_of(flat)
        self.step = int(step)


def unflatten(layout, flat, name):
    s = layout.slots[name]
    off = layout.bucket_offset(s.bucket) + s.offset
    return flat[off:off + s.size].reshape(s.shape)


def gather_flat(comm, layout, shard, xp=np):
    """The full flat buffer from every rank's shard (collective)."""
    size = 1 if comm is None else comm.size
    flat = xp.zeros(layout.total, shard.dtype)
    at = 0
    for b, n in enumerate(layout.bucket_sizes):
        part = n // size
        off = layout.bucket_offset(b)
        if size == 1:
            flat[off:off + n] = shard[at:at + part]
        else:
            comm.allgather(xp.ascontiguousarray(shard[at:at + part]), out=flat[off:off + n].reshape(size, part))
        at += part
    return flat

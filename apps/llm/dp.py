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
"""
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


class GradReducer:
    """Bucketed, overlapped gradient reduction over a data-parallel communicator.

    comm: a baobab Communicator of the data-parallel group (None or size 1: no
    communication). mode: "allreduce" (DP, ZeRO-1) or "reduce_scatter" (ZeRO-2).
    """

    def __init__(self, comm, layout, dtype, mode="allreduce", xp=np):
        if mode not in ("allreduce", "reduce_scatter"):
            raise InvalidArgument(f"unknown gradient reduction mode {mode!r}")
        self.comm, self.layout, self.mode, self.xp = comm, layout, mode, xp
        self.size = 1 if comm is None else comm.size
        self.rank = 0 if comm is None else comm.rank
        if layout.parts != self.size:
            raise InvalidArgument(f"layout made for {layout.parts} parts, group has {self.size} ranks")
        self.dtype = np.dtype(dtype)
        self.flat = xp.zeros(layout.total, self.dtype)  # full-size buckets
        self.shard = xp.zeros(layout.shard_size(), self.dtype) if mode == "reduce_scatter" else None
        self._pending = [0] * len(layout.bucket_sizes)
        self._work = []
        self._sync = True
        self._fresh = True
        self.exposed = 0.0  # seconds waited in finish() (last step)
        self.bytes_sent = 0  # elements handed to collectives in the last step, times itemsize

    def bucket(self, b):
        off = self.layout.bucket_offset(b)
        return self.flat[off:off + self.layout.bucket_sizes[b]]

    def view(self, name):
        """The gradient of `name` inside its bucket (shaped like the parameter)."""
        s = self.layout.slots[name]
        off = self.layout.bucket_offset(s.bucket) + s.offset
        return self.flat[off:off + s.size].reshape(s.shape)

    def begin(self, sync):
        """Starts a micro-batch's backward pass; sync=True on the one that communicates."""
        if self._work:
            raise InvalidArgument("begin() while reductions are in flight: call finish() first")
        self._sync = bool(sync) or self.mode == "reduce_scatter"
        self._pending = [len(m) for m in self.layout.bucket_members]
        if self._fresh:
            self.flat[...] = 0
            if self.shard is not None:
                self.shard[...] = 0
            self.exposed, self.bytes_sent = 0.0, 0
            self._fresh = False

    def add(self, name, grad):
        """Adds a parameter's gradient (accumulating over micro-batches); starts its bucket's
        reduction when the bucket is complete on a synchronising micro-batch."""
        s = self.layout.slots.get(name)
        if s is None:
            raise InvalidArgument(f"unknown parameter {name!r}")
        v = self.view(name)
        if grad.shape != v.shape:
            raise InvalidArgument(f"gradient of {name!r} has shape {grad.shape}, expected {v.shape}")
        v += grad
        self._pending[s.bucket] -= 1
        if self._pending[s.bucket] == 0 and self._sync:
            self._start(s.bucket)

    def _start(self, b):
        buf = self.bucket(b)
        self.bytes_sent += buf.nbytes
        if self.size == 1:
            if self.mode == "reduce_scatter":
                lo, hi = self.layout.shard_ranges(0)[b]
                off = self.layout.bucket_offset(b)
                self._shard_of(b)[...] += buf[lo - off:hi - off]
                buf[...] = 0
            return
        if self.mode == "allreduce":
            self._work.append((b, self.comm.iallreduce(buf, out=buf)))
        else:
            part = buf.size // self.size
            out = self.xp.empty(part, self.dtype)
            self._work.append((b, self.comm.ireduce_scatter(buf, out=out), out))

    def _shard_of(self, b):
        at = sum(n // self.size for n in self.layout.bucket_sizes[:b])
        return self.shard[at:at + self.layout.bucket_sizes[b] // self.size]

    def poll(self):
        """Lets the collectives in flight progress (call between layers)."""
        for w in self._work:
            w[1].test()

    def finish(self, last=True):
        """Completes a micro-batch. On the synchronising one, waits for the reductions and
        returns the mean gradient: the full flat buffer (allreduce) or this rank's shard
        (reduce_scatter); on the others returns None."""
        missing = [b for b, n in enumerate(self._pending) if n]
        if missing:
            names = [m for b in missing for m in self.layout.bucket_members[b]]
            raise InvalidArgument(f"gradients never added: {names[:5]}")
        t0 = time.perf_counter()
        for item in self._work:
            item[1].wait()
            if self.mode == "reduce_scatter":
                b, out = item[0], item[2]
                self._shard_of(b)[...] += out
                self.bucket(b)[...] = 0
        self._work = []
        self.exposed += time.perf_counter() - t0
        if not last:
            return None
        self._fresh = True
        if self.mode == "allreduce":
            if self.size > 1:
                self.flat /= self.size
            return self.flat
        if self.size > 1:
            self.shard /= self.size
        return self.shard


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

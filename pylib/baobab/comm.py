"""The Communicator facade: numpy arrays in, numpy arrays out, over the C++ core."""
from math import prod

import numpy as np

from . import _args, _loader  # noqa: F401  (_loader checks the MPI library before anything runs)
from . import _device_coll as _dc
from ._core import Coll, DType, coll_from_name
from ._core import Communicator as _CoreComm
from ._errors import CUDAError as baobab_cuda_error, InvalidArgument
from .dtypes import OPS as _OP_CODES, _CODES as _DTYPE_CODES, code_of, op_code
from .topology import Topology

# The lean path of allreduce: dtypes the buffer protocol exports as they are
# (bfloat16 travels as its 16-bit pattern, by the general path), ops by name.
_LEAN_DTYPES = {dt: code for dt, code in _DTYPE_CODES.items() if code is not DType.bfloat16}
_LEAN_OPS = dict(_OP_CODES)

# The core's collectives (baobab::Coll, exported by the extension), by name.
ALLREDUCE, REDUCE_SCATTER, ALLGATHER = Coll.allreduce, Coll.reduce_scatter, Coll.allgather
BCAST, REDUCE, ALLTOALL, BARRIER = Coll.bcast, Coll.reduce, Coll.alltoall, Coll.barrier


def _p2p_keyval():
    from . import p2p
    return p2p._KEYVAL


def coll_code(name):
    """The core's Coll of a collective's name (the core's names and its aliases)."""
    if isinstance(name, Coll):
        return name
    if not isinstance(name, str):
        raise InvalidArgument(f"unknown collective {name!r}: expected a name such as 'allreduce'")
    return coll_from_name(name)


def _as_input(x, what="input"):
    if not isinstance(x, np.ndarray):
        if _dc.on_device(x):
            raise InvalidArgument(f"{what} is a device array ({type(x).__name__}) where a host array is expected")
        x = np.asarray(x)
    code = code_of(x.dtype)
    if not x.flags.c_contiguous:
        raise InvalidArgument(f"{what} is not C-contiguous (strides {x.strides} for shape {x.shape}); "
                              "pass numpy.ascontiguousarray(x)")
    return x, code


def _raw(x, code):
    """A view the core reads: bfloat16 travels as its 16-bit pattern."""
    return x.view(np.uint16) if code is DType.bfloat16 else x


def _as_output(out, dtype, size, what="out", call=None):
    if call is not None:
        out = _dc.check_output(out, call, what)
    elif not isinstance(out, np.ndarray):
        if _dc.on_device(out):
            _dc.check_output(out, None, what)
        raise InvalidArgument(f"{what} must be a numpy array, got {type(out).__name__}")
    if out.dtype != dtype:
        raise InvalidArgument(f"{what} has dtype {out.dtype}, the input has {dtype}")
    if not getattr(out.flags, "writeable", True):
        raise InvalidArgument(f"{what} is read-only")
    if not out.flags.c_contiguous:
        raise InvalidArgument(f"{what} is not C-contiguous (strides {out.strides} for shape {out.shape})")
    if out.size != size:
        raise InvalidArgument(f"{what} holds {out.size} elements, {size} are needed")
    return out


def _split_rows(rows, parts):
    base, extra = divmod(rows, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


class Work:
    """A collective in flight. ``wait()`` returns its result; ``test()`` polls."""

    __slots__ = ("_w", "_result", "_keep", "__weakref__")

    def __init__(self, w, result, keep):
        self._w = w
        self._result = result
        self._keep = keep

    def test(self):
        """Makes progress; True once the operation has completed."""
        return self._w.test()

    def wait(self, timeout=None):
        """Completes the operation (raising TimeoutError after ``timeout`` seconds; by default the
        communicator's BAOBAB_TIMEOUT from the start of the operation) and returns its result."""
        t = _args.timeout(timeout, zero_ok=True)
        self._w.wait(-1.0 if t is None else t)
        self._keep = None
        return self._result

    @property
    def done(self):
        return self._w.done

    @property
    def algorithm(self):
        return self._w.algorithm

    @property
    def seq(self):
        return self._w.seq

    def __del__(self):
        # The core completes an abandoned operation before its buffers go.
        self._w = None


class Communicator:
    """Topology-aware collectives over an mpi4py communicator.

    Options (each overrides the environment variable of the same name on rank 0,
    whose configuration every rank uses): ``timeout`` (BAOBAB_TIMEOUT, seconds;
    ``math.inf`` for no deadline),
    ``check`` (BAOBAB_CHECK), ``topology`` (BAOBAB_TOPOLOGY), ``algo``
    (BAOBAB_ALGO), ``segment`` (BAOBAB_SEGMENT, bytes), ``window``
    (BAOBAB_WINDOW), ``tuning`` (BAOBAB_TUNING, a tuning file path).
    """

    def __init__(self, comm=None, *, timeout=None, check=None, topology=None, algo=None,
                 segment=None, window=None, tuning=None, _p2p=True):
        from mpi4py import MPI
        if comm is None:
            comm = MPI.COMM_WORLD
        if not isinstance(comm, MPI.Comm):
            raise InvalidArgument(f"expected an mpi4py communicator, got {type(comm).__name__}")
        if comm == MPI.COMM_NULL:
            raise InvalidArgument("cannot build a baobab communicator on MPI.COMM_NULL")
        if isinstance(comm, MPI.Intercomm):
            raise InvalidArgument("inter-communicators are not supported")
        if comm == MPI.COMM_WORLD:
            from .slurm import check_world
            check_world(comm.size)  # a wrong srun --mpi plugin gives N worlds of 1
        overrides = {k: v for k, v in dict(timeout=timeout, check=check, topology=topology, algo=algo,
                                           segment=segment, window=window, tuning=tuning).items()
                     if v is not None}
        if "timeout" in overrides:
            overrides["timeout"] = _args.timeout(overrides["timeout"])
        if isinstance(overrides.get("algo"), dict):
            overrides["algo"] = ",".join(f"{k}={v}" for k, v in overrides["algo"].items())
        self.mpi_comm = comm
        self._overrides = overrides
        self._emulate = _dc.emulation()
        _dc.transport()  # BAOBAB_DEVICE_TRANSPORT and BAOBAB_DEVICE_IPC are checked now, on every rank
        _dc.ipc()
        self._c = _CoreComm(comm.py2f(), overrides)
        self.rank = self._c.rank
        self.size = self._c.size
        self.topology = Topology(self._c.topology().as_dict())
        # The GPU this rank uses (None without one): BAOBAB_GPU, else its local rank mod the node's devices.
        from ._core import cuda_device_count
        self.gpu, self._gpu_why = _dc.gpu_for(self.topology.local_rank(self.rank), cuda_device_count())
        # The point-to-point context is made now, while every rank is here: the
        # first send/recv must need only its two ranks. (baobab.io's steps make
        # none: they send no messages of their own.)
        if _p2p:
            self._context()

    # ---- helpers -------------------------------------------------------------

    def _input(self, x, what="input", out=None):
        """(array, dtype code, device Call or None): a host array is checked by
        _as_input; a device array (or, under BAOBAB_DEVICE_EMULATION, any
        array) becomes a Call the core's device lanes run with."""
        if self._emulate is not None:
            x, code = _as_input(x, what)
            return x, code, _dc.emulated_call(self._emulate)
        if type(x) is not np.ndarray and _dc.on_device(x):
            if out is not None and not _dc.on_device(out):
                raise InvalidArgument(f"out is a host array ({type(out).__name__}) but the {what} is a device "
                                      f"array ({type(x).__name__}): pass both on the device or both on the host")
            x = _dc.as_cupy(x, what)
            code = code_of(x.dtype)
            if not x.flags.c_contiguous:
                raise InvalidArgument(f"{what} is not C-contiguous (strides {x.strides} for shape {x.shape}); "
                                      "pass cupy.ascontiguousarray(x)")
            return x, code, _dc.call_for(x)
        x, code = _as_input(x, what)
        return x, code, None

    @staticmethod
    def _xp(call):
        return np if call is None else call.xp

    def _go(self, blocking, coll, x, code, out, op, count, counts, root, algo, result, call=None):
        if call is not None:
            args = (coll, call.ptr(x), call.ptr(out), code, op, count, counts, root, algo or "", call.stream,
                    call.path, call.emulated, call.ipc)
            with call.context():
                if blocking:
                    self._c.start_device(*args, True)
                    return result
                return Work(self._c.start_device(*args, False), result, (x, out))
        args = (coll, _raw(x, code), _raw(out, code), code, op, count, counts, root, algo or "")
        if blocking:
            self._c.run(*args)
            return result
        return Work(self._c.start(*args), result, (x, out))

    # ---- collectives -----------------------------------------------------------

    def allreduce(self, x, op="sum", *, out=None, algo=None):
        """Elementwise reduction over all ranks; every rank gets the result (a new array, or ``out``)."""
        # The commonest call takes a lean path: a numpy array of a plain dtype,
        # C-contiguous, an op by name; anything else (and every error) takes
        # the general path below, with its messages.
        if algo is None and type(x) is np.ndarray and type(op) is str and self._emulate is None:
            code = _LEAN_DTYPES.get(x.dtype)
            opc = _LEAN_OPS.get(op)
            if code is not None and opc is not None and x.flags.c_contiguous:
                if out is None:
                    out = np.empty_like(x)
                elif not (type(out) is np.ndarray and out.dtype == x.dtype and out.size == x.size
                          and out.flags.c_contiguous and out.flags.writeable):
                    return self._allreduce(True, x, op, out, algo)
                self._c.allreduce_into(x, out, code, opc)
                return out
        return self._allreduce(True, x, op, out, algo)

    def iallreduce(self, x, op="sum", *, out=None, algo=None):
        return self._allreduce(False, x, op, out, algo)

    def _allreduce(self, blocking, x, op, out, algo):
        x, code, call = self._input(x, out=out)
        opc = op_code(op)
        if out is None:
            result = out = self._xp(call).empty_like(x)
        else:
            result, out = out, _as_output(out, x.dtype, x.size, call=call)
        return self._go(blocking, ALLREDUCE, x, code, out, opc, x.size, [], 0, algo, result, call)

    def reduce_scatter(self, x, op="sum", *, counts=None, out=None, algo=None):
        """Reduces ``x`` over all ranks and gives rank r the r-th block of rows (axis 0).

        ``counts`` gives the rows of each rank; by default rows are split as evenly
        as possible (the first ranks get one more, as numpy.array_split does).
        """
        return self._reduce_scatter(True, x, op, counts, out, algo)

    def ireduce_scatter(self, x, op="sum", *, counts=None, out=None, algo=None):
        return self._reduce_scatter(False, x, op, counts, out, algo)

    def _reduce_scatter(self, blocking, x, op, counts, out, algo):
        x, code, call = self._input(x, out=out)
        opc = op_code(op)
        if x.ndim == 0:
            raise InvalidArgument("reduce_scatter needs an array with at least one dimension")
        rows = _split_rows(x.shape[0], self.size) if counts is None else [int(c) for c in counts]
        if len(rows) != self.size or sum(rows) != x.shape[0] or min(rows) < 0:
            raise InvalidArgument(f"counts {rows} must give {self.size} non-negative row counts adding up to "
                                  f"{x.shape[0]}")
        row = prod(x.shape[1:])
        shape = (rows[self.rank],) + x.shape[1:]
        if out is None:
            result = out = self._xp(call).empty(shape, x.dtype)
        else:
            result, out = out, _as_output(out, x.dtype, prod(shape), call=call)
        return self._go(blocking, REDUCE_SCATTER, x, code, out, opc, 0, [r * row for r in rows], 0, algo, result,
                        call)

    def allgather(self, x, *, out=None, algo=None):
        """Gathers equal-shaped arrays from all ranks; the result has shape (size,) + x.shape."""
        if algo is None and type(x) is np.ndarray and x.flags.c_contiguous and self._emulate is None:  # lean path
            code = _LEAN_DTYPES.get(x.dtype)
            if code is not None:
                if out is None:
                    out = np.empty((self.size,) + x.shape, x.dtype)
                elif not (type(out) is np.ndarray and out.dtype == x.dtype and out.size == self.size * x.size
                          and out.flags.c_contiguous and out.flags.writeable):
                    return self._allgather(True, x, out, algo)
                self._c.allgather_into(x, out, code)
                return out
        return self._allgather(True, x, out, algo)

    def iallgather(self, x, *, out=None, algo=None):
        return self._allgather(False, x, out, algo)

    def _allgather(self, blocking, x, out, algo):
        x, code, call = self._input(x, out=out)
        shape = (self.size,) + x.shape
        if out is None:
            result = out = self._xp(call).empty(shape, x.dtype)
        else:
            result, out = out, _as_output(out, x.dtype, prod(shape), call=call)
        return self._go(blocking, ALLGATHER, x, code, out, 0, 0, [x.size] * self.size, 0, algo, result, call)

    def allgatherv(self, x, *, rows=None, algo=None):
        """Concatenates along axis 0 arrays whose first dimension differs between ranks.

        Returns (result, rows) where rows[r] is the number of rows from rank r.
        ``rows``, when every rank knows them already, saves the exchange of counts
        (this rank's entry must equal x.shape[0]; a disagreement between ranks is
        caught by the collective's signature check).
        """
        x, code, call = self._input(x)
        if x.ndim == 0:
            raise InvalidArgument("allgatherv needs an array with at least one dimension")
        if rows is None:
            rows = self.allgather(np.array([x.shape[0]], np.int64)).reshape(-1)
        else:
            rows = np.asarray(rows, np.int64).reshape(-1)
            if rows.size != self.size or (rows < 0).any():
                raise InvalidArgument(f"rows must hold {self.size} non-negative counts, got {rows.tolist()}")
            if rows[self.rank] != x.shape[0]:
                raise InvalidArgument(f"rows[{self.rank}] = {rows[self.rank]} but this rank's array has "
                                      f"{x.shape[0]} rows")
        row = prod(x.shape[1:])
        out = self._xp(call).empty((int(rows.sum()),) + x.shape[1:], x.dtype)
        self._go(True, ALLGATHER, x, code, out, 0, 0, [int(r) * row for r in rows], 0, algo, out, call)
        return out, rows

    def bcast(self, x, root=0, *, algo=None):
        """Broadcasts root's array into ``x`` on every rank (in place); returns ``x``."""
        if (algo is None and type(x) is np.ndarray and type(root) is int and 0 <= root < self.size
                and x.flags.c_contiguous and x.flags.writeable and self._emulate is None):  # lean path
            code = _LEAN_DTYPES.get(x.dtype)
            if code is not None:
                self._c.bcast_into(x, code, root)
                return x
        return self._bcast(True, x, root, algo)

    def ibcast(self, x, root=0, *, algo=None):
        return self._bcast(False, x, root, algo)

    def _bcast(self, blocking, x, root, algo):
        if not isinstance(x, np.ndarray) and not _dc.on_device(x):
            raise InvalidArgument("bcast needs a numpy array (it is filled in place on non-root ranks)")
        result = x
        x, code, call = self._input(x)
        if not getattr(x.flags, "writeable", True):
            raise InvalidArgument("bcast buffer is read-only")
        root = _args.rank(root, self.size, "root")
        return self._go(blocking, BCAST, x, code, x, 0, x.size, [], root, algo, result, call)

    def reduce(self, x, op="sum", root=0, *, out=None, algo=None):
        """Reduction to ``root``: returns the result there, None elsewhere."""
        return self._reduce(True, x, op, root, out, algo)

    def ireduce(self, x, op="sum", root=0, *, out=None, algo=None):
        return self._reduce(False, x, op, root, out, algo)

    def _reduce(self, blocking, x, op, root, out, algo):
        x, code, call = self._input(x, out=out)
        opc = op_code(op)
        root = _args.rank(root, self.size, "root")
        xp = self._xp(call)
        if self.rank == root:
            if out is None:
                result = out = xp.empty_like(x)
            else:
                result, out = out, _as_output(out, x.dtype, x.size, call=call)
        else:
            out = xp.empty(0, x.dtype) if out is None else _dc.check_output(out, call, "out")
            result = None
        return self._go(blocking, REDUCE, x, code, out, opc, x.size, [], root, algo, result, call)

    def alltoall(self, x, *, out=None, algo=None):
        """Splits ``x`` along axis 0 into ``size`` equal blocks: block i goes to rank i, and block j of the
        result came from rank j (as torch's ``all_to_all_single`` and mpi4py's ``Alltoall``). Axis 0 must
        be divisible by the size: shape ``(size, ...)`` gives one row per rank, a flat buffer equal parts."""
        return self._alltoall(True, x, out, algo)

    def ialltoall(self, x, *, out=None, algo=None):
        return self._alltoall(False, x, out, algo)

    def _alltoall(self, blocking, x, out, algo):
        x, code, call = self._input(x, out=out)
        if x.ndim == 0 or x.shape[0] % self.size:
            raise InvalidArgument(f"alltoall splits axis 0 into {self.size} equal blocks (one per rank): its "
                                  f"length must be divisible by {self.size}, got shape {x.shape}")
        block = x.size // self.size
        if out is None:
            result = out = self._xp(call).empty_like(x)
        else:
            result, out = out, _as_output(out, x.dtype, x.size, call=call)
        counts = [block] * (self.size * self.size)
        return self._go(blocking, ALLTOALL, x, code, out, 0, 0, counts, 0, algo, result, call)

    def alltoallv(self, x, send_counts, *, algo=None):
        """Rows [sum(send_counts[:i]), sum(send_counts[:i+1])) of ``x`` go to rank i.

        Returns (result, recv_counts): the rows received, ordered by source rank.
        """
        x, code, call = self._input(x)
        sc = np.asarray(send_counts, dtype=np.int64).reshape(-1)
        if sc.size != self.size or (sc < 0).any() or x.ndim == 0 or int(sc.sum()) != x.shape[0]:
            raise InvalidArgument(f"send_counts must give {self.size} non-negative row counts adding up to "
                                  f"axis 0 of x ({x.shape[0] if x.ndim else 0})")
        matrix = self.allgather(sc)  # (size, size): rows sent by s to d
        row = prod(x.shape[1:])
        recv = matrix[:, self.rank]
        out = self._xp(call).empty((int(recv.sum()),) + x.shape[1:], x.dtype)
        counts = [int(c) * row for c in matrix.reshape(-1)]
        self._go(True, ALLTOALL, x, code, out, 0, 0, counts, 0, algo, out, call)
        return out, recv

    def barrier(self, *, algo=None):
        self._c.barrier(algo or "")

    def ibarrier(self, *, algo=None):
        return Work(self._c.ibarrier(algo or ""), None, None)

    # ---- point-to-point (non-contiguous views) --------------------------------------

    def _context(self, comm=None):
        from mpi4py import MPI
        from .p2p import context_of
        comm = self.mpi_comm if comm is None else comm
        if not isinstance(comm, MPI.Comm) or comm == MPI.COMM_NULL:
            raise InvalidArgument(f"expected a valid mpi4py communicator, got {comm!r}")
        return context_of(comm, self._overrides)  # collective over comm the first time

    def send(self, view, dest, tag=0, *, timeout=None):
        """Sends a numpy array or strided view (packed, or as an MPI derived datatype).

        Waits at most ``timeout`` seconds (default BAOBAB_TIMEOUT) for the receiver."""
        t = _args.timeout(timeout, zero_ok=True)  # before anything is sent
        self._context().isend(view, dest, tag)._wait(t)

    def isend(self, view, dest, tag=0):
        return self._context().isend(view, dest, tag)

    def recv(self, out, source, tag=0, *, timeout=None):
        """Receives into the (possibly strided) view `out`; returns it.

        The message must hold exactly as many bytes as `out`. Waits at most ``timeout``
        seconds (default BAOBAB_TIMEOUT) for the sender."""
        t = _args.timeout(timeout, zero_ok=True)  # before anything is posted
        return self._context().irecv(out, source, tag)._wait(t)

    def irecv(self, out, source, tag=0):
        return self._context().irecv(out, source, tag)

    def bind_thread(self):
        """Makes the calling thread the one that starts this communicator's collectives.

        Ranks match collectives by the order in which they start them, which two
        threads calling at once cannot keep; so a communicator belongs to one
        thread (at first the one that created it), and a collective started on
        any other raises InvalidArgument before anything is sent. Hand it over
        with this call once the previous owner has stopped using it (refused
        while an operation is in flight). Work objects may be waited for from
        any thread; point-to-point messages may be sent from any thread."""
        self._c.bind_thread()

    def halo_exchange(self, field, width=1, cart=None, *, timeout=None):
        """Exchanges the halos of an N-d field over an mpi4py Cartesian communicator
        (MPI.Comm.Create_cart); periodic and non-periodic dimensions. Returns field."""
        from mpi4py import MPI
        from .p2p import halo_exchange
        if cart is None or not isinstance(cart, MPI.Cartcomm):
            raise InvalidArgument("halo_exchange needs cart=, an mpi4py Cartesian communicator (Create_cart)")
        return halo_exchange(self._context(cart), field, width, timeout)

    # ---- introspection ----------------------------------------------------------

    def _desc(self, collective, nbytes, dtype, root):
        code_of(dtype)  # a dtype the collectives support
        es = np.dtype(dtype).itemsize
        coll = coll_code(collective)
        n = _args.count(nbytes, "nbytes") // es
        root = _args.rank(root, self.size, "root")
        p = self.size
        counts = []
        count = n
        if coll in (REDUCE_SCATTER, ALLGATHER):
            per = max(n // p, 0)
            counts = [per] * p
            count = 0
        elif coll == ALLTOALL:
            per = max(n // p, 0)
            counts = [per] * (p * p)
            count = 0
        return coll, count, es, int(root), counts

    def plan(self, collective, nbytes, *, dtype="float32", root=0, algo=None, full=False, device=False):
        """The algorithm a call of this size would use, and why (a dict).

        ``full=True``: every candidate's prediction from a replay to the end
        (what ``explain`` prints; slower, not cached). Otherwise candidates
        that can no longer win are cut off (``beaten``), as the runtime does,
        and a forced ``algo`` lists no candidates. ``device=True``: the plan
        of a call on device buffers with this process's transport, priced by
        the device model (copies through pinned memory, device copies and
        reductions, CUDA IPC)."""
        coll, count, es, root, counts = self._desc(collective, nbytes, dtype, root)
        if full and algo:
            raise InvalidArgument("plan(full=True) costs every candidate: give no algo")
        path, ipc = self._device_transport() if device else ("", False)
        return self._c.plan(coll, count, es, root, counts, algo or "", full, path, ipc)

    def _device_transport(self):
        """(path, ipc) of this process's device collectives."""
        return (self._emulate or _dc.transport()[0]), _dc.ipc()

    def explain(self, collective, nbytes, *, dtype="float32", root=0, algo=None, device=False, file=None):
        """Prints (and returns) every candidate algorithm with its predicted time, and the choice.

        ``nbytes`` is the buffer size: the vector for allreduce, bcast and reduce,
        the whole output for allgather, the whole input for reduce_scatter, what
        each rank sends for alltoall. ``device=True``: for device buffers, also
        how their bytes travel.
        """
        coll, count, es, root, counts = self._desc(collective, nbytes, dtype, root)
        path, ipc = self._device_transport() if device else ("", False)
        text = self._c.explain(coll, count, es, root, counts, algo or "", path, ipc)
        if device:
            text += self._device_text()
        if file is not False:
            print(text, end="", file=file)
        return text

    def use_gpu(self):
        """Makes this rank's GPU (``self.gpu``: BAOBAB_GPU, else the local rank
        modulo the node's devices) cupy's current device; returns its ordinal."""
        if self.gpu is None:
            from ._core import cuda_status
            raise baobab_cuda_error(f"no GPU for rank {self.rank}: {cuda_status()}")
        from ._gpu import _cupy
        _cupy().cuda.Device(self.gpu).use()
        return self.gpu

    def _device_text(self):
        name, why = (self._emulate, "BAOBAB_DEVICE_EMULATION") if self._emulate else _dc.transport()
        how = {"staged": "through pinned host memory (device-to-host copy, MPI, host-to-device copy, "
                         "per round and segment; segments in flight overlap)",
               "cuda-aware": "as device pointers handed to MPI (payloads sent inline with a signature are "
                             "staged)",
               "auto": "as device pointers handed to MPI or through pinned host memory, whichever the cost "
                       "model prices lower for the message's size and link (the 'messages:' line)"}[name]
        if _dc.ipc():
            near = sum(1 for q in range(self.size) if q != self.rank
                       and self.topology.node_of(q) == self.topology.node_of(self.rank))
            how = (f"by CUDA IPC to the {near} other rank{'s' * (near != 1)} of this node where the cost model "
                   f"prices it no higher than staging (exported device memory, device-to-device copies; "
                   f"BAOBAB_DEVICE_IPC=0 turns it off), otherwise {how}")
        gpu = "none" if self.gpu is None else f"GPU {self.gpu} ({self._gpu_why})"
        return (f"device buffers: transport {name} ({why}): messages travel {how}; reductions by the device "
                f"kernels; this rank's device: {gpu}\n")

    def stats(self):
        """Counters of this rank on this communicator: collectives started, and
        messages and bytes sent by collectives and by point-to-point messages."""
        s = dict(self._c.stats())
        ctx = self.mpi_comm.Get_attr(_p2p_keyval()) if _p2p_keyval() is not None else None
        s["p2p_messages_sent"] = ctx._p.messages_sent if ctx else 0
        s["p2p_bytes_sent"] = ctx._p.bytes_sent if ctx else 0
        return s

    def config(self):
        """The configuration every rank uses (rank 0's)."""
        return self._c.config()

    def abort(self, reason):
        """Gives up on this communicator, on every rank: it fails here, and a
        notice goes to every other rank over the control channel, so that their
        operations in flight and all later ones on it raise baobab.Error("rank R
        gave up (reason)") at once instead of waiting for this rank. For a rank
        that stops on its own (an exception of its own) while the others may be
        waiting for it in a collective. Safe at any time; once the communicator
        has failed (or has been freed) it does nothing."""
        if not isinstance(reason, str):
            raise InvalidArgument(f"abort(reason): reason must be a str, got {type(reason).__name__}")
        self._c.abort(reason)

    def free(self):
        """Releases the MPI resources now (after completing operations in flight)."""
        self._c.free()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.free()
        return False

    def __repr__(self):
        return (f"<baobab.Communicator rank {self.rank} of {self.size}, "
                f"{self.topology.num_nodes} nodes>")


_world = None


def init(**options):
    """The baobab communicator over MPI.COMM_WORLD (created once)."""
    global _world
    if _world is None:
        _world = Communicator(None, **options)
    return _world

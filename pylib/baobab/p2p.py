"""Non-contiguous point-to-point messages and N-d halo exchange.

Messages travel on a duplicate of the communicator, so baobab's tags never meet
the application's own. A strided view is sent as its canonical layout: baobab
packs it, or hands MPI a derived datatype, whichever the cost model says is
faster for its block size (BAOBAB_PACK=always|never|auto overrides).
"""
import numpy as np

from . import _args, _core, _gpu
from ._buffers import interface, is_device, refuse_objects, refuse_overlap
from ._errors import InvalidArgument
from ._halo import host_plan


class Request:
    """A message in flight: ``wait(timeout=None)`` returns the received array (or None)."""

    __slots__ = ("_t", "_result", "_keep")

    def __init__(self, t, result, keep):
        self._t, self._result, self._keep = t, result, keep

    def test(self):
        return self._t.test()

    def wait(self, timeout=None):
        """Completes the message; after ``timeout`` seconds (default: the communicator's
        BAOBAB_TIMEOUT; math.inf: none) raises TimeoutError naming the peer."""
        return self._wait(_args.timeout(timeout, zero_ok=True))

    def _wait(self, t):
        """wait() with a checked timeout (None: the default)."""
        self._t.wait(-1.0 if t is None else t)
        self._keep = None
        return self._result

    @property
    def packed(self):
        """Whether baobab packed this message (else MPI walked a derived datatype, or it was contiguous)."""
        return self._t.packed

    @property
    def nbytes(self):
        return self._t.bytes


def _layout_of(view, what, writable=False):
    if not isinstance(view, np.ndarray):
        raise InvalidArgument(f"{what} must be a numpy array, got {type(view).__name__}")
    if writable and not view.flags.writeable:
        raise InvalidArgument(f"{what} is read-only")
    ptr, shape, strides, itemsize, _ = interface(view)
    return ptr, _core.layout_from_strides(itemsize, list(shape), list(strides))


class Context:
    """Point-to-point messages on a duplicate of one mpi4py communicator."""

    def __init__(self, mpi_comm, overrides):
        self.mpi_comm = mpi_comm
        self._p = _core.PointToPoint(mpi_comm.py2f(), overrides)
        self.timeout = self._p.timeout
        self.size = mpi_comm.Get_size()
        from mpi4py import MPI
        ub = mpi_comm.Get_attr(MPI.TAG_UB)
        self.tag_ub = int(ub) if ub is not None else 32767
        self.halo_plans = {}

    def isend(self, view, dest, tag=0):
        dest = _args.rank(dest, self.size, "dest")
        tag = _args.tag(tag, self.tag_ub)
        if is_device(view):
            return _gpu.isend(self, view, dest, tag)
        ptr, layout = _layout_of(view, "the send buffer")
        return Request(self._p.isend(ptr, layout, int(dest), int(tag)), None, view)

    def irecv(self, out, source, tag=0):
        source = _args.rank(source, self.size, "source")
        tag = _args.tag(tag, self.tag_ub)
        if is_device(out):
            return _gpu.irecv(self, out, source, tag)
        ptr, layout = _layout_of(out, "out", writable=True)
        refuse_overlap(layout, "cannot receive into it")
        return Request(self._p.irecv(ptr, layout, int(source), int(tag)), out, out)

    def wait_all(self, requests, timeout=None):
        t = _args.timeout(timeout, zero_ok=True)
        _core.wait_all([r._t for r in requests], self.timeout if t is None else t)
        for r in requests:
            r._wait(0.0)  # completed: runs any device staging / unpacking

    def will_pack(self, view):
        return self._p.will_pack(_layout_of(view, "view")[1])

    def free(self):
        self._p.free()


_KEYVAL = None
_HOLDERS = []  # communicators holding a context, released at exit


def _release_all():
    """At interpreter exit, before mpi4py finalizes MPI (atexit runs in reverse
    order of registration): contexts on communicators nobody freed (COMM_WORLD)
    go now, while MPI and the extension module are still alive."""
    from mpi4py import MPI
    for comm in _HOLDERS:
        try:
            if comm != MPI.COMM_NULL and comm.Get_attr(_KEYVAL) is not None:
                comm.Delete_attr(_KEYVAL)
        except Exception:  # noqa: BLE001 - a communicator the application already freed
            pass
    _HOLDERS.clear()


def context_of(mpi_comm, overrides):
    """The point-to-point context of an mpi4py communicator, cached on it as an
    MPI attribute: freeing the communicator frees baobab's duplicate too."""
    from mpi4py import MPI
    global _KEYVAL
    if _KEYVAL is None:
        import atexit
        _KEYVAL = MPI.Comm.Create_keyval(delete_fn=lambda comm, keyval, ctx: ctx.free())
        atexit.register(_release_all)
    ctx = mpi_comm.Get_attr(_KEYVAL)
    if ctx is None:
        ctx = Context(mpi_comm, overrides)
        mpi_comm.Set_attr(_KEYVAL, ctx)
        _HOLDERS.append(mpi_comm)
    return ctx


def halo_exchange(ctx, field, width, timeout=None):
    """Fills the halo (the outer `width` layers in every dimension) of `field`
    from the neighbours on ctx's Cartesian communicator; returns field.

    Dimensions are exchanged one after another, each slab spanning the whole
    field in the other dimensions, so edges and corners arrive too (the values a
    27-point stencil needs). Halos on a non-periodic boundary are left as they are.
    """
    cart = ctx.mpi_comm
    dims, periods, _ = cart.Get_topo()
    device = is_device(field)
    if not device and not isinstance(field, np.ndarray):
        raise InvalidArgument("halo_exchange needs a numpy (or cupy) array field")
    if not device:
        refuse_objects(field.dtype, "the field")  # before the plan cache, keyed on geometry only
    if field.ndim != len(dims):
        raise InvalidArgument(f"the field has {field.ndim} dimensions, the Cartesian communicator {len(dims)}")
    if not device and not field.flags.writeable:
        raise InvalidArgument("the field is read-only")
    w = _args.integer(width, "width")
    if w < 1:
        raise InvalidArgument(f"width must be at least 1, got {w}")
    for d, n in enumerate(field.shape):
        if n < 3 * w:
            raise InvalidArgument(f"dimension {d} of the field has {n} cells: with halos of {w} the interior must "
                                  f"hold at least {w} (n >= 3*width)")
    t = _args.timeout(timeout)
    if device:
        return _gpu.halo_exchange(ctx, field, w, t)
    key = (field.shape, field.strides, field.dtype.itemsize, w)
    plan = ctx.halo_plans.get(key)
    if plan is None:
        plan = ctx.halo_plans[key] = host_plan(field, w, cart)
    base = field.__array_interface__["data"][0]
    p = ctx._p
    t = ctx.timeout if t is None else t
    for ops in plan:
        reqs = [p.irecv(base + off, layout, peer, tag) if is_recv else p.isend(base + off, layout, peer, tag)
                for off, layout, peer, tag, is_recv in ops]
        _core.wait_all(reqs, t)
    return field

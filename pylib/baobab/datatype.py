"""Non-contiguous data: canonical datatypes and packing of strided views.

    baobab.Datatype.from_mpi(mpi4py_type)   # decoded through MPI_Type_get_envelope/contents
    baobab.Datatype.from_array(view)        # a strided numpy view (negative and zero strides too)
    baobab.pack(view) -> contiguous array   # same bytes as numpy.ascontiguousarray(view)
    baobab.pack(view, out=buf)              # into any writable contiguous buffer of view.nbytes bytes
    baobab.unpack(buf, out=view)            # the inverse, into a writable view; buf: any contiguous buffer

Packed data is bytes, as with MPI_Pack/MPI_Unpack: bytes, bytearray,
memoryview or a numpy array of any dtype, as long as it is C-contiguous and
holds exactly the packed size. Arrays whose elements hold Python object
pointers (object dtype, structured dtypes with an object field) are refused:
their bytes are references that copying would not count.
"""
import numpy as np

from . import _args, _core, _gpu
from ._buffers import check_unpack_size, host_bytes, interface, is_device, refuse_overlap
from ._errors import InvalidArgument


_TOO_HARD = getattr(getattr(np, "exceptions", np), "TooHardError")


def _check_no_overlap(a, b, what):
    if np.may_share_memory(a, b):
        try:
            shared = np.shares_memory(a, b, max_work=10000)
        except _TOO_HARD:  # undecided within the work limit: treat as overlapping
            shared = True
        if shared:
            raise InvalidArgument(f"{what}: the packed buffer and the view overlap in memory")


class Datatype:
    """A canonical layout: which bytes, relative to a buffer's pointer, hold the
    data and in which order they pack. Two datatypes built differently but
    placing the same bytes in the same order compare equal."""

    def __init__(self, layout, mpi_type=None, fallback="", info=None):
        self._layout = layout
        self._mpi_type = mpi_type
        self.fallback = fallback or None
        self._info = info or {}

    @classmethod
    def from_mpi(cls, mpi_type):
        """Decodes a committed mpi4py datatype (cached on the type). Constructors
        baobab does not decode keep MPI's own packing; ``fallback`` says why."""
        from mpi4py import MPI
        if not isinstance(mpi_type, MPI.Datatype):
            raise InvalidArgument(f"expected an mpi4py Datatype, got {type(mpi_type).__name__}")
        if mpi_type == MPI.DATATYPE_NULL:
            raise InvalidArgument("MPI.DATATYPE_NULL has no layout")
        info = _core.decode_mpi_type(mpi_type.py2f())
        return cls(info["layout"], mpi_type, info["fallback"], info)

    @classmethod
    def from_array(cls, view):
        """The layout of a strided view, relative to its data pointer."""
        _, shape, strides, itemsize, _ = interface(view)
        return cls(_core.layout_from_strides(itemsize, list(shape), list(strides)))

    # ---- properties ---------------------------------------------------------------

    @property
    def layout(self):
        return self._layout

    @property
    def kind(self):
        """'strided' (a StridedBlock), 'runs' (irregular) or 'mpi' (MPI's own packing)."""
        return "mpi" if self._layout is None else self._layout.kind

    @property
    def size(self):
        return self._info["size"] if self._layout is None else self._layout.size

    @property
    def extent(self):
        return self._info["extent"] if self._layout is None else self._layout.extent

    @property
    def lb(self):
        return self._info["lb"] if self._layout is None else self._layout.lb

    def canonical(self):
        """The canonical form as a dict (None for MPI's own packing)."""
        l = self._layout
        if l is None:
            return None
        if l.kind == "strided":
            return dict(kind="strided", start=l.start, counts=tuple(l.counts), strides=tuple(l.strides),
                        size=l.size, lb=l.lb, extent=l.extent)
        return dict(kind="runs", runs=tuple(map(tuple, l.runs)), size=l.size, lb=l.lb, extent=l.extent)

    def describe(self):
        if self._layout is None:
            return f"MPI packing ({self.fallback}); size={self.size} extent={self.extent}"
        return self._layout.describe()

    def __eq__(self, other):
        if not isinstance(other, Datatype):
            return NotImplemented
        if self._layout is None or other._layout is None:
            return self is other
        return self._layout == other._layout

    def __hash__(self):
        c = self.canonical()
        return hash(tuple(sorted((k, v) for k, v in c.items()))) if c else id(self)

    def __repr__(self):
        return f"<baobab.Datatype {self.describe()}>"

    # ---- packing ---------------------------------------------------------------------

    def span(self, count=1):
        """(first, last + 1) byte offsets touched by `count` elements."""
        if self._layout is None:
            lb, ext = self._info["lb"], self._info["extent"]
            return (lb, lb + ext * count) if count else (0, 0)
        l = self._layout
        if count == 0 or l.size == 0:
            return (0, 0)
        lo, hi = l.true_lb, l.true_ub
        shift = (count - 1) * l.extent
        return (min(lo, lo + shift), max(hi, hi + shift))

    def _check_buffer(self, buf, count, what, writable=False):
        """buf's bytes as a numpy array (see host_bytes), checked to hold what `count` elements touch."""
        arr = host_bytes(buf, what, writable)
        lo, hi = self.span(count)
        if lo < 0 or hi > arr.nbytes:
            raise InvalidArgument(f"{count} element(s) of this datatype touch bytes [{lo}, {hi}) of {what}, "
                                  f"which holds {arr.nbytes} bytes")
        return arr

    def pack(self, buf, count=1, out=None):
        """Packs `count` elements from `buf` (a contiguous buffer; the datatype's bytes
        are relative to its start), byte-identical to MPI_Pack: into a new uint8
        array, or into `out` (any writable contiguous buffer of exactly the packed
        size), which is returned."""
        count = _args.count(count, "count")
        src = self._check_buffer(buf, count, "buf")
        need = self.size * count
        if out is None:
            dest = result = np.empty(need, np.uint8)
        else:
            dest, result = host_bytes(out, "out", writable=True), out
            if dest.nbytes != need:
                raise InvalidArgument(f"out holds {dest.nbytes} bytes, {count} packed element(s) of this datatype "
                                      f"hold {need}")
            _check_no_overlap(dest, src, "out")
        if need:
            if self._layout is None:
                _core.mpi_pack_ptr(self._mpi_type.py2f(), src.ctypes.data, count, dest.ctypes.data, dest.nbytes)
            else:
                _core.pack_ptr(self._layout, src.ctypes.data, dest.ctypes.data, count)
        return result

    def unpack(self, packed, out, count=1):
        """Scatters `count` packed elements (`packed`: any contiguous buffer of
        exactly that many bytes) into the contiguous buffer `out`; returns `out`."""
        count = _args.count(count, "count")
        src = host_bytes(packed, "the packed buffer")
        if src.nbytes != self.size * count:
            raise InvalidArgument(f"the packed buffer holds {src.nbytes} bytes, {count} element(s) of this "
                                  f"datatype hold {self.size * count}")
        dest = self._check_buffer(out, count, "out", writable=True)
        _check_no_overlap(dest, src, "out")
        if not src.nbytes:
            return out
        if self._layout is None:
            _core.mpi_unpack_ptr(self._mpi_type.py2f(), src.ctypes.data, src.nbytes, dest.ctypes.data, count)
        else:
            if self._layout.overlaps():
                raise InvalidArgument("this datatype visits some bytes twice; unpacking into it is ambiguous")
            _core.unpack_ptr(self._layout, src.ctypes.data, dest.ctypes.data, count)
        return out


def pack(view, out=None):
    """A contiguous copy of a strided view (numpy; cupy on GPU builds), packed by
    the datatype engine: equal to numpy.ascontiguousarray(view). With `out`, the
    packed bytes go there instead (any writable C-contiguous buffer of exactly
    view.nbytes bytes: a numpy array of any dtype, bytearray, memoryview; a
    device buffer for a device view), and `out` is returned."""
    if is_device(view):
        return _gpu.pack(view, out)
    if not isinstance(view, np.ndarray):
        raise InvalidArgument(f"expected a numpy array, got {type(view).__name__}")
    ptr, shape, strides, itemsize, _ = interface(view)
    if out is None:
        dest = result = np.empty(view.shape, view.dtype)
    else:
        dest, result = host_bytes(out, "out", writable=True), out
        if dest.nbytes != view.nbytes:
            raise InvalidArgument(f"out holds {dest.nbytes} bytes, the view packs to {view.nbytes} "
                                  f"({view.size} elements of {view.dtype})")
        _check_no_overlap(dest, view, "out")
    if view.size:
        layout = _core.layout_from_strides(itemsize, list(shape), list(strides))
        _core.pack_ptr(layout, ptr, dest.ctypes.data, 1)
    return result


def unpack(buf, out):
    """Writes the packed bytes `buf` (any C-contiguous buffer of exactly the view's
    byte count: numpy of any dtype, bytes, bytearray, memoryview; a device buffer
    for a device view) into the strided view `out` (the inverse of pack); returns out."""
    if is_device(out):
        return _gpu.unpack(buf, out)
    if not isinstance(out, np.ndarray):
        raise InvalidArgument(f"out= must be a numpy array (or, on GPU builds, a cupy array), got "
                              f"{type(out).__name__}")
    ptr, shape, strides, itemsize, _ = interface(out)
    if not out.flags.writeable:
        raise InvalidArgument("out is read-only")
    src = host_bytes(buf, "buf")
    check_unpack_size(src.nbytes, out)
    if out.size == 0:
        return out
    layout = _core.layout_from_strides(itemsize, list(shape), list(strides))
    refuse_overlap(layout, "unpacking into it is ambiguous")
    _check_no_overlap(src, out, "buf")
    _core.unpack_ptr(layout, src.ctypes.data, ptr, 1)
    return out

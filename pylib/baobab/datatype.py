"""Non-contiguous data: canonical datatypes and packing of strided views.

    baobab.Datatype.from_mpi(mpi4py_type)   # decoded through MPI_Type_get_envelope/contents
    baobab.Datatype.from_array(view)        # a strided numpy view (negative and zero strides too)
    baobab.pack(view) -> contiguous array   # same bytes as numpy.ascontiguousarray(view)
    baobab.unpack(buf, out=view)            # the inverse, into a writable view
"""
import numpy as np

from . import _loader  # noqa: F401
from . import _core
from ._errors import InvalidArgument


def _device_array(x):
    # Asked of the type: reading __cuda_array_interface__ on a cupy array
    # synchronises its stream (CUPY_CUDA_ARRAY_INTERFACE_SYNC), once per call.
    return hasattr(type(x), "__cuda_array_interface__")


def _is_cupy(x):
    return type(x).__module__.startswith("cupy") and hasattr(x, "data") and hasattr(x.data, "ptr")


def _interface(x):
    """(pointer, shape, byte strides, itemsize, readonly) of a numpy or CUDA array."""
    if _is_cupy(x):  # attributes directly: no stream synchronisation
        return x.data.ptr, tuple(x.shape), tuple(x.strides), x.itemsize, False
    if _device_array(x):
        ai = x.__cuda_array_interface__
    elif isinstance(x, np.ndarray):
        ai = x.__array_interface__
    else:
        raise InvalidArgument(f"expected a numpy (or, on GPU builds, cupy) array, got {type(x).__name__}")
    itemsize = np.dtype(ai["typestr"]).itemsize
    shape = tuple(ai["shape"])
    strides = ai.get("strides")
    if strides is None:  # C-contiguous
        strides, acc = [], itemsize
        for n in reversed(shape):
            strides.append(acc)
            acc *= n
        strides = tuple(reversed(strides))
    ptr, readonly = ai["data"]
    return ptr, shape, tuple(strides), itemsize, readonly


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
        _, shape, strides, itemsize, _ = _interface(view)
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

    def _check_buffer(self, buf, count, what):
        if not isinstance(buf, np.ndarray):
            raise InvalidArgument(f"{what} must be a numpy array")
        if not buf.flags.c_contiguous:
            raise InvalidArgument(f"{what} must be C-contiguous: the datatype describes its layout")
        lo, hi = self.span(count)
        if lo < 0 or hi > buf.nbytes:
            raise InvalidArgument(f"{count} element(s) of this datatype touch bytes [{lo}, {hi}) of {what}, "
                                  f"which holds {buf.nbytes} bytes")

    def pack(self, buf, count=1):
        """Packs `count` elements from `buf` (the datatype's bytes are relative to its
        start) into a new contiguous uint8 array, byte-identical to MPI_Pack."""
        count = int(count)
        if count < 0:
            raise InvalidArgument("count must be non-negative")
        self._check_buffer(buf, count, "buf")
        out = np.empty(self.size * count, np.uint8)
        if self._layout is None:
            _core.mpi_pack_ptr(self._mpi_type.py2f(), buf.ctypes.data, count, out.ctypes.data, out.nbytes)
        else:
            _core.pack_ptr(self._layout, buf.ctypes.data, out.ctypes.data, count)
        return out

    def unpack(self, packed, out, count=1):
        """Scatters `count` packed elements into `out`; returns `out`."""
        count = int(count)
        packed = np.ascontiguousarray(packed)
        if packed.nbytes != self.size * count:
            raise InvalidArgument(f"the packed buffer holds {packed.nbytes} bytes, {count} element(s) of this "
                                  f"datatype hold {self.size * count}")
        self._check_buffer(out, count, "out")
        if not out.flags.writeable:
            raise InvalidArgument("out is read-only")
        if self._layout is None:
            _core.mpi_unpack_ptr(self._mpi_type.py2f(), packed.ctypes.data, packed.nbytes, out.ctypes.data, count)
        else:
            if self._layout.overlaps():
                raise InvalidArgument("this datatype visits some bytes twice; unpacking into it is ambiguous")
            _core.unpack_ptr(self._layout, packed.ctypes.data, out.ctypes.data, count)
        return out


def pack(view):
    """A contiguous copy of a strided view (numpy; cupy on GPU builds), packed by
    the datatype engine: equal to numpy.ascontiguousarray(view)."""
    if _device_array(view):
        from . import _gpu
        return _gpu.pack(view)
    if not isinstance(view, np.ndarray):
        raise InvalidArgument(f"expected a numpy array, got {type(view).__name__}")
    ptr, shape, strides, itemsize, _ = _interface(view)
    out = np.empty(view.shape, view.dtype)
    if out.size:
        layout = _core.layout_from_strides(itemsize, list(shape), list(strides))
        _core.pack_ptr(layout, ptr, out.ctypes.data, 1)
    return out


def check_unpack_args(buf, out):
    """The contiguous buffer and the view must hold the same elements."""
    if buf.size != out.size:
        raise InvalidArgument(f"buf holds {buf.size} elements, the view out= holds {out.size}: the layouts do "
                              "not match")
    if buf.dtype != out.dtype:
        raise InvalidArgument(f"buf has dtype {buf.dtype}, out= has {out.dtype}")
    if not buf.flags.c_contiguous:
        raise InvalidArgument("buf must be C-contiguous")


def unpack(buf, out):
    """Writes the contiguous `buf` into the strided view `out` (the inverse of pack); returns out."""
    if _device_array(out):
        from . import _gpu
        return _gpu.unpack(buf, out)
    if not isinstance(out, np.ndarray) or not isinstance(buf, np.ndarray):
        raise InvalidArgument("unpack needs numpy arrays for buf and out")
    if not out.flags.writeable:
        raise InvalidArgument("out is read-only")
    check_unpack_args(buf, out)
    ptr, shape, strides, itemsize, _ = _interface(out)
    if out.size == 0:
        return out
    layout = _core.layout_from_strides(itemsize, list(shape), list(strides))
    if layout.overlaps():
        raise InvalidArgument("out= overlaps itself (a zero or overlapping stride): unpacking into it is "
                              "ambiguous")
    _core.unpack_ptr(layout, buf.ctypes.data, ptr, 1)
    return out

"""What baobab reads of a buffer, shared by the datatype engine, point-to-point
messages and the device paths: pointer, shape and byte strides of numpy and
CUDA arrays; host or device; packed data as bytes (any C-contiguous buffer);
and the refusals every reader makes (Python object pointers, a view that
overlaps itself, a packed buffer of the wrong size). Imports nothing of
baobab's but the errors."""
import re

import numpy as np

from ._errors import InvalidArgument


def is_device(x):
    """Whether x lives on a device (has __cuda_array_interface__)."""
    # Asked of the type: reading __cuda_array_interface__ on a cupy array
    # synchronises its stream (CUPY_CUDA_ARRAY_INTERFACE_SYNC), once per call.
    return hasattr(type(x), "__cuda_array_interface__")


def is_cupy(x):
    """A cupy array, whose pointer and strides are read without synchronising its stream."""
    return type(x).__module__.startswith("cupy") and hasattr(x, "data") and hasattr(x.data, "ptr")


def refuse_objects(dtype, what="the array"):
    """InvalidArgument for a dtype whose elements hold Python object pointers."""
    if dtype.hasobject:
        raise InvalidArgument(f"{what} has dtype {dtype}, whose elements hold Python object pointers: baobab copies "
                              "bytes, which would copy the pointers without their references; use a numeric dtype")


def interface(x):
    """(pointer, shape, byte strides, itemsize, readonly) of a numpy or CUDA array.
    Refuses dtypes holding Python objects (what every layout reader goes through:
    pack, unpack, Datatype.from_array, send/recv, halo_exchange)."""
    if is_cupy(x):  # attributes directly: no stream synchronisation
        return x.data.ptr, tuple(x.shape), tuple(x.strides), x.itemsize, False
    if is_device(x):
        ai = x.__cuda_array_interface__
        refuse_objects(np.dtype(ai["typestr"]))
    elif isinstance(x, np.ndarray):
        refuse_objects(x.dtype)
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


def host_bytes(buf, what, writable=False):
    """A numpy array over the bytes of `buf` (a numpy array of any numeric dtype,
    bytes, bytearray, memoryview, or anything else with the buffer protocol),
    which must be C-contiguous (and writable if asked); keeps buf alive."""
    if is_device(buf):
        raise InvalidArgument(f"{what} is a device array ({type(buf).__name__}) but the data is in host memory: "
                              "pass a host buffer (numpy, bytes, bytearray, memoryview)")
    if isinstance(buf, np.ndarray):
        arr = buf
    else:
        try:
            mv = memoryview(buf)
        except TypeError:
            raise InvalidArgument(f"{what} must be a numpy array or a contiguous buffer (bytes, bytearray, "
                                  f"memoryview), got {type(buf).__name__}") from None
        try:
            arr = np.asarray(mv)
        except (TypeError, ValueError, NotImplementedError):  # a format numpy does not read
            if "O" in re.sub(r":[^:]*:", "", mv.format):
                raise InvalidArgument(f"{what} holds Python object pointers (buffer format {mv.format!r})") from None
            if not mv.c_contiguous:
                raise InvalidArgument(f"{what} is not C-contiguous") from None
            arr = np.frombuffer(mv.cast("B"), np.uint8)
    refuse_objects(arr.dtype, what)
    if not arr.flags.c_contiguous:
        raise InvalidArgument(f"{what} is not C-contiguous (strides {arr.strides} for shape {arr.shape}): packed "
                              "data is one run of bytes")
    if writable and not arr.flags.writeable:
        raise InvalidArgument(f"{what} is read-only")
    return arr


def check_unpack_size(nbytes, out):
    """The packed buffer must hold exactly the bytes of the view's elements."""
    if nbytes != out.size * out.itemsize:
        raise InvalidArgument(f"buf holds {nbytes} bytes, the view out= holds {out.size * out.itemsize} "
                              f"({out.size} elements of {out.dtype}): the sizes do not match")


def refuse_overlap(layout, doing):
    """InvalidArgument when a destination view visits some bytes twice (a zero or
    overlapping stride): `doing` says what cannot be done with it."""
    if layout.overlaps():
        raise InvalidArgument(f"out= overlaps itself (a zero or overlapping stride): {doing}")

"""Collectives on device arrays: which arguments are device arrays, how the
core is told where they live and how their bytes travel.

A device array is a cupy array, anything with ``__cuda_array_interface__``
(a torch CUDA tensor, numba, ...) or anything whose ``__dlpack_device__`` is a
CUDA device; the last two are viewed as cupy arrays without a copy. The core
runs the collective's schedule with device lanes (core/src/runtime/executor.cpp,
baobab/device.hpp): reductions by device kernels, payloads handed to MPI as
device pointers when the MPI library is CUDA-aware, else staged through pinned
host memory. The plan and the messages are those of host buffers.

Stream order: the collective starts after the work queued on the caller's
current cupy stream when it is called; its result is on the device once the
call returns (blocking) or once ``Work.wait()`` returns (non-blocking). Starting
does not synchronise the host with the device.

Each message takes the route the cost model prices lowest among those allowed
(CostModel::device_route in the core; ``explain(device=True)`` prints them):
CUDA IPC between ranks of one node where it costs no more than staging, and
with a CUDA-aware MPI ("auto") device pointers or staging by size.
BAOBAB_DEVICE_TRANSPORT=staged|cuda-aware|auto overrides the detected transport.
BAOBAB_DEVICE_EMULATION=staged|cuda-aware|auto is a testing aid for machines without
a GPU: every numpy argument of a collective then takes the device lanes, with
host memory standing in for device memory (core/src/runtime/device_emulated.cpp).
"""
import contextlib
import os

import numpy as np

from . import _core
from ._buffers import is_cupy, is_device
from ._errors import InvalidArgument

_PATHS = ("staged", "cuda-aware", "auto")
_DLPACK_CUDA = (2, 13)  # kDLCUDA, kDLCUDAManaged


def _choice(name):
    v = os.environ.get(name, "").strip()
    if v in ("", "0", "off"):
        return None
    if v not in _PATHS:
        raise InvalidArgument(f"{name}={v!r}: expected one of off, {', '.join(_PATHS)}")
    return v


def emulation():
    """The transport BAOBAB_DEVICE_EMULATION asks for, or None."""
    return _choice("BAOBAB_DEVICE_EMULATION")


def transport():
    """(name, reason): how device payloads travel between ranks in this process.
    With a CUDA-aware MPI, "auto": the cost model picks device pointers or
    staging message by message (CostModel::device_route); else "staged"."""
    v = _choice("BAOBAB_DEVICE_TRANSPORT")
    if v:
        return v, f"BAOBAB_DEVICE_TRANSPORT={v}"
    aware, why = _core.mpi_cuda_aware()
    return ("auto" if aware else "staged"), why


def on_device(x):
    """Whether x is a device array (cupy, __cuda_array_interface__, DLPack on a CUDA device)."""
    if is_device(x):
        return True
    if isinstance(x, np.ndarray):
        return False
    f = getattr(x, "__dlpack_device__", None)
    if f is None:
        return False
    try:
        kind = int(f()[0])
    except Exception:  # noqa: BLE001 - not a usable DLPack producer: a host object
        return False
    return kind in _DLPACK_CUDA


def as_cupy(x, what):
    """A cupy view of a device array (no copy)."""
    from ._gpu import _cupy
    cupy = _cupy()
    if is_cupy(x):
        return x
    try:
        return cupy.asarray(x) if is_device(x) else cupy.from_dlpack(x)
    except (TypeError, ValueError, BufferError) as e:
        raise InvalidArgument(f"{what}: a device array cupy cannot view ({type(x).__name__}: {e})") from None


def ipc():
    """Whether device buffers travel by IPC between ranks of one node (BAOBAB_DEVICE_IPC, default on)."""
    v = os.environ.get("BAOBAB_DEVICE_IPC", "").strip().lower()
    if v in ("", "1", "on", "yes", "true"):
        return True
    if v in ("0", "off", "no", "false"):
        return False
    raise InvalidArgument(f"BAOBAB_DEVICE_IPC={v!r}: expected 1 or 0 (on or off)")


class Call:
    """Where a collective's arrays live and how their bytes travel."""

    __slots__ = ("xp", "emulated", "path", "stream", "device", "ipc")

    def __init__(self, xp, emulated, path, stream, device):
        self.xp, self.emulated, self.path, self.stream, self.device = xp, emulated, path, stream, device
        self.ipc = ipc()

    def ptr(self, a):
        return a.ctypes.data if self.emulated else a.data.ptr

    def context(self):
        return contextlib.nullcontext() if self.device is None else self.device

    def is_mine(self, a):
        """Whether `a` lives where this call's arrays live."""
        return isinstance(a, np.ndarray) if self.emulated else on_device(a)


def emulated_call(path):
    return Call(np, True, path, 0, None)


def call_for(xc):
    """The Call of a cupy array: the current stream of its device."""
    import cupy
    with xc.device:
        stream = cupy.cuda.get_current_stream().ptr
    return Call(cupy, False, transport()[0], stream, xc.device)


def check_output(out, call, what):
    """The array the core writes (a cupy view for device outputs), refusing one
    that lives elsewhere than the input."""
    if call is None:
        if on_device(out):
            raise InvalidArgument(f"{what} is a device array ({type(out).__name__}) but the input is a host "
                                  "array: pass both on the host or both on the device")
        return out
    if not call.is_mine(out):
        raise InvalidArgument(f"{what} is a host array ({type(out).__name__}) but the input is a device array: "
                              "pass both on the device or both on the host")
    return out if call.emulated else as_cupy(out, what)


def parse_gpu(text, count):
    """BAOBAB_GPU: one ordinal for this process ("3"), or one per local rank
    ("0,2,4,6": local rank l takes entry l mod 4). Returns the list."""
    try:
        ids = [int(t) for t in text.split(",")]
    except ValueError:
        raise InvalidArgument(f"BAOBAB_GPU={text!r}: expected a GPU ordinal or a comma-separated list of them") \
            from None
    if any(i < 0 for i in ids) or (count and any(i >= count for i in ids)):
        raise InvalidArgument(f"BAOBAB_GPU={text!r}: ordinals must be in 0..{count - 1 if count else 'N-1'} "
                              f"({count} device{'s' * (count != 1)} here)")
    return ids


def gpu_for(local_rank, count):
    """(ordinal or None, why): the GPU a rank with this local rank uses."""
    text = os.environ.get("BAOBAB_GPU", "").strip()
    if text:
        ids = parse_gpu(text, count)
        return ids[local_rank % len(ids)], f"BAOBAB_GPU={text}"
    if count == 0:
        return None, "no CUDA device"
    return local_rank % count, f"local rank {local_rank} mod {count} device{'s' * (count != 1)}"

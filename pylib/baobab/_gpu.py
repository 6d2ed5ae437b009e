"""Device (cupy) paths of the datatype engine: pack/unpack on the GPU, and
point-to-point messages of device views. A message is packed on the device,
then sent from device memory when the MPI library is CUDA-aware
(baobab._core.mpi_cuda_aware() says how that was decided) or staged through
pinned host memory when it is not; receives mirror it.

Below the datatype engine and point-to-point (both call in here for device
arrays); imports neither."""
from . import _args, _core
from ._buffers import check_unpack_size, interface, is_device, refuse_overlap
from ._errors import CUDAError, InvalidArgument
from ._halo import halo_slabs


_CUPY = []


def _cupy():
    """cupy, once a device was found (asked once: this sits on every device call)."""
    if _CUPY:
        return _CUPY[0]
    try:
        import cupy
    except ImportError:
        raise CUDAError("device arrays need cupy") from None
    if not _core.cuda_available():
        raise CUDAError(f"no usable CUDA device: {_core.cuda_status()}")
    _CUPY.append(cupy)
    return cupy


def _layout(view):
    ptr, shape, strides, itemsize, readonly = interface(view)
    return ptr, _core.layout_from_strides(itemsize, list(shape), list(strides)), readonly


def device_bytes(buf, what, writable=False):
    """(pointer, byte count) of a C-contiguous device buffer (cupy, or anything
    with __cuda_array_interface__) of any dtype; host buffers are refused."""
    if not is_device(buf):
        raise InvalidArgument(f"{what} is a host buffer ({type(buf).__name__}) but the view is a device array: "
                              "pass a device buffer (a cupy array)")
    ptr, shape, strides, itemsize, readonly = interface(buf)
    acc = itemsize
    for n, s in zip(reversed(shape), reversed(strides)):
        if n > 1 and s != acc:
            raise InvalidArgument(f"{what} is not C-contiguous (strides {strides} for shape {shape}): packed data "
                                  "is one run of bytes")
        acc *= n
    if writable and readonly:
        raise InvalidArgument(f"{what} is read-only")
    return ptr, acc


def pack(view, out=None):
    """A C-contiguous device copy of a strided cupy view, packed by baobab's kernels
    (into `out`, a C-contiguous device buffer of exactly view.nbytes bytes, if given)."""
    ptr, shape, strides, itemsize, _ = interface(view)
    nbytes = itemsize * _count(shape)
    if out is not None:
        dptr, have = device_bytes(out, "out", writable=True)
        if have != nbytes:
            raise InvalidArgument(f"out holds {have} bytes, the view packs to {nbytes} ({_count(shape)} elements "
                                  f"of {view.dtype})")
    cupy = _cupy()
    if out is None:
        out = cupy.empty(view.shape, view.dtype)
        dptr = out.data.ptr
    if nbytes:
        layout = _core.layout_from_strides(itemsize, list(shape), list(strides))
        stream = cupy.cuda.get_current_stream()
        _core.cuda_pack_ptr(layout, ptr, dptr, 1, stream.ptr)
    return out


def _count(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def unpack(buf, out):
    ptr, layout, readonly = _layout(out)
    if readonly:
        raise InvalidArgument("out is read-only")
    bptr, nbytes = device_bytes(buf, "buf")
    check_unpack_size(nbytes, out)
    cupy = _cupy()
    if out.size == 0:
        return out
    refuse_overlap(layout, "unpacking into it is ambiguous")
    stream = cupy.cuda.get_current_stream()
    _core.cuda_unpack_ptr(layout, bptr, ptr, 1, stream.ptr)
    return out


def _bytes_layout(n):
    return _core.layout_from_strides(1, [n], [1])


class DeviceRequest:
    """A device message in flight; wait() finishes staging and unpacking."""

    def __init__(self, t, finish, result, keep):
        self._t, self._finish, self._result, self._keep = t, finish, result, keep

    def test(self):
        done = self._t.test()
        if done and self._finish:
            self._finish()
            self._finish = None
        return done

    def wait(self, timeout=None):
        return self._wait(_args.timeout(timeout, zero_ok=True))

    def _wait(self, t):
        """wait() with a checked timeout (None: the default)."""
        self._t.wait(-1.0 if t is None else t)
        if self._finish:
            self._finish()
            self._finish = None
        self._keep = None
        return self._result

    @property
    def packed(self):
        return True

    @property
    def nbytes(self):
        return self._t.bytes


def isend(ctx, view, dest, tag):
    cupy = _cupy()
    ptr, layout, _ = _layout(view)
    stream = cupy.cuda.get_current_stream()
    n = layout.size
    if layout.contiguous():
        dev = view
        dptr = ptr
    else:
        dev = cupy.empty(n, cupy.uint8)
        dptr = dev.data.ptr
        _core.cuda_pack_ptr(layout, ptr, dptr, 1, stream.ptr)
    aware, _ = _core.mpi_cuda_aware()
    if aware:
        stream.synchronize()
        t = ctx._p.isend(dptr, _bytes_layout(n), int(dest), int(tag))
        return DeviceRequest(t, None, None, (view, dev))
    import cupyx
    host = cupyx.empty_pinned(n, dtype="uint8")
    cupy.cuda.runtime.memcpyAsync(host.ctypes.data, dptr, n, cupy.cuda.runtime.memcpyDeviceToHost, stream.ptr)
    stream.synchronize()
    t = ctx._p.isend(host.ctypes.data, _bytes_layout(n), int(dest), int(tag))
    return DeviceRequest(t, None, None, (view, dev, host))


def irecv(ctx, out, source, tag):
    cupy = _cupy()
    ptr, layout, readonly = _layout(out)
    if readonly:
        raise InvalidArgument("out is read-only")
    refuse_overlap(layout, "cannot receive into it")
    n = layout.size
    aware, _ = _core.mpi_cuda_aware()
    contiguous = layout.contiguous()
    dev = None if contiguous else cupy.empty(n, cupy.uint8)
    dptr = ptr if contiguous else dev.data.ptr
    if aware:
        t = ctx._p.irecv(dptr, _bytes_layout(n), int(source), int(tag))

        def finish():
            if not contiguous:
                s = cupy.cuda.get_current_stream()
                _core.cuda_unpack_ptr(layout, dptr, ptr, 1, s.ptr)
                s.synchronize()
        return DeviceRequest(t, finish, out, (out, dev))
    import cupyx
    host = cupyx.empty_pinned(n, dtype="uint8")
    t = ctx._p.irecv(host.ctypes.data, _bytes_layout(n), int(source), int(tag))

    def finish_staged():
        s = cupy.cuda.get_current_stream()
        cupy.cuda.runtime.memcpyAsync(dptr, host.ctypes.data, n, cupy.cuda.runtime.memcpyHostToDevice, s.ptr)
        if not contiguous:
            _core.cuda_unpack_ptr(layout, dptr, ptr, 1, s.ptr)
        s.synchronize()
    return DeviceRequest(t, finish_staged, out, (out, dev, host))


def halo_exchange(ctx, field, w, timeout):
    """halo_exchange for a cupy field (arguments checked by p2p.halo_exchange;
    timeout in seconds, None: the communicator's): each slab is packed on the
    device and travels as one message (device memory when MPI is CUDA-aware,
    pinned host staging otherwise); dimensions one after another so corners
    arrive too."""
    _cupy()
    t = ctx.timeout if timeout is None else timeout
    for ops in halo_slabs(field, w, ctx.mpi_comm):
        reqs = [irecv(ctx, v, peer, tag) if is_recv else isend(ctx, v, peer, tag) for v, peer, tag, is_recv in ops]
        _core.wait_all([r._t for r in reqs], t)
        for r in reqs:
            r._wait(0.0)
    return field

"""Fault tests of the command line and of the datatype engine's buffers (issue 11).

- pack/unpack take packed data as bytes (MPI_Pack semantics): any contiguous
  buffer of exactly the right size, in and out; wrong sizes, read-only or
  non-contiguous buffers and host/device mix-ups are InvalidArgument.
- Arrays holding Python object pointers (object dtype, structured dtypes with
  an object field) are refused wherever baobab reads an array's layout: pack,
  unpack, Datatype.from_array, Datatype.pack/unpack, send/recv, halo_exchange.
- Every bad `baobab` command line prints one line on stderr and exits 2, on
  every rank, without a traceback and without starting a collective; a size
  of 0 (-b 0) no longer loops for ever.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import baobab
from baobab import Datatype

from conftest import clean_env, mpiexec_path, mpi_flavor, run_mpi


# ---- item 19: packed data is bytes ------------------------------------------------------------

def _view():
    a = np.arange(24, dtype=np.float64).reshape(4, 6)
    return a, a[:, ::2]  # 12 float64 = 96 bytes


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "uint8", "int32", "2-d uint8"])
def test_unpack_takes_any_contiguous_buffer_of_the_right_byte_count(kind):
    a, view = _view()
    raw = np.ascontiguousarray(view).tobytes()
    buf = {"bytes": raw, "bytearray": bytearray(raw), "memoryview": memoryview(raw),
           "uint8": np.frombuffer(raw, np.uint8).copy(), "int32": np.frombuffer(raw, np.int32).copy(),
           "2-d uint8": np.frombuffer(raw, np.uint8).reshape(8, 12).copy()}[kind]
    b = np.zeros_like(a)
    assert baobab.unpack(buf, out=b[:, ::2]) is not None
    assert np.array_equal(b[:, ::2], view) and not b[:, 1::2].any()


@pytest.mark.parametrize("kind", ["bytearray", "memoryview", "uint8", "float32 2-d"])
def test_pack_writes_into_a_callers_buffer(kind):
    a, view = _view()
    out = {"bytearray": bytearray(96), "memoryview": memoryview(bytearray(96)), "uint8": np.zeros(96, np.uint8),
           "float32 2-d": np.zeros((4, 6), np.float32)}[kind]
    got = baobab.pack(view, out=out)
    assert got is out
    assert bytes(memoryview(out).cast("B")) == np.ascontiguousarray(view).tobytes()


def test_pack_and_unpack_refuse_wrong_buffers_naming_the_sizes():
    a, view = _view()
    with pytest.raises(baobab.InvalidArgument, match=r"95 bytes.*96"):
        baobab.unpack(bytes(95), out=view)
    with pytest.raises(baobab.InvalidArgument, match=r"97 bytes.*96"):
        baobab.pack(view, out=bytearray(97))
    with pytest.raises(baobab.InvalidArgument, match="read-only"):
        baobab.pack(view, out=bytes(96))
    ro = np.zeros(96, np.uint8)
    ro.flags.writeable = False
    with pytest.raises(baobab.InvalidArgument, match="read-only"):
        baobab.pack(view, out=ro)
    with pytest.raises(baobab.InvalidArgument, match="not C-contiguous"):
        baobab.pack(view, out=np.zeros(192, np.uint8)[::2])
    with pytest.raises(baobab.InvalidArgument, match="not C-contiguous"):
        baobab.unpack(np.zeros((12, 2))[:, 0], out=view)
    with pytest.raises(baobab.InvalidArgument, match="not C-contiguous"):
        baobab.unpack(memoryview(bytes(192))[::2], out=view)
    with pytest.raises(baobab.InvalidArgument, match="buffer"):
        baobab.unpack([0.0] * 12, out=view)
    with pytest.raises(baobab.InvalidArgument, match="overlap"):  # out= is the view's own memory
        baobab.pack(a[:, :3], out=a[:2])
    with pytest.raises(baobab.InvalidArgument, match="read-only"):
        baobab.unpack(bytes(96), out=np.broadcast_to(np.zeros(6), (2, 6)))


def test_datatype_pack_and_unpack_take_buffers():
    from mpi4py import MPI
    t = MPI.DOUBLE.Create_vector(3, 1, 2).Commit()
    try:
        d = Datatype.from_mpi(t)
        src = np.arange(5, dtype=np.float64)
        want = src[::2].tobytes()
        assert d.pack(bytearray(src.tobytes())).tobytes() == want
        out = bytearray(24)
        assert d.pack(src, out=out) is out and bytes(out) == want
        with pytest.raises(baobab.InvalidArgument, match=r"out holds 23 bytes.*24"):
            d.pack(src, out=bytearray(23))
        back = bytearray(40)
        d.unpack(want, back)
        assert np.array_equal(np.frombuffer(back)[::2], src[::2])
        with pytest.raises(baobab.InvalidArgument, match="read-only"):
            d.unpack(want, bytes(40))
    finally:
        t.Free()


class _FakeDeviceArray:
    """Something that says it lives on a device (the __cuda_array_interface__ protocol):
    argument checks must refuse to mix it with host buffers before touching a GPU."""

    def __init__(self, n):
        self.n = n

    @property
    def __cuda_array_interface__(self):
        return dict(shape=(self.n,), typestr="|u1", data=(0, False), version=3, strides=None)


def test_host_and_device_buffers_do_not_mix():
    _, view = _view()
    with pytest.raises(baobab.InvalidArgument, match="device"):
        baobab.pack(view, out=_FakeDeviceArray(96))
    with pytest.raises(baobab.InvalidArgument, match="device"):
        baobab.unpack(_FakeDeviceArray(96), out=view)
    with pytest.raises(baobab.InvalidArgument, match="host"):
        baobab.pack(_FakeDeviceArray(96), out=bytearray(96))
    with pytest.raises(baobab.InvalidArgument, match="host"):
        baobab.unpack(bytes(96), out=_FakeDeviceArray(96))


def _have_device():
    try:
        import cupy
        return baobab._core.cuda_available() and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no cupy, no driver, no device
        return False


@pytest.mark.skipif(not _have_device(), reason="no CUDA device (or no cupy / CUDA build)")
def test_device_pack_into_a_device_buffer_and_unpack_from_bytes():
    import cupy
    a = cupy.arange(24, dtype=cupy.float64).reshape(4, 6)
    view = a[:, ::2]
    out = cupy.zeros(96, cupy.uint8)
    assert baobab.pack(view, out=out) is out
    assert bool((out.view(cupy.float64) == cupy.ascontiguousarray(view).ravel()).all())
    b = cupy.zeros_like(a)
    baobab.unpack(out, out=b[:, ::2])
    assert bool((b[:, ::2] == view).all())
    with pytest.raises(baobab.InvalidArgument, match=r"95 bytes.*96"):
        baobab.unpack(cupy.zeros(95, cupy.uint8), out=b[:, ::2])
    with pytest.raises(baobab.InvalidArgument, match="host"):
        baobab.unpack(bytes(96), out=b[:, ::2])
    with pytest.raises(baobab.InvalidArgument, match="device"):
        baobab.pack(np.zeros((4, 6))[:, ::2], out=out)


# ---- item 4: arrays holding object pointers are refused ----------------------------------------

_OBJECT_CASES = """
import numpy as np, baobab
from mpi4py import MPI
rec = np.dtype([("a", object), ("b", "f8")])
for name, make in [("object", lambda: np.array([object() for _ in range(12)], object).reshape(3, 4)),
                   ("struct", lambda: np.zeros((3, 4), rec))]:
    def attempts():
        yield "pack", lambda: baobab.pack(make()[:, ::2])
        yield "pack contiguous", lambda: baobab.pack(make())
        yield "pack out=", lambda: baobab.pack(np.zeros((3, 2)), out=make()[:, :1].copy())
        yield "unpack", lambda: baobab.unpack(baobab.pack(np.arange(6.0 if name == "object" else 12.0)),
                                              out=make()[:, ::2])
        yield "unpack buf", lambda: baobab.unpack(make()[:, :2].copy(), out=np.zeros((3, 4))[:, ::2])
        yield "unpack object into object", lambda: baobab.unpack(make()[:, :2].copy(), out=make()[:, ::2])
        yield "from_array", lambda: baobab.Datatype.from_array(make())
        t = MPI.BYTE.Create_contiguous(8).Commit()
        d = baobab.Datatype.from_mpi(t)
        yield "Datatype.pack", lambda: d.pack(make())
        yield "Datatype.unpack", lambda: d.unpack(np.zeros(8, np.uint8), make())
    for what, fn in attempts():
        try:
            fn()
        except baobab.InvalidArgument as e:
            assert "object" in str(e), e
            print("REFUSED", name, what, flush=True)
        else:
            print("ACCEPTED", name, what, flush=True)
"""


def test_object_arrays_are_refused_by_pack_unpack_and_datatypes():
    r = subprocess.run([sys.executable, "-c", _OBJECT_CASES], capture_output=True, text=True, timeout=120,
                       env=clean_env())
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"exit {r.returncode} (a crash is -11):\n{out}"
    assert "ACCEPTED" not in out, out
    assert out.count("REFUSED") == 18, out


def test_send_and_recv_refuse_object_arrays(mpirun):
    code = """
        import numpy as np, baobab
        c = baobab.init(timeout=60)
        peer = 1 - c.rank
        rec = np.dtype([("a", object), ("b", "f8")])
        for name, arr in [("object", np.array([object() for _ in range(8)], object)), ("struct", np.zeros(8, rec))]:
            for what, fn in [("send", lambda: c.send(arr, peer, tag=1)),
                             ("send strided", lambda: c.send(arr[::2], peer, tag=1)),
                             ("isend", lambda: c.isend(arr, peer, tag=1)),
                             ("recv", lambda: c.recv(arr, peer, tag=1)),
                             ("irecv", lambda: c.irecv(arr[::2], peer, tag=1))]:
                try:
                    fn()
                    print("ACCEPTED", name, what, flush=True)
                except baobab.InvalidArgument as e:
                    assert "object" in str(e), e
                    print("REFUSED", c.rank, name, what, flush=True)
        # nothing was sent: the next message between the two is the right one
        x = np.arange(8.0) + c.rank
        req = c.irecv(np.zeros(8), peer, tag=1)
        c.send(x, peer, tag=1)
        assert np.array_equal(req.wait(timeout=30), np.arange(8.0) + peer)
        print("AFTER OK", flush=True)
    """
    out = mpirun(2, code, timeout=120).stdout
    assert "ACCEPTED" not in out, out
    assert out.count("REFUSED") == 20 and out.count("AFTER OK") == 2, out


def test_halo_exchange_refuses_an_object_field(mpirun):
    code = """
        import numpy as np, baobab
        from mpi4py import MPI
        c = baobab.init(timeout=60)
        cart = MPI.COMM_WORLD.Create_cart([2], periods=[True])
        field = np.array([object() for _ in range(6)], object)
        try:
            c.halo_exchange(field, 1, cart)
            print("ACCEPTED", flush=True)
        except baobab.InvalidArgument as e:
            assert "object" in str(e), e
            print("REFUSED", flush=True)
    """
    out = mpirun(2, code, timeout=120).stdout
    assert out.count("REFUSED") == 2, out

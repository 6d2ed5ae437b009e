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
import subprocess
import sys

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
        c.halo_exchange(np.zeros(6), 1, cart)  # a float field of the same geometry first (plan cache)
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


# ---- items 8 and 9: bad command lines ------------------------------------------------------------

# Runs `baobab._cli.main.main(argv)` for each case in this one process (MPI started once: a
# singleton, or one rank of an mpiexec job), with file descriptors 1 and 2 captured per
# case, and writes {case: {rc, out, err}} to OUT.<rank>. A case still running after 60 s
# (a Python loop: SIGALRM interrupts it) is recorded as a hang.
_DRIVER = r"""
import json, os, signal, sys, tempfile, traceback
from baobab._cli.main import main
cases = json.load(open(sys.argv[1]))
rank = os.environ.get("PMI_RANK") or os.environ.get("OMPI_COMM_WORLD_RANK") or "0"

class Hung(BaseException):
    pass

def alarm(*_):
    raise Hung("still running after 60 s")
signal.signal(signal.SIGALRM, alarm)
results = {}
for name, argv in cases:
    err, out = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush(); sys.stderr.flush()
    keep_out, keep_err = os.dup(1), os.dup(2)
    os.dup2(out.fileno(), 1); os.dup2(err.fileno(), 2)
    signal.alarm(60)
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    except BaseException as e:
        traceback.print_exc()
        rc = "hang" if isinstance(e, Hung) else "exception"
    finally:
        signal.alarm(0)
        sys.stdout.flush(); sys.stderr.flush()
        os.dup2(keep_out, 1); os.dup2(keep_err, 2)
        os.close(keep_out); os.close(keep_err)
    out.seek(0); err.seek(0)
    results[name] = dict(rc=rc, out=out.read().decode(errors="replace"), err=err.read().decode(errors="replace"))
json.dump(results, open(sys.argv[2] + "." + rank, "w"))
print("DRIVER DONE", rank, flush=True)
"""


def _bad_lines(tmp, make_files=True):
    """{case name: argv}; the paths lie under tmp (made there when make_files)."""
    table, empty, text = tmp / "table.csv", tmp / "empty.csv", tmp / "notes.txt"
    if make_files:
        table.write_text("size,count,algo,requested,algbw,busbw\n1024,256,ring,ring,1.0,1.5\n")
        empty.write_text("")
        text.write_text("just some notes,\nnot a table\n")
    ar = ["bench", "allreduce", "-e", "8"]
    return {
        # sizes with units
        "-b 10X": ["bench", "allreduce", "-b", "10X"],
        "-b -8": ["bench", "allreduce", "-b", "-8"],
        "-b 0": ["bench", "allreduce", "-b", "0"],
        "-b 1.5 (a fraction of a byte)": ["bench", "allreduce", "-b", "1.5"],
        "-e 10P": ["bench", "allreduce", "-e", "10P"],
        "-e inf": ["bench", "allreduce", "-e", "inf"],
        "-e below -b": ["bench", "allreduce", "-b", "64", "-e", "8"],
        "-f 1": ar + ["-f", "1"],
        "-f 0": ar + ["-f", "0"],
        "-f nan": ar + ["-f", "nan"],
        "-f x": ar + ["-f", "x"],
        "-f 1.0000001 (too many sizes)": ["bench", "allreduce", "-f", "1.0000001"],
        "-e 4T (memory)": ["bench", "allreduce", "-e", "4T"],
        "allgather -e 4T (memory)": ["bench", "allgather", "-b", "4T", "-e", "4T"],
        # dtype, op, root, counts
        "-d complex64": ar + ["-d", "complex64"],
        "-d foo": ar + ["-d", "foo"],
        "-o avg": ar + ["-o", "avg"],
        "reduce -o avg": ["bench", "reduce", "-e", "8", "-o", "avg"],
        "-r 7": ["bench", "bcast", "-e", "8", "-r", "7"],
        "-r -1": ["bench", "reduce", "-e", "8", "-r", "-1"],
        "--root x": ["bench", "bcast", "-e", "8", "--root", "x"],
        "-n 0": ar + ["-n", "0"],
        "-n -1": ar + ["-n", "-1"],
        "-w -1": ar + ["-w", "-1"],
        # algorithm names
        "--algo foo": ar + ["--algo", "foo"],
        "bcast --algo ring": ["bench", "bcast", "-e", "8", "--algo", "ring"],
        "--algo split_rail on one node": ar + ["--algo", "split_rail"],
        # output paths
        "--csv in a missing directory": ar + ["--csv", str(tmp / "missing" / "x.csv")],
        "--csv is a directory": ar + ["--csv", str(tmp)],
        "--csv under a file": ar + ["--csv", str(table / "x.csv")],
        "--plot in a missing directory": ar + ["--plot", str(tmp / "missing" / "x.png")],
        "--plot .xyz": ar + ["--plot", str(tmp / "x.xyz")],
        "unknown option": ar + ["--frobnicate"],
        # bench pack / halo / attention
        "pack --blocks 8,,x": ["bench", "pack", "--blocks", "8,,x"],
        "pack --blocks 0": ["bench", "pack", "--blocks", "0"],
        "pack --bytes -1": ["bench", "pack", "--bytes", "-1"],
        "pack --bytes 1T (memory)": ["bench", "pack", "--bytes", "1T", "--blocks", "8"],
        "halo --size 0": ["bench", "halo", "--size", "0"],
        "halo --width 0": ["bench", "halo", "--width", "0"],
        "halo --iters 0": ["bench", "halo", "--iters", "0"],
        "halo --size below --width": ["bench", "halo", "--size", "1", "--width", "2"],
        "halo --size 100000 (memory)": ["bench", "halo", "--size", "100000"],
        "attention --seq 10X": ["bench", "attention", "--seq", "10X"],
        "attention --seq 0": ["bench", "attention", "--seq", "0"],
        "attention --heads 0": ["bench", "attention", "--heads", "0"],
        "attention -d 0": ["bench", "attention", "-d", "0"],
        "attention --iters 0": ["bench", "attention", "--iters", "0"],
        "attention --kernel 0": ["bench", "attention", "--kernel", "0"],
        "attention --kernel 1G (memory)": ["bench", "attention", "--seq", "16", "--kernel", "1G"],
        "attention --dtype float16": ["bench", "attention", "--dtype", "float16"],
        "bench foo": ["bench", "foo"],
        # tune
        "tune --reps 0": ["tune", "-o", str(tmp / "t.conf"), "--reps", "0"],
        "tune --bytes 0": ["tune", "-o", str(tmp / "t.conf"), "--bytes", "0"],
        "tune --bytes 10X": ["tune", "-o", str(tmp / "t.conf"), "--bytes", "10X"],
        "tune --pack-bytes -1": ["tune", "-o", str(tmp / "t.conf"), "--pack-bytes", "-1"],
        "tune --bytes 4T (memory)": ["tune", "-o", str(tmp / "t.conf"), "--bytes", "4T"],
        "tune -o in a missing directory": ["tune", "-o", str(tmp / "missing" / "t.conf"), "--reps", "1"],
        "tune -o is a directory": ["tune", "-o", str(tmp), "--reps", "1"],
        # explain, info
        "explain 10X": ["explain", "allreduce", "10X"],
        "explain -1": ["explain", "allreduce", "-1"],
        "explain foo": ["explain", "foo", "8"],
        "explain --dtype complex64": ["explain", "allreduce", "8", "--dtype", "complex64"],
        "explain --root 7": ["explain", "bcast", "8", "--root", "7"],
        "explain --root -1": ["explain", "reduce", "8", "--root", "-1"],
        "explain without a size": ["explain", "allreduce"],
        "info extra": ["info", "extra"],
        # plot
        "plot a missing table": ["plot", str(tmp / "missing.csv"), "-o", str(tmp / "p.png")],
        "plot a file that is not a table": ["plot", str(text), "-o", str(tmp / "p.png")],
        "plot a binary file": ["plot", sys.executable, "-o", str(tmp / "p.png")],
        "plot an empty file": ["plot", str(empty), "-o", str(tmp / "p.png")],
        "plot a directory": ["plot", str(tmp), "-o", str(tmp / "p.png")],
        "plot -o in a missing directory": ["plot", str(table), "-o", str(tmp / "missing" / "p.png")],
        "plot -o .xyz": ["plot", str(table), "-o", str(tmp / "p.xyz")],
        "plot without -o": ["plot", str(table)],
        # the command itself
        "no command": [],
        "unknown command": ["frobnicate"],
    }


def _run_driver(tmp, cases, n=None, timeout=300):
    """Runs every case through the driver, on a singleton (n None) or n ranks; returns {rank: results}."""
    import json
    spec, out = tmp / "cases.json", tmp / "results"
    spec.write_text(json.dumps(list(cases.items())))
    script = tmp / "driver.py"
    script.write_text(_DRIVER)
    if n is None:
        r = subprocess.run([sys.executable, str(script), str(spec), str(out)], capture_output=True, text=True,
                           timeout=timeout, env=clean_env(), cwd=str(tmp))
        assert r.returncode == 0 and "DRIVER DONE" in r.stdout, r.stdout + r.stderr
        ranks = 1
    else:
        run_mpi(n, str(script), str(spec), str(out), timeout=timeout)
        ranks = n
    return {r: json.loads((tmp / f"results.{r}").read_text()) for r in range(ranks)}


def _assert_one_line_exit_2(res, name):
    err = res["err"]
    assert res["rc"] == 2, f"{name}: exit {res['rc']}\nstderr:\n{err}\nstdout:\n{res['out']}"
    assert "Traceback" not in err, f"{name}:\n{err}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("baobab") and ": error: " in lines[0], f"{name}: {lines}"
    assert res["out"] == "", f"{name}: printed on stdout:\n{res['out']}"


_BAD = sorted(_bad_lines(__import__("pathlib").Path("/unused"), make_files=False))


@pytest.fixture(scope="module")
def singleton_results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    return _run_driver(tmp, _bad_lines(tmp))[0]


@pytest.mark.parametrize("name", _BAD)
def test_bad_command_line_is_one_line_and_exit_2(singleton_results, name):
    """Each bad command line, run as a singleton (one rank): exit status 2, exactly one
    line on stderr naming the problem, no traceback, nothing on stdout (no table, no run)."""
    _assert_one_line_exit_2(singleton_results[name], name)


def test_messages_name_the_bad_value(singleton_results):
    r = singleton_results
    assert "'10X'" in r["-b 10X"]["err"] and "-b/--minbytes" in r["-b 10X"]["err"]
    assert "complex64" in r["-d complex64"]["err"] and "float32" in r["-d complex64"]["err"]
    assert "'avg'" in r["-o avg"]["err"] and "'sum'" in r["-o avg"]["err"]
    assert "'foo'" in r["--algo foo"]["err"] and "ring" in r["--algo foo"]["err"]
    assert "-r/--root 7" in r["-r 7"]["err"] and "0..0" in r["-r 7"]["err"]
    assert "missing" in r["--csv in a missing directory"]["err"] and "does not exist" in \
        r["--csv in a missing directory"]["err"]
    assert "smaller than -b" in r["-e below -b"]["err"]
    assert "GiB" in r["-e 4T (memory)"]["err"] and "free" in r["-e 4T (memory)"]["err"]
    assert "needs ranks on more than one node" in r["--algo split_rail on one node"]["err"]
    assert "not a baobab bench table" in r["plot a file that is not a table"]["err"]


def test_bench_b_0_ends_at_once():
    """Item 8: `baobab bench allreduce -b 0` looped for ever; the real entry point, one rank."""
    r = subprocess.run([sys.executable, "-m", "baobab", "bench", "allreduce", "-b", "0"], capture_output=True,
                       text=True, timeout=60, env=clean_env())
    _assert_one_line_exit_2(dict(rc=r.returncode, err=r.stderr, out=r.stdout), "-b 0")
    assert "-b/--minbytes" in r.stderr and "at least 1" in r.stderr


_TWO_RANKS = ["-b 10X", "-r 7", "-n -1", "--algo split_rail on one node", "--csv in a missing directory",
              "--plot .xyz", "-e 4T (memory)", "halo --size 0", "pack --bytes 1T (memory)",
              "tune -o in a missing directory", "tune --reps 0", "explain --root 7", "attention --kernel 1G (memory)",
              "plot a missing table"]


def test_bad_command_lines_on_two_ranks(tmp_path):
    """Under mpiexec -n 2: every rank prints one line and returns 2, also where only
    rank 0 can see the problem (its output path, its memory): the ranks agree first,
    so none waits in a collective the other left. (--root 2 is one past the last rank.)"""
    cases = {k: v for k, v in _bad_lines(tmp_path).items() if k in _TWO_RANKS}
    cases["-r 7"] = ["bench", "bcast", "-e", "8", "-r", "2"]
    cases["explain --root 7"] = ["explain", "bcast", "8", "--root", "2"]
    results = _run_driver(tmp_path, cases, n=2, timeout=300)
    for name in cases:
        for rank in (0, 1):
            _assert_one_line_exit_2(results[rank][name], f"{name} (rank {rank})")
        assert results[0][name]["err"] == results[1][name]["err"], name
    assert "found on rank 0" in results[1]["--csv in a missing directory"]["err"]


def test_real_entry_point_exits_2_on_every_rank(tmp_path):
    """`mpiexec -n 2 python -m baobab ...` itself: each rank's stderr and exit status,
    for a mistake each rank sees (-b 10X) and one only rank 0 checks (--csv)."""
    for args in (["bench", "allreduce", "-b", "10X"], ["bench", "allreduce", "-e", "8", "--csv", "/nonexistent/x.csv"]):
        cmd = [mpiexec_path(), "-n", "2"] + (["--oversubscribe"] if mpi_flavor() == "openmpi" else [])
        shell = ('r=${PMI_RANK:-$OMPI_COMM_WORLD_RANK}; "$0" -m baobab "$@" >"$D/out.$r" 2>"$D/err.$r"; '
                 'echo $? >"$D/rc.$r"')
        proc = subprocess.run(cmd + ["sh", "-c", shell, sys.executable, *args], capture_output=True, text=True,
                              timeout=120, env=clean_env({"D": str(tmp_path)}))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for r in (0, 1):
            res = dict(rc=int((tmp_path / f"rc.{r}").read_text()), err=(tmp_path / f"err.{r}").read_text(),
                       out=(tmp_path / f"out.{r}").read_text())
            _assert_one_line_exit_2(res, f"{args} rank {r}")


def test_parse_size_and_sizes_between():
    from baobab._cli.bench import sizes_between
    from baobab._cli.common import parse_size
    assert [parse_size(s) for s in ("8", "64K", "1.5M", "4g", "64KiB", "8B", "1e3", " 2M ")] == \
        [8, 65536, 1572864, 4 << 30, 65536, 8, 1000, 2 << 20]
    for bad in ("10X", "-8", "1.5", "inf", "nan", "", "K", "1KK", "0x10"):
        with pytest.raises(baobab.InvalidArgument):
            parse_size(bad)
    assert sizes_between(8, 64, 2) == [8, 16, 32, 64]
    assert sizes_between(8, 8, 2) == [8]
    assert sizes_between(8, 12, 1.0000000000000002) == [8, 9, 10, 11, 12]  # always moves on
    for b, e, f in ((0, 8, 2), (16, 8, 2), (8, 64, 1.0), (8, 64, float("nan")), (1, 1 << 40, 1.001)):
        with pytest.raises(baobab.InvalidArgument):
            sizes_between(b, e, f)

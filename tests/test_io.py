"""baobab.io: serial round trips, provenance, atomic rename, Fletcher32, and
collective writes under mpiexec in both modes (mpio when h5py has MPI, and the
rank-0 fallback)."""
import os
import sys
import subprocess

import numpy as np
import pytest

import h5py  # noqa: E402  (a test dependency: pip install baobab[test])

import baobab  # noqa: E402
from baobab import io  # noqa: E402
from conftest import MPI_DIR  # noqa: E402

HAVE_MPIO = bool(h5py.get_config().mpi)


def test_importing_baobab_does_not_import_h5py():
    code = "import sys, baobab; assert 'h5py' not in sys.modules; import baobab.io; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "PMIX_"))})
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


def test_serial_round_trip(tmp_path):
    path = tmp_path / "a.h5"
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    c = (np.arange(7) + 1j).astype(np.complex128)
    rec = np.zeros(5, dtype=[("a", "<i4"), ("b", "<f8")])
    rec["a"] = range(5)
    with io.File(path, "w", attrs={"config": {"n": 3, "name": "x"}, "seed": 7}) as f:
        f.write("/a/b/x", x, attrs={"unit": "cm", "shape": [20, 3]})
        f.write("c", c)
        f.write("rec", rec)
        f.write("s", np.array([b"ab", b"cd"]))
        f.write_global("g", np.eye(3))
        f.write_global("scalar", 3)
        f.write_global("text", "héllo")
        f.set_attrs("/a", {"group_attr": 1.5})
        f.set_attrs("/new/group", {"k": "v"})
        f.write_units({"Unit length in cgs (U_L)": 1.0, "Unit time in cgs (U_t)": 3.15e13})
        assert "/a/b/x" in f and "a/b" in f and "nope" not in f
        assert np.array_equal(f.read("/a/b/x", 2, 5), x[2:5])   # reads work while writing
    with io.File(path) as f:
        assert f.path == str(path)
        assert np.array_equal(f.read("/a/b/x"), x) and f.read("/a/b/x").dtype == np.float32
        assert np.array_equal(f.read("a/b/x", 5), x[5:])
        assert np.array_equal(f.read("c"), c)
        assert np.array_equal(f.read("rec"), rec)
        assert list(f.read("s")) == [b"ab", b"cd"]
        assert np.array_equal(f.read("g"), np.eye(3))
        assert f.read("scalar") == 3
        assert f.read("text") in ("héllo", "héllo".encode())
        assert np.array_equal(f.read_distributed("/a/b/x"), x)
        assert f.attrs("/a/b/x") == {"unit": "cm", "shape": "[20, 3]"}
        assert f.attrs("/a") == {"group_attr": 1.5}
        assert f.attrs("/new/group") == {"k": "v"}
        assert f.attrs("/Units")["Unit time in cgs (U_t)"] == 3.15e13


def test_provenance_attributes(tmp_path):
    path = tmp_path / "p.h5"
    with io.File(path, "w", attrs={"extra": [1, 2]}) as f:
        f.write("x", np.zeros(3))
    a = io.File(path).attrs()
    assert a["creator"] == "baobab"
    assert a["baobab_version"] == baobab.__version__
    assert a["mpi_ranks"] == 1
    assert a["extra"] == "[1, 2]"
    assert a["created"].endswith("+00:00") and "T" in a["created"]
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    assert a["git_commit"] == (head.stdout.strip() if head.returncode == 0 else "unknown")
    p = io.provenance({"k": {"a": 1}})
    assert set(p) >= {"creator", "baobab_version", "git_commit", "created", "mpi_ranks", "k"}
    assert p["k"] == '{"a": 1}'


def test_atomic_rename_and_exception_leaves_nothing(tmp_path):
    path = tmp_path / "atomic.h5"
    f = io.File(path, "w")
    f.write("x", np.ones(10))
    assert not path.exists()
    assert os.path.exists(f.tmp_path) and f.tmp_path.startswith(str(path) + ".tmp.")
    f.close()
    assert path.exists() and not os.path.exists(f.tmp_path)

    bad = tmp_path / "bad.h5"
    with pytest.raises(RuntimeError, match="boom"):
        with io.File(bad, "w") as g:
            g.write("x", np.ones(10))
            tmp = g.tmp_path
            raise RuntimeError("boom")
    assert not bad.exists() and not os.path.exists(tmp)
    assert sorted(os.listdir(tmp_path)) == ["atomic.h5"]


def test_errors(tmp_path):
    with io.File(tmp_path / "e.h5", "w") as f:
        f.write("x", np.ones(3))
        with pytest.raises(baobab.InvalidArgument, match="already exists"):
            f.write("x", np.ones(3))
        with pytest.raises(baobab.InvalidArgument, match="at least one dimension"):
            f.write("y", np.float64(1))
        with pytest.raises(baobab.InvalidArgument, match="cannot be stored"):
            f.write("u", np.array(["a", "b"]))
        with pytest.raises(baobab.InvalidArgument, match="needs chunking"):
            f.write("z", np.ones(3), chunks=False)
    with pytest.raises(baobab.InvalidArgument):
        io.File(tmp_path / "m.h5", "a")
    with io.File(tmp_path / "e.h5") as f, pytest.raises(baobab.InvalidArgument, match="read-only"):
        f.write("q", np.ones(2))
    if not HAVE_MPIO:
        with pytest.raises(baobab.InvalidArgument, match="without MPI|built with MPI"):
            io.File(tmp_path / "par.h5", "w", parallel=True)


def test_fletcher32_and_chunk_rule(tmp_path):
    path = tmp_path / "c.h5"
    big = np.arange(3 * (1 << 17), dtype=np.float64).reshape(-1, 3)    # 3 MiB: 3 chunks of 1 MiB
    with io.File(path, "w") as f:
        f.write("big", big)
        f.write("nock", np.ones(4), checksum=False)
        f.write("empty", np.ones((0, 2)))
    with h5py.File(path, "r") as h:
        d = h["big"]
        assert d.fletcher32 and d.chunks == ((1 << 20) // 24, 3)
        assert h["nock"].chunks == (4,) and not h["nock"].fletcher32
        assert h["empty"].chunks is None and h["empty"].shape == (0, 2)
    assert io.chunk_shape((10, 1 << 20), np.float64) == (1, 1 << 20)
    assert io.chunk_shape((), np.float64) is None


def test_corrupted_chunk_raises(tmp_path):
    path = tmp_path / "corrupt.h5"
    x = np.arange(4096, dtype=np.int64)
    with io.File(path, "w") as f:
        f.write("x", x)
    with h5py.File(path, "r") as h:
        info = h["x"].id.get_chunk_info(0)
        offset, size = info.byte_offset, info.size
    with open(path, "r+b") as fh:
        fh.seek(offset + size // 2)
        b = fh.read(1)
        fh.seek(offset + size // 2)
        fh.write(bytes([b[0] ^ 0xFF]))
    with io.File(path) as f:
        with pytest.raises(OSError, match="corrupt.h5"):
            f.read("x")


@pytest.mark.parametrize("n", [2, 3, 4])
def test_collective_write_uneven(mpirun, tmp_path, n):
    out = mpirun(n, MPI_DIR / "io_write.py", "uneven", tmp_path, timeout=120).stdout
    assert f"OK uneven p={n}" in out, out
    assert ("io_mode=mpio" if HAVE_MPIO else "io_mode=serial") in out, out


@pytest.mark.parametrize("n", [2, 3])
def test_collective_write_fallback_forced(mpirun, tmp_path, n):
    out = mpirun(n, MPI_DIR / "io_write.py", "uneven", tmp_path, "fallback", timeout=120).stdout
    assert f"OK uneven p={n} mode=fallback io_mode=serial" in out, out


@pytest.mark.parametrize("n, mode", [(2, "auto"), (3, "fallback"), (3, "auto")])
def test_shape_mismatch_raises_everywhere(mpirun, tmp_path, n, mode):
    out = mpirun(n, MPI_DIR / "io_write.py", "mismatch", tmp_path, mode, timeout=120).stdout
    lines = [l for l in out.splitlines() if l.startswith("RANK")]
    assert sorted(l.split(":")[0] for l in lines) == [f"RANK {i}" for i in range(n)], out
    assert len(lines) == n and all("InvalidArgument" in l for l in lines), out
    assert all(f"rank {n - 1}: shape (2, 5)" in l and "rank 0: shape (2, 4)" in l for l in lines), out
    assert f"OK mismatch p={n}" in out


@pytest.mark.parametrize("scenario", ["giveup", "giveup_close"])
@pytest.mark.parametrize("n, mode", [(2, "auto"), (3, "auto"), (3, "fallback")])
def test_a_rank_that_raises_inside_the_file_stops_the_others(mpirun, tmp_path, n, mode, scenario):
    """One rank raises inside `with io.File(...)` (before a write, or while the
    others close): the others get an Error naming it, no rank hangs in a
    collective it will never see completed, nothing is left on disk, and the
    next file on the same communicator is written normally."""
    out = mpirun(n, MPI_DIR / "io_write.py", scenario, tmp_path, mode, timeout=60).stdout
    lines = sorted(l for l in out.splitlines() if l.startswith("RANK"))
    assert len(lines) == n, out
    assert f"RANK {n - 1}: own RuntimeError: boom" in lines, out
    for line in lines[:n - 1]:
        assert "Error" in line and f"rank {n - 1} gave up (RuntimeError: boom)" in line, out
    assert f"OK {scenario} p={n}" in out, out


@pytest.mark.parametrize("n, mode", [(2, "auto"), (3, "fallback")])
def test_a_rank_that_never_arrives_is_named_in_a_timeout(mpirun, tmp_path, n, mode):
    """A rank that does not reach a collective step of the file within
    BAOBAB_TIMEOUT: the others raise baobab.TimeoutError naming the step and
    that rank instead of waiting for ever; when it comes, it raises an Error
    saying they gave up on it (it must not join a collective they left)."""
    out = mpirun(n, MPI_DIR / "io_write.py", "late", tmp_path, mode, timeout=60,
                 env={"BAOBAB_TIMEOUT": "1.5"}).stdout
    lines = sorted(l for l in out.splitlines() if l.startswith("RANK"))
    assert len(lines) == n, out
    for line in lines[:n - 1]:
        assert f"TimeoutError: " in line and f"write('/y'): rank(s) {n - 1} did not arrive within 1.5 s" in line, out
    # the late rank learns that the others gave up on it
    assert "gave up (TimeoutError" in lines[n - 1] and "did not arrive" in lines[n - 1], out
    assert f"OK late p={n}" in out, out


def _describe(path):
    """Everything that must agree between the two modes' files."""
    skip = {"created", "io_mode"}
    out = {}
    with h5py.File(path, "r") as h:
        out["/"] = {k: v for k, v in h.attrs.items() if k not in skip}

        def visit(name, obj):
            d = {"attrs": dict(obj.attrs.items())}
            if isinstance(obj, h5py.Dataset):
                d.update(shape=obj.shape, dtype=obj.dtype.str, chunks=obj.chunks, fletcher32=obj.fletcher32,
                         compression=obj.compression, filters=obj.id.get_create_plist().get_nfilters(),
                         data=obj[()].tobytes() if obj.shape else obj[()])
            out[name] = d
        h.visititems(visit)
    return out


@pytest.mark.parametrize("n", [2, 3])
def test_mpio_and_fallback_files_identical(mpirun, tmp_path, n):
    """With parallel h5py (the Open MPI stack in CI): the two modes write the
    same file. With serial h5py (the default stack): asking for mpio is a clear
    error on every rank, and the fallback is what parallel=None picks."""
    if not HAVE_MPIO:
        code = f"""
            import baobab, baobab.io as bio
            c = baobab.init()
            said = ""
            try:
                bio.File(r"{tmp_path}/x.h5", "w", c, parallel=True)
            except baobab.InvalidArgument as e:
                said = f"REFUSED {{e}}"
            with bio.File(r"{tmp_path}/y.h5", "w", c) as f:
                said += f" MODE {{f.parallel}}"
            open(rf"{tmp_path}/rank{{c.rank}}.txt", "w").write(said)
        """
        mpirun(n, code, timeout=120)
        for r in range(n):
            said = (tmp_path / f"rank{r}.txt").read_text()
            assert said.startswith("REFUSED parallel=True needs h5py built with MPI") and said.endswith("MODE False")
        assert not (tmp_path / "x.h5").exists() and (tmp_path / "y.h5").exists()
        return
    a = mpirun(n, MPI_DIR / "io_write.py", "uneven", tmp_path, "mpio", timeout=120).stdout
    b = mpirun(n, MPI_DIR / "io_write.py", "uneven", tmp_path, "fallback", timeout=120).stdout
    assert "io_mode=mpio" in a and "io_mode=serial" in b, (a, b)
    da = _describe(tmp_path / f"uneven-{n}-mpio.h5")
    db = _describe(tmp_path / f"uneven-{n}-fallback.h5")
    assert da.keys() == db.keys()
    for k in da:
        assert repr(da[k]) == repr(db[k]), k

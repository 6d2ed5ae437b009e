"""Faults in baobab.io and baobab.checkpoint (issue 11, items 6, 12 and 15).

- Set-up errors (a directory that cannot be made or written, rank 0's bad
  attributes, a directory only one rank cannot see) and errors in a
  Checkpointer's later steps raise on every rank, naming the rank and the
  cause, instead of leaving the others in a barrier or a broadcast.
- A full disk (a small tmpfs, mounted here: the tests run as root) gives every
  rank one baobab.Error naming ENOSPC and the file, leaves nothing behind, and
  the process exits normally: HDF5 used to crash (SIGSEGV) closing a file whose
  last write had failed.
- The temporary file a killed writer (kill -9) left is removed when the same
  output is opened again, and never the temporary of a writer that is alive.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import h5py  # noqa: E402  (a test dependency)

import baobab  # noqa: E402
from baobab import io  # noqa: E402
from baobab.checkpoint import Checkpointer  # noqa: E402
from conftest import HERE, MPI_DIR, clean_env, mpi_flavor, mpiexec_path  # noqa: E402

HAVE_MPIO = bool(h5py.get_config().mpi)
REPO = HERE.parent


def _mount_tmpfs(path, options):
    """Mounts a tmpfs on `path`, or skips: the only reason it may fail is privilege."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        pytest.skip("cannot mount a tmpfs here (needs root): no mount command")
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {out.stderr.strip()}")
    return path


def _umount(path):
    subprocess.run(["umount", str(path)], capture_output=True, timeout=30)
    if os.path.ismount(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs, unmounted afterwards."""
    d = _mount_tmpfs(tmp_path / "small", "size=1m")
    yield d
    _umount(d)


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs (root cannot write there either)."""
    d = _mount_tmpfs(tmp_path / "ro", "ro,size=64k")
    yield d
    _umount(d)


def rank_lines(out, n):
    lines = sorted(l for l in out.splitlines() if l.startswith("RANK"))
    assert [l.split(":")[0] for l in lines] == [f"RANK {i}" for i in range(n)], out
    return lines


def assert_clean_exit(out):
    for bad in ("Segmentation fault", "signal 11", "SIGSEGV", "core dumped", "Traceback"):
        assert bad not in out, out


# ---- item 6: errors during set-up and in a Checkpointer's steps reach every rank ------------

BAD_DIRS = {
    "under_a_file": lambda tmp: (tmp / "plain-file", "NotADirectoryError"),
    "under_proc": lambda tmp: (Path("/proc/baobab-no-such-dir"), "FileNotFoundError"),
}


def _bad_dir(kind, tmp_path, request):
    if kind == "read_only":
        return request.getfixturevalue("read_only_dir") / "ck", "Read-only file system"
    d, cause = BAD_DIRS[kind](tmp_path)
    if kind == "under_a_file":
        d.write_text("not a directory")
    return d / "ck", cause


@pytest.mark.parametrize("kind", ["under_a_file", "under_proc", "read_only"])
@pytest.mark.parametrize("n", [2, 3])
def test_checkpoint_directory_rank0_cannot_create(mpirun, tmp_path, request, n, kind):
    """Rank 0 cannot create the checkpoint directory: it used to raise alone
    while the other ranks waited in the constructor's barrier for ever."""
    bad, cause = _bad_dir(kind, tmp_path, request)
    out = mpirun(n, MPI_DIR / "checkpoint_mpi.py", tmp_path, "baddir", bad, timeout=90,
                 env={"BAOBAB_TIMEOUT": "60"}).stdout
    for line in rank_lines(out, n):
        assert "CheckpointError: cannot create the checkpoint directory" in line, out
        assert f"{bad}: rank 0: " in line and cause in line, out
    assert f"OK baddir p={n}" in out, out
    assert_clean_exit(out)


@pytest.mark.parametrize("kind", ["under_a_file", "under_proc"])
@pytest.mark.parametrize("n", [2, 3])
def test_checkpoint_directory_only_rank1_cannot_see(mpirun, tmp_path, request, n, kind):
    """Only rank 1 fails (its path is not the directory rank 0 made, as on a
    node that does not share rank 0's file system): every rank raises, naming
    rank 1, instead of rank 1 failing later alone (load reads on every rank)."""
    bad, cause = _bad_dir(kind, tmp_path, request)
    out = mpirun(n, MPI_DIR / "checkpoint_mpi.py", tmp_path, "baddir", f"rank1:{bad}", timeout=90,
                 env={"BAOBAB_TIMEOUT": "60"}).stdout
    for line in rank_lines(out, n):
        assert "is not usable: rank 1: " in line and cause in line, out
        assert "rank 0:" not in line and "rank 2:" not in line, out
    assert f"OK baddir p={n}" in out, out


@pytest.mark.parametrize("kind", ["under_a_file", "under_proc", "read_only"])
@pytest.mark.parametrize("n, mode", [(2, "auto"), (3, "fallback")])
def test_file_in_a_directory_that_cannot_be_written(mpirun, tmp_path, request, n, mode, kind):
    bad, cause = _bad_dir(kind, tmp_path, request)
    if kind == "read_only":
        bad = bad.parent  # the mount itself: the directory exists, nothing can be created in it
    out = mpirun(n, MPI_DIR / "io_write.py", "badpath", tmp_path, mode, bad, timeout=90,
                 env={"BAOBAB_TIMEOUT": "60"}).stdout
    for line in rank_lines(out, n):
        assert "Error: cannot create" in line and str(bad) in line, out
        assert ("rank 0: " in line or "every rank: " in line) and cause in line, out
    assert f"OK badpath p={n}" in out, out


@pytest.mark.parametrize("n, mode", [(2, "auto"), (3, "fallback")])
def test_file_setup_error_on_rank0_reaches_every_rank(mpirun, tmp_path, n, mode):
    """Attributes rank 0 cannot store: rank 0 used to raise before the set-up
    broadcast, and the others waited for it until BAOBAB_TIMEOUT."""
    t0 = time.monotonic()
    out = mpirun(n, MPI_DIR / "io_write.py", "badattrs", tmp_path, mode, timeout=90,
                 env={"BAOBAB_TIMEOUT": "40"}).stdout
    for line in rank_lines(out, n):
        assert "InvalidArgument" in line and "rank 0: attrs: TypeError" in line, out
    assert f"OK badattrs p={n}" in out, out
    assert time.monotonic() - t0 < 30, "the error must not wait for BAOBAB_TIMEOUT"


@pytest.mark.parametrize("n", [2, 3])
def test_checkpoint_latest_and_load_agree(mpirun, tmp_path, n):
    """latest() when rank 0 cannot list the directory (rank 0 raised, the others
    waited in the broadcast for ever); load() of a file only rank 1 cannot read
    (rank 1 raised, the others went on)."""
    out = mpirun(n, MPI_DIR / "checkpoint_mpi.py", tmp_path, "steps", timeout=90,
                 env={"BAOBAB_TIMEOUT": "60"}).stdout
    lines = out.splitlines()
    load = sorted(l for l in lines if l.startswith("RANK") and ": load: " in l)
    latest = sorted(l for l in lines if l.startswith("RANK") and ": latest: " in l)
    assert len(load) == n and len(latest) == n, out
    for line in load:
        assert "CheckpointError: cannot load checkpoint" in line and "rank 1: " in line, out
        assert "FileNotFoundError" in line or "No such file" in line, out
    for line in latest:
        assert "CheckpointError: cannot list the checkpoints" in line and "rank 0: FileNotFoundError" in line, out
    assert f"OK steps p={n}" in out, out


def test_checkpoint_rank_that_never_arrives_is_named(mpirun, tmp_path):
    n = 3
    out = mpirun(n, MPI_DIR / "checkpoint_mpi.py", tmp_path, "late", timeout=90,
                 env={"BAOBAB_TIMEOUT": "1.5"}).stdout
    lines = rank_lines(out, n)
    for line in lines[:n - 1]:
        assert "TimeoutError" in line and f"rank(s) {n - 1} did not arrive within 1.5 s" in line, out
    assert "gave up (TimeoutError" in lines[n - 1] and "did not arrive" in lines[n - 1], out
    assert f"OK late p={n}" in out, out


def test_checkpoint_constructor_rank_that_never_arrives(mpirun, tmp_path):
    """A rank that reaches Checkpointer() long after the others: they used to wait
    in the constructor's MPI_Comm_dup (and barrier) for as long as it took."""
    n = 3
    out = mpirun(n, MPI_DIR / "checkpoint_mpi.py", tmp_path, "late-init", timeout=90,
                 env={"BAOBAB_TIMEOUT": "1.5"}).stdout
    lines = rank_lines(out, n)
    for line in lines[:n - 1]:
        assert "TimeoutError" in line and "some rank(s) did not arrive within 1.5 s" in line, out
    assert "TimeoutError" in lines[n - 1] and "set-up: rank(s) 0, 1 did not arrive" in lines[n - 1], out
    assert f"OK late-init p={n}" in out, out


def test_timeout_parsing(monkeypatch):
    import math
    for raw, want in (("", 300.0), ("2.5", 2.5), ("inf", math.inf), ("none", math.inf), ("0", math.inf)):
        monkeypatch.setenv("BAOBAB_TIMEOUT", raw)
        assert io._timeout() == want
    for raw in ("soon", "-1"):
        monkeypatch.setenv("BAOBAB_TIMEOUT", raw)
        with pytest.raises(baobab.InvalidArgument, match="BAOBAB_TIMEOUT"):
            io._timeout()


# ---- item 12: a full disk --------------------------------------------------------------

def _check_full(out, n, scenario, what):
    for line in rank_lines(out, n):
        assert "Error: " in line and "no space left on device (ENOSPC)" in line, out
        assert what in line, out
    assert f"OK {scenario} p={n}" in out, out
    left = [l for l in out.splitlines() if l.startswith("LEFT")]
    assert left and left[0] in ("LEFT []", "LEFT ['filler']"), out  # no file, no temporary
    assert_clean_exit(out)


@pytest.mark.parametrize("variant", ["big", "many", "nocheck", "fill"])
@pytest.mark.parametrize("n", [1, 2])
def test_file_on_a_full_disk(mpirun, small_disk, n, variant):
    """io.File on a 1 MiB tmpfs: one write larger than the disk, writes that fit
    one by one but not together, the same with the free-space check off (HDF5
    itself meets the full disk, mid-write: serial h5py, the fallback mode), and
    a disk another process fills before the close. Before the fix the process
    crashed (SIGSEGV) in HDF5 while closing, with no error line."""
    mode = "fallback" if variant == "nocheck" else "auto"
    scenario = f"full-{variant}"
    out = mpirun(n, MPI_DIR / "io_write.py", scenario, small_disk, mode, timeout=120,
                 env={"BAOBAB_TIMEOUT": "60"}).stdout
    _check_full(out, n, scenario, str(small_disk / f"full-{n}.h5"))


# "nocheck" on 2 ranks only where a Checkpointer writes in the fallback mode:
# through parallel HDF5 a collective write that fails cannot be survived, and the
# free-space check is what keeps it from meeting a full disk (docs/io.md);
# test_file_on_a_full_disk runs "nocheck" at 2 ranks in the fallback mode on every stack.
@pytest.mark.parametrize("variant, n", [("big", 1), ("big", 2), ("many", 1), ("many", 2), ("nocheck", 1)]
                         + ([] if HAVE_MPIO else [("nocheck", 2)]))
def test_checkpoint_on_a_full_disk(mpirun, small_disk, n, variant):
    scenario = f"full-{variant}"
    out = mpirun(n, MPI_DIR / "checkpoint_mpi.py", small_disk, scenario, timeout=120,
                 env={"BAOBAB_TIMEOUT": "60"}).stdout
    _check_full(out, n, scenario, str(small_disk / "checkpoint-0000000001.h5"))


def test_nbody_app_on_a_full_disk(tmp_path):
    """The N-body app writing to a 256 KiB tmpfs: it must fail with an error
    naming ENOSPC and a nonzero exit code, not crash (it used to segfault
    mid-write with no error line)."""
    d = _mount_tmpfs(tmp_path / "tiny", "size=256k")
    try:
        cmd = [mpiexec_path(), "-n", "2"] + (["--oversubscribe"] if mpi_flavor() == "openmpi" else [])
        cmd += [sys.executable, str(REPO / "apps" / "nbody" / "nbody.py"), "--ic", "plummer", "--n", "256",
                "--t-end", "0.25", "--dt-out", "0.0625", "--out", str(d / "run")]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=clean_env({"BAOBAB_TIMEOUT": "60"}),
                           cwd=str(REPO))
        out = p.stdout + p.stderr
        assert p.returncode not in (0, 139, -11) and p.returncode < 128, (p.returncode, out)
        assert "no space left on device (ENOSPC)" in out, out
        assert "Traceback" not in out, out
        errors = [l for l in out.splitlines() if l.startswith("nbody: error:")]
        assert len(errors) == 1 and "ENOSPC" in errors[0], out
        for bad in ("Segmentation fault", "signal 11", "SIGSEGV"):
            assert bad not in out, out
        assert not [n for n in os.listdir(d / "run" / "checkpoints") if ".tmp." in n], out
    finally:
        _umount(d)


# ---- item 15: temporaries of killed writers ----------------------------------------------

def _popen_mpi(n, *args):
    cmd = [mpiexec_path(), "-n", str(n)] + (["--oversubscribe"] if mpi_flavor() == "openmpi" else [])
    cmd += [sys.executable, *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=clean_env({"BAOBAB_TIMEOUT": "60"}), start_new_session=True, cwd=str(HERE))


def _descendants(pid):
    """The processes below `pid` (MPI launchers put each rank in a session of its own)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as fh:
                    stat = fh.read()
                children.setdefault(int(stat[stat.rindex(b")") + 2:].split()[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        return stat[stat.rindex(b")") + 2:].split()[0] in (b"Z", b"X")
    except OSError:
        return True


def _kill9(proc):
    """SIGKILL to the launcher and every rank at once, as a batch system kills a job."""
    pids = _descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGKILL)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.communicate(timeout=60)
    end = time.monotonic() + 30
    while not all(_gone(p) for p in pids) and time.monotonic() < end:
        time.sleep(0.05)


def _wait_for(pred, proc, timeout=90):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        if proc.poll() is not None:
            pytest.fail(f"the writer exited with {proc.returncode}: {proc.stdout.read()}")
        time.sleep(0.02)
    return False


def _temporaries(d, out="out.h5"):
    return sorted(n for n in os.listdir(d) if n.startswith(out + ".tmp."))


@pytest.mark.parametrize("mode", ["auto", "fallback"])
def test_killed_file_writer_temporary_removed_on_restart(mpirun, tmp_path, mode):
    """Two 2-rank jobs write out.h5 at once; one is killed with SIGKILL inside
    `with io.File(...)` and leaves out.h5.tmp.<host>.<pid>. The next job writing
    out.h5 removes that one, and not the temporary of the job still writing."""
    live = _popen_mpi(2, MPI_DIR / "io_write.py", "killme", tmp_path, mode)
    killed = None
    try:
        assert _wait_for(lambda: len(_temporaries(tmp_path)) == 1, live), "no temporary appeared"
        (alive,) = _temporaries(tmp_path)
        killed = _popen_mpi(2, MPI_DIR / "io_write.py", "killme", tmp_path, mode)
        assert _wait_for(lambda: len(_temporaries(tmp_path)) == 2, killed), "no second temporary appeared"
        time.sleep(0.5)  # inside its `with` block, after the write
        _kill9(killed)
        (stale,) = set(_temporaries(tmp_path)) - {alive}
        assert stale.startswith(f"out.h5.tmp.{io._HOST}."), stale
        out = mpirun(2, MPI_DIR / "io_write.py", "restart", tmp_path, mode, timeout=120).stdout
        assert "OK restart p=2" in out, out
        assert _temporaries(tmp_path) == [alive], "the killed writer's temporary must go, the live one's stay"
        assert live.poll() is None
    finally:
        for p in (live, killed):
            if p is not None and p.poll() is None:
                _kill9(p)
    out = mpirun(2, MPI_DIR / "io_write.py", "restart", tmp_path, mode, timeout=120).stdout
    assert _temporaries(tmp_path) == [], out  # that writer is gone now too


def test_killed_checkpoint_save_temporary_removed_on_restart(tmp_path):
    """kill -9 of a 2-rank job in the middle of a checkpoint save: the next
    Checkpointer on the directory removes the temporary, and the newest
    complete checkpoint is still found."""
    d = tmp_path / "ck"
    for attempt in range(3):
        job = _popen_mpi(2, MPI_DIR / "checkpoint_mpi.py", d, "killme")
        try:
            assert _wait_for(lambda: d.exists() and any(n.endswith(".h5") for n in os.listdir(d)), job)
            seen = _wait_for(lambda: any(".tmp." in n for n in os.listdir(d)), job, timeout=60)
            _kill9(job)
        finally:
            if job.poll() is None:
                _kill9(job)
        left = [n for n in os.listdir(d) if ".tmp." in n]
        if seen and left:
            break
    else:
        pytest.fail("could not kill the job while a checkpoint was being written")
    code = f"""
        import os, baobab
        from mpi4py import MPI
        from baobab.checkpoint import Checkpointer
        ck = Checkpointer(r"{d}", MPI.COMM_WORLD)
        print("LEFT", sorted(n for n in os.listdir(r"{d}") if ".tmp." in n), flush=True)
        print("STEP", ck.load()["step"], flush=True)
    """
    out = run_mpi_inline(2, code)
    assert "LEFT []" in out, (left, out)
    assert "STEP " in out, out


def run_mpi_inline(n, code):
    from conftest import run_mpi
    return run_mpi(n, code, timeout=120).stdout


def _touch(path, mtime):
    path.write_bytes(b"partial")
    os.utime(path, (mtime, mtime))


def test_stale_temporary_rule(tmp_path, request):
    """Which temporaries of out.h5 opening it removes: this host's whose process
    is gone (or whose PID now belongs to a process started after the file was
    last written), other hosts' last written before this process started;
    never a running writer's on this host, nor another host's written since,
    nor names in another form, nor other outputs' temporaries."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    # a running process started before the write (not the parent: that may be
    # PID 1, which the rule below treats as started after the write)
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    request.addfinalizer(alive.kill)
    now = time.time()
    me, host = os.getpid(), io._HOST
    started = io._start_time(me) or now
    keep = {
        f"out.h5.tmp.{host}.{alive.pid}": now,                  # running, started before the write
        "out.h5.tmp.other-node.4242": now + 3600,               # another host, written after this started
        "out.h5.tmp.12345": now - 86400,                          # not this scheme (no host)
        f"other.h5.tmp.{host}.{dead.pid}": now - 60,             # another output
    }
    gone = {
        f"out.h5.tmp.{host}.{dead.pid}": now - 60,               # process gone
        f"out.h5.tmp.{host}.1": started - 86400 * 365 * 30,      # PID 1 started after this was written
        "out.h5.tmp.other-node.4243": started - 600,             # another host, older than this process
    }
    for name, t in {**keep, **gone}.items():
        _touch(tmp_path / name, t)
    with io.File(tmp_path / "out.h5", "w") as f:
        f.write("x", np.arange(3))
    left = sorted(os.listdir(tmp_path))
    assert left == sorted(list(keep) + ["out.h5"]), left


def test_stale_temporary_locked_is_kept(tmp_path):
    """A temporary someone holds a lock on (HDF5 locks the files it writes) is
    in use, whatever its name says."""
    import fcntl
    p = tmp_path / "out.h5.tmp.other-node.77"
    _touch(p, time.time() - 86400)
    with open(p, "rb") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        with io.File(tmp_path / "out.h5", "w") as f:
            f.write("x", np.arange(3))
        assert p.exists()
    with io.File(tmp_path / "out.h5", "w") as f:
        f.write("x", np.arange(3))
    assert not p.exists()


def test_same_output_twice_in_one_process(tmp_path):
    with io.File(tmp_path / "a.h5", "w") as f:
        with pytest.raises(baobab.InvalidArgument, match="already open for writing in this process"):
            io.File(tmp_path / "a.h5", "w")
        f.write("x", np.arange(3))
    assert io.File(tmp_path / "a.h5").read("x").tolist() == [0, 1, 2]
    assert sorted(os.listdir(tmp_path)) == ["a.h5"]

"""HDF5 output for distributed arrays: one file per job, written collectively.

    from baobab import io
    with io.File("out.h5", "w", comm, attrs={"run": "A"}) as f:
        f.write("/particles/x", x_local)        # this rank's rows; offsets from an allgather
        f.write_global("/grid/edges", edges)    # rank 0's copy
    io.File("out.h5").read("/particles/x")       # reads need no MPI

Two write modes produce identical files: h5py's "mpio" driver (every rank writes
its own hyperslab, collective I/O) when h5py was built with MPI, and a fallback
in which rank 0 holds the file open with serial h5py and the other ranks send it
their rows. Files appear under their final name only once every rank has
finished: they are written to ``path + ".tmp.<host>.<pid>"`` (rank 0's) and
renamed by rank 0 on close; opening the path again removes the temporaries
that killed writers left behind (see _remove_stale_temporaries). h5py is
imported on first use, not with baobab.

Every collective step (set-up included) is a collective of the file's own
baobab.Communicator and agrees on success: an error on one rank raises on
every rank, a rank that does not arrive within BAOBAB_TIMEOUT is named in a
TimeoutError, and a rank that raises on its own aborts that communicator so
that the others raise at once, naming it (see _Steps, which baobab.checkpoint
uses too).
"""
import datetime
import errno
import functools
import json
import math
import os
import pickle
import re
import socket
import subprocess
import threading
import time
import warnings
from math import prod
from pathlib import Path

import numpy as np

from ._errors import Error, InvalidArgument, TimeoutError

CHUNK_BYTES = 1 << 20       # target chunk size (Fletcher32 needs chunking)
BLOCK_BYTES = 64 << 20      # rows per message / per collective write round, in bytes
_WRITABLE_KINDS = "biufcSV?"


def _h5py():
    try:
        import h5py
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("baobab.io needs h5py: pip install h5py (or a parallel build, see docs/io.md)") from e
    return h5py


def _mpi_comm(comm):
    """None, an mpi4py communicator, or a baobab.Communicator -> None or an mpi4py communicator."""
    if comm is None:
        return None
    inner = getattr(comm, "mpi_comm", None)
    if inner is not None:
        return inner
    from mpi4py import MPI
    if not isinstance(comm, MPI.Comm):
        raise InvalidArgument(f"comm must be None, an mpi4py communicator or a baobab.Communicator, "
                              f"got {type(comm).__name__}")
    return comm


@functools.lru_cache(maxsize=None)
def _git_commit():
    here = Path(__file__).resolve().parent
    for cwd in (os.getcwd(), str(here)):
        try:
            out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                 timeout=5)
        except (OSError, subprocess.SubprocessError):
            continue
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    return "unknown"


def _attr_value(v):
    if isinstance(v, (dict, list, tuple)):
        return json.dumps(v, sort_keys=True)
    if v is None:
        return "null"
    return v


def _py_attr(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    if isinstance(v, np.generic):
        return v.item()
    return v


def provenance(extra=None, *, comm=None):
    """The root attributes a new file gets: creator, baobab_version, git_commit,
    created (ISO 8601 UTC), mpi_ranks (the size of `comm`; 1 without one), plus
    `extra` (dict/list values as JSON; its keys override)."""
    from . import __version__
    ranks = _mpi_comm(comm).Get_size() if comm is not None else 1
    d = {
        "creator": "baobab",
        "baobab_version": __version__,
        "git_commit": _git_commit(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "mpi_ranks": int(ranks),
    }
    for k, v in (extra or {}).items():
        d[str(k)] = _attr_value(v)
    return d


def chunk_shape(shape, dtype):
    """The chunk rule both modes use: whole rows, about CHUNK_BYTES per chunk; None
    (contiguous, no filters) for scalars and empty datasets."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0 or 0 in shape:
        return None
    row = np.dtype(dtype).itemsize * prod(shape[1:])
    rows = min(shape[0], max(1, CHUNK_BYTES // max(row, 1)))
    return (rows,) + shape[1:]


def _parents(name):
    parts = [p for p in name.split("/") if p]
    return {"/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)}


def _norm(name):
    if not isinstance(name, str) or not name.strip("/"):
        raise InvalidArgument(f"dataset/group name must be a non-empty str, got {name!r}")
    return "/" + name.strip("/")


# ---- deadlines and the collective-step protocol ---------------------------------
_STRANDED = []  # (communicator, request) of collectives some rank never joined: MPI can neither free nor cancel them
_DEFAULT_TIMEOUT = 300.0


def _timeout(comm=None):
    """Seconds a collective step may wait for the other ranks: the timeout of a
    baobab.Communicator, else BAOBAB_TIMEOUT (default 300); "inf", "none" and 0
    mean no deadline (math.inf)."""
    config = getattr(comm, "config", None) if hasattr(comm, "mpi_comm") else None
    if callable(config):
        try:
            t = float(config()["timeout"])
        except Exception:  # noqa: BLE001  (no configuration: fall back on the environment)
            t = None
        if t is not None:
            return math.inf if (t <= 0 or math.isnan(t)) else t
    raw = os.environ.get("BAOBAB_TIMEOUT", "").strip()
    if not raw:
        return _DEFAULT_TIMEOUT
    if raw.lower() in ("inf", "infinity", "none"):
        return math.inf
    try:
        t = float(raw)
    except ValueError:
        raise InvalidArgument(f"BAOBAB_TIMEOUT must be a number of seconds (or inf, none, 0: no deadline), "
                              f"got {raw!r}") from None
    if math.isnan(t) or t < 0:
        raise InvalidArgument(f"BAOBAB_TIMEOUT must be >= 0 seconds (0, inf or none: no deadline), got {raw!r}")
    return math.inf if t == 0 else t


def _why(e):
    """One line: the exception's type and message (HDF5's span several lines),
    led by the cause when it is a full disk or quota."""
    msg = " ".join(str(e).split())
    # HDF5's driver messages carry a time stamp and buffer details nobody needs
    msg = re.sub(r"time = [^,]*, ", "", msg)
    msg = re.sub(r", buf = 0x[0-9a-fA-F]+(, [a-z -]+ = \d+)*", "", msg)
    text = f"{type(e).__name__}: {msg}"
    code = getattr(e, "errno", None)
    for num, name, words in ((errno.ENOSPC, "ENOSPC", "no space left on device"),
                             (getattr(errno, "EDQUOT", -1), "EDQUOT", "disk quota exceeded")):
        if code == num or f"errno = {num}," in msg or words in msg.lower():
            return f"{words} ({name}): {text}"
    return text


def _wait_all(reqs, deadline):
    """Tests `reqs` until all completed (True) or the deadline passed (False), yielding the CPU."""
    from mpi4py import MPI
    delay = 1e-5
    while not MPI.Request.Testall(reqs):
        if time.monotonic() > deadline:
            return False
        time.sleep(delay)
        delay = min(2 * delay, 1e-3)
    return True


def _dup_comm(base, what, limit):
    """A duplicate of `base`, made with a non-blocking MPI_Comm_idup so that a
    rank that never comes holds the others for at most `limit` seconds."""
    comm, req = base.Idup()
    if not _wait_all([req], time.monotonic() + limit):
        _STRANDED.append((comm, req))
        raise TimeoutError(f"{what}: some rank(s) did not arrive within {limit:g} s (BAOBAB_TIMEOUT); which ones "
                           "cannot be told before this object's communicator exists")
    return comm


def _names(ranks):
    return ", ".join(map(str, ranks))


def _every_rank(e):
    """Marks an exception that every rank raises together, from what a step
    agreed on: no rank waits for this one, so nobody needs to be told."""
    e.baobab_every_rank = True
    return e


def _raised_everywhere(e):
    return bool(getattr(e, "baobab_every_rank", False))


class _Steps:
    """The collective steps of one object (a File in mode "w", a Checkpointer).

    Every step is a baobab collective on the object's own baobab Communicator
    (created over `base` with the object's deadline), so it inherits the
    communicator's failure protocol: a rank that does not arrive within
    `limit` seconds is named in a TimeoutError on the others; a rank that stops
    on its own (an exception of its own) calls give_up(why), which aborts the
    communicator, and every other rank raises Error naming it ("rank R gave up
    (why)") at the step it waits in or at its next one, instead of waiting in
    a collective it will never join. A rank that arrives after the others gave
    up on it learns so at that step. Data and HDF5's own collectives use
    `data`, a duplicate of `base` made after the steps' communicator, so that
    a step always comes before and after them."""

    def __init__(self, base, label, limit, what=None):
        self.label = label
        self.limit = limit
        self.comm = None  # the baobab.Communicator of the steps
        self.data = None  # the object's own duplicate of `base`
        self.rank, self.size = 0, 1
        if base is None:
            return
        from .comm import Communicator
        try:
            self.comm = Communicator(base, timeout=limit, _p2p=False)
        except TimeoutError as e:
            raise self._setup_timeout(e, what) from None
        self.rank, self.size = self.comm.rank, self.comm.size
        self._thread = threading.get_ident()
        try:
            self.data = _dup_comm(base, what, limit)
        except BaseException:
            self.give_up(f"no duplicate of the communicator within {limit:g} s")
            self.free()
            raise

    def _setup_timeout(self, e, what):
        missing = tuple(getattr(e, "missing", ()) or ())
        if missing:  # this rank came to the set-up after the others had given up
            out = TimeoutError(f"{self.label}: set-up: rank(s) {_names(missing)} did not arrive within "
                               f"{self.limit:g} s (BAOBAB_TIMEOUT)")
        else:
            out = TimeoutError(f"{what}: some rank(s) did not arrive within {self.limit:g} s (BAOBAB_TIMEOUT); "
                               "which ones cannot be told before this object's communicator exists")
        out.op, out.missing = "set-up", missing
        return out

    def _failed(self, what, e):
        """The error a failed step raises here: the communicator's, in this object's words."""
        prefix = f"{self.label}: {what}: "
        if not isinstance(e, TimeoutError):
            out = type(e)(prefix + str(e))
        else:
            missing = tuple(getattr(e, "missing", ()) or ())
            if self.rank in missing:
                out = TimeoutError(f"{prefix}the other ranks gave up ({type(e).__name__}: {e}) before this "
                                   "rank arrived")
            elif missing:
                out = TimeoutError(f"{prefix}rank(s) {_names(missing)} did not arrive within {self.limit:g} s "
                                   "(BAOBAB_TIMEOUT)")
            else:
                out = TimeoutError(f"{prefix}did not complete within {self.limit:g} s (BAOBAB_TIMEOUT): {e}")
            out.op, out.seq, out.missing = what, getattr(e, "seq", None), missing
        return out

    def _run(self, what, fn):
        if self._thread != threading.get_ident():
            # the object is used from another thread now (one at a time, as with
            # mpi4py): its communicator's collectives are started from there
            self.comm.bind_thread()
            self._thread = threading.get_ident()
        try:
            return fn()
        except Error as e:
            raise self._failed(what, e) from None

    def barrier(self, what):
        """Returns once every rank has reached this step."""
        if self.comm is not None:
            self._run(what, self.comm.barrier)

    def allgather(self, obj, what):
        """Every rank's `obj` (pickled), in rank order: two baobab allgathers
        (the sizes, then the bytes)."""
        if self.comm is None:
            return [obj]
        data = np.frombuffer(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL), np.uint8)
        out, rows = self._run(what, lambda: self.comm.allgatherv(data))
        ends = np.cumsum(rows)
        return [pickle.loads(out[int(e) - int(n):int(e)].tobytes()) for e, n in zip(ends, rows)]

    def bcast(self, obj, what):
        """Rank 0's `obj` on every rank. An allgather (the other ranks add
        None): no rank leaves a step before every rank has come to it, so the
        ranks waiting in one step are all in the same collective, and a
        timeout names the rank that did not come (in a broadcast the other
        ranks could go on to the next step while the root still waits)."""
        return self.allgather(obj if self.rank == 0 else None, what)[0]

    def give_up(self, why):
        """This rank stops taking part: every other rank is told. A
        communicator that has failed told them already (aborting it again does
        nothing); an error every rank raised together needs no notice (see
        _every_rank), and must not send one: a rank that is still completing
        the step that agreed on it would raise this notice instead."""
        if self.comm is not None:
            self.comm.abort(why)

    def free(self):
        if self.comm is not None:
            try:
                self.comm.free()
            except Exception:  # noqa: BLE001
                pass
            self.comm = None
        if self.data is not None:
            try:
                self.data.Free()
            except Exception:  # noqa: BLE001
                pass
            self.data = None


def _agreed_message(errs):
    """[(rank, message)] -> one message: the message alone when every rank said
    the same, else each rank's."""
    if len(errs) > 1 and len({e for _, e in errs}) == 1:
        return f"every rank: {errs[0][1]}"
    return "; ".join(f"rank {r}: {e}" for r, e in errs)


# ---- temporary files ---------------------------------------------------------------
_HOST = re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname() or "localhost")
_OPEN_TMPS = set()  # absolute paths of the temporary files this process is writing now
_IMPORTED = time.time()
_STALE_MARGIN = 1.0  # seconds of slack in comparisons of process start times and file times


def _temporary_path(path):
    """Where a File writes `path` until close: the writer (rank 0) by host and PID."""
    return f"{path}.tmp.{_HOST}.{os.getpid()}"


@functools.lru_cache(maxsize=None)
def _boot_time():
    try:
        with open("/proc/stat", "rb") as fh:
            for line in fh:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _proc_stat(pid):
    """(state, start time in seconds since the epoch) of process `pid` of this
    host from /proc, or None where /proc cannot tell."""
    boot = _boot_time()
    if boot is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        fields = stat[stat.rindex(b")") + 2:].split()  # from field 3, the state
        return fields[0].decode(), boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
    except (OSError, ValueError, IndexError):
        return None


def _start_time(pid):
    st = _proc_stat(pid)
    return st[1] if st else None


def _writer_alive(pid, mtime):
    """Whether process `pid` of this host may still be writing a file last modified at
    `mtime`: it is running (not a zombie) and started before that (a PID reused by a
    later process is not the writer)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # running, as another user
    st = _proc_stat(pid)
    if st is None:
        return True
    state, start = st
    return state not in ("Z", "X", "x") and start <= mtime + _STALE_MARGIN


def _locked(path):
    """True when some process holds a lock on `path` (HDF5 locks the files it
    writes where the file system supports it); False when none or unknown."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def _server_clock_offset(directory):
    """The file system's clock minus this host's (file times come from the server on
    network file systems), measured with a short-lived file; 0 if it cannot be made."""
    import tempfile
    try:
        fd, probe = tempfile.mkstemp(prefix=".baobab-clock.", dir=directory)
    except OSError:
        return 0.0
    try:
        return os.fstat(fd).st_mtime - time.time()
    finally:
        os.close(fd)
        _unlink(probe)


def _remove_stale_temporaries(directory, owns):
    """Removes the temporary files in `directory` that writers which are gone left
    behind, for the outputs whose names `owns(name)` accepts; returns their paths.

    A temporary is "<output>.tmp.<host>.<pid>" (see _temporary_path). It is stale,
    and removed, when nobody holds a lock on it and
      - <host> is this host: no process <pid> is running, or the one running
        started after the file was last modified (the PID was reused), or it is
        this process but not a File this process has open;
      - <host> is another host: it was last modified before this process started
        (by the file system's clock). A writer on another host cannot be asked; a
        File still open there on the same output, whose last write is older than
        this job, is the one case this rule gets wrong (two jobs writing one
        output would overwrite each other's results anyway).
    Names in any other form are left alone."""
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    me = os.getpid()
    started = _start_time(me) or _IMPORTED
    offset = None
    removed = []
    for name in names:
        out, sep, writer = name.rpartition(".tmp.")
        if not sep or not out or not owns(out):
            continue
        host, dot, pid = writer.rpartition(".")
        if not dot or not host or not pid.isdigit():
            continue
        path = os.path.join(directory, name)
        if os.path.abspath(path) in _OPEN_TMPS:
            continue
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            continue
        if host == _HOST:
            stale = int(pid) == me or not _writer_alive(int(pid), mtime)
        else:
            if offset is None:
                offset = _server_clock_offset(directory)
            stale = mtime < started + offset - _STALE_MARGIN
        if not stale or _locked(path):
            continue
        try:
            os.unlink(path)
            removed.append(path)
        except FileNotFoundError:
            pass
        except OSError as e:
            warnings.warn(f"cannot remove the stale temporary file {path}: {e}", stacklevel=3)
    return removed


def _free_bytes(directory):
    """Bytes this process may still write in `directory`'s file system, or None when
    the file system does not say (statvfs reports no blocks)."""
    try:
        st = os.statvfs(directory or ".")
    except (OSError, AttributeError):
        return None
    if not st.f_blocks:
        return None
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return (st.f_bfree if root else st.f_bavail) * st.f_frsize


_SPACE_SLACK = 16 << 10  # bytes of HDF5 metadata a write may add besides its data (headers, chunk index)


def _space_needed(nbytes):
    return int(nbytes) + int(nbytes) // 256 + _SPACE_SLACK


def _size(n):
    return f"{n / 2**20:.2f} MiB" if n >= 1 << 20 else f"{n / 2**10:.1f} KiB"


class File:
    """An HDF5 file written collectively over `comm` (mode "w") or read (mode "r")."""

    def __init__(self, path, mode="r", comm=None, *, attrs=None, parallel=None):
        h5py = _h5py()
        self.path = os.fspath(path)
        self.mode = mode
        self._f = None
        self._names = set()
        self._closed = False
        self._comm = None
        self._steps = _Steps(None, self.path, math.inf)
        self._failed = None  # why the file cannot be completed (a write failed on some rank)
        self._abandoned = False
        self._written = 0  # data bytes handed to HDF5 so far (rank 0: for the free-space check)
        self.tmp_path = None
        base = _mpi_comm(comm)
        if mode == "r":
            self._comm = base
            self.rank = base.Get_rank() if base is not None else 0
            self.size = base.Get_size() if base is not None else 1
            self.parallel = False
            self._f = h5py.File(self.path, "r")
            return
        if mode != "w":
            raise InvalidArgument(f"mode must be 'r' or 'w', got {mode!r}")
        limit = _timeout(comm)
        if base is not None:
            # the collective steps (a baobab communicator), and the data communicator
            self._steps = _Steps(base, self.path, limit, f"{self.path}: File(..., 'w')")
            self._comm = self._steps.data
        self.rank = self._comm.Get_rank() if self._comm is not None else 0
        self.size = self._comm.Get_size() if self._comm is not None else 1
        self.parallel = False
        try:
            self._setup(h5py, attrs, parallel)
        except BaseException as e:
            self._abort(f"{type(e).__name__}: {e}"[:200], tell=not _raised_everywhere(e))
            raise

    def _setup(self, h5py, attrs, parallel):
        """Collective: every rank gets the same error if any rank fails."""
        bad_arg = None
        have_mpi = bool(h5py.get_config().mpi)
        if parallel is None:
            self.parallel = have_mpi and self.size > 1
        elif parallel:
            if not have_mpi:
                bad_arg = ("parallel=True needs h5py built with MPI (h5py.get_config().mpi is False); "
                           "see docs/io.md or pass parallel=None/False")
            elif self._comm is None:
                bad_arg = "parallel=True needs a communicator"
            self.parallel = True
        else:
            self.parallel = False
        if bad_arg and self._comm is None:
            raise InvalidArgument(bad_arg)
        payload, err = None, None
        if self.rank == 0:
            tmp = _temporary_path(self.path)
            if os.path.abspath(tmp) in _OPEN_TMPS:
                bad_arg = bad_arg or f"{self.path} is already open for writing in this process"
            try:
                payload = (tmp, provenance(attrs, comm=self._comm))
            except Exception as e:  # noqa: BLE001  (attrs that cannot be stored)
                bad_arg = bad_arg or f"attrs: {type(e).__name__}: {e}"
        got = self._steps.allgather((bad_arg, payload), "set-up")
        bad = [(r, g[0]) for r, g in enumerate(got) if g[0]]
        if bad:
            if len(bad) == self.size and len({e for _, e in bad}) == 1:
                raise _every_rank(InvalidArgument(bad[0][1]))
            raise _every_rank(InvalidArgument(f"{self.path}: " + _agreed_message(bad)))
        self.tmp_path, prov = got[0][1]
        prov["io_mode"] = "mpio" if self.parallel else "serial"
        if self.rank == 0:
            d = os.path.dirname(os.path.abspath(self.path))
            own = os.path.basename(self.path)
            _remove_stale_temporaries(d, lambda out: out == own)
            _OPEN_TMPS.add(os.path.abspath(self.tmp_path))
        try:
            if self.parallel:
                self._f = h5py.File(self.tmp_path, "w", driver="mpio", comm=self._comm)
            elif self.rank == 0:
                self._f = h5py.File(self.tmp_path, "w")
        except Exception as e:  # noqa: BLE001
            err = _why(e)
            if self.parallel and self.rank == 0:  # MPI-IO's words for it are vague: ask the OS
                err += _posix_reason(self.tmp_path)
        self._agree(err, f"cannot create {self.tmp_path}")
        self._apply_attrs("/", prov)

    # ---- collective helpers ------------------------------------------------
    def _arrive(self, what):
        self._steps.barrier(what)

    def _bcast(self, obj, what="bcast"):
        return self._steps.bcast(obj, what)

    def _allgather(self, obj, what="allgather"):
        return self._steps.allgather(obj, what)

    def _agree(self, err, what, cls=Error, step="set-up"):
        """Every rank raises if any rank failed (errors: None or a message)."""
        errs = self._allgather(err, step)
        bad = [(r, e) for r, e in enumerate(errs) if e]
        if bad:
            raise _every_rank(cls(f"{what}: " + _agreed_message(bad)))

    def _write_failed(self, name, bad):
        """Every rank raises after a write that failed on the ranks in `bad`: the
        file cannot be completed any more, and is abandoned (see _abandon)."""
        self._failed = f"writing {name} failed: " + _agreed_message(bad)
        self._abandon()
        raise _every_rank(Error(f"{self.path}: {self._failed}"))

    def _abandon(self):
        """Prepares a file that will not be kept for a close that cannot fail.

        HDF5 writes cached chunks and metadata when a dataset or the file is
        closed. When that write fails (a full disk) the close fails too, but
        HDF5 has already freed the object and keeps its ID: the process crashes
        at the next flush or close of the file, or at exit (H5D__flush_all_cb,
        H5F__close_cb). So before any close that may follow a write error,
        every descriptor this process holds on the temporary file (h5py's sec2
        driver's, or MPI-IO's in mpio mode) is pointed at one anonymous
        in-memory file: what HDF5 still writes (at most its caches) goes there,
        every close succeeds, and the temporary file is removed afterwards.
        Where no descriptor can be found (no /proc, an MPI-IO driver without
        POSIX files), rank 0 truncates the temporary file instead, which frees
        the space its data took for the metadata the close writes."""
        if self._abandoned or self.mode != "w" or self._f is None:
            return
        self._abandoned = True
        fds = set()
        try:
            ref = os.stat(self.tmp_path)
        except OSError:
            ref = None
        if not self.parallel:
            try:  # the sec2 driver's descriptor
                fd = self._f.id.get_vfd_handle()
                if isinstance(fd, int) and (ref is None or os.path.samestat(os.fstat(fd), ref)):
                    fds.add(fd)
                    ref = os.fstat(fd)
            except Exception:  # noqa: BLE001
                pass
        if ref is not None:
            fds |= _descriptors_of(ref)
        if fds:
            sink = _memory_file()
            try:
                for fd in fds:
                    os.dup2(sink, fd)  # closes the temporary file's descriptor; HDF5 keeps writing to fd
            finally:
                os.close(sink)
        elif self.rank == 0 and self.tmp_path:
            try:
                os.truncate(self.tmp_path, 0)
            except OSError:
                pass
        if not self.parallel:
            # A flush that failed leaves HDF5's metadata cache marked as being
            # flushed (its skip list enabled), and closing then fails ("slist
            # already enabled?"). The next flush fails once more and clears that
            # mark; the one after writes the caches (now into memory).
            for _ in range(2):
                try:
                    self._f.flush()
                    break
                except Exception:  # noqa: BLE001
                    pass

    def _writes_here(self):
        return self.parallel or self.rank == 0

    def _check_writable(self):
        if self.mode != "w":
            raise InvalidArgument(f"{self.path} is open read-only")
        if self._closed:
            raise InvalidArgument(f"{self.path} is closed")
        if self._failed:  # on every rank
            raise _every_rank(Error(f"{self.path}: cannot be written any more: {self._failed}"))

    def _need_handle(self):
        if self._closed:
            raise InvalidArgument(f"{self.path} is closed")
        if self._f is None:
            raise Error(f"{self.path}: in fallback write mode only rank 0 holds the file; "
                        "read it after close() with File(path, 'r')")
        return self._f

    def _set_attrs_local(self, name, attrs):
        if not self._writes_here():
            return
        obj = self._f.require_group(name) if name not in self._f else self._f[name]
        for k, v in attrs.items():
            obj.attrs[str(k)] = _attr_value(v)

    def _room(self):
        """Rank 0: the bytes the file system can still take, less the data this file
        was given that HDF5 still holds in its caches; None if unknown."""
        if self.rank != 0 or not self.tmp_path:
            return None
        free = _free_bytes(os.path.dirname(os.path.abspath(self.tmp_path)))
        if free is None:
            return None
        try:
            on_disk = os.stat(self.tmp_path).st_blocks * 512
        except (OSError, AttributeError):
            on_disk = self._written
        return free - max(0, self._written - on_disk)

    def _no_room(self, name, nbytes, room, outcome="nothing was written"):
        """The message for a write that cannot fit, or None."""
        if room is None or _space_needed(nbytes) <= room:
            return None
        d = os.path.dirname(os.path.abspath(self.tmp_path))
        return (f"{self.path}: writing {name}: no space left on device (ENOSPC) in {d}: it needs about "
                f"{_size(_space_needed(nbytes))}, {_size(max(room, 0))} are free; {outcome}")

    # ---- writing -------------------------------------------------------------
    def write(self, name, local, *, axis0_counts=None, attrs=None, checksum=True, chunks=True):
        """Collective: `local` is this rank's rows of dataset `name` (axis 0 is split)."""
        self._check_writable()
        name = _norm(name)
        local = np.asarray(local)
        if not local.flags.c_contiguous:
            local = np.ascontiguousarray(local)
        exists = (name in self._f) if (self.rank == 0 and self._f is not None) else False
        metas = self._allgather((tuple(local.shape), local.dtype.str, local.dtype.descr
                                 if local.dtype.fields else None, exists, dict(attrs) if attrs else None,
                                 self._room()),
                                f"write({name!r})")
        if metas[0][3]:
            raise _every_rank(InvalidArgument(f"{self.path}: {name} already exists"))
        if any(len(m[0]) == 0 for m in metas):
            raise _every_rank(InvalidArgument(
                f"write({name!r}): every rank must pass an array with at least one dimension; shapes: "
                + ", ".join(f"rank {r}: {m[0]}" for r, m in enumerate(metas))))
        ref = metas[0]
        bad = [r for r, m in enumerate(metas) if m[0][1:] != ref[0][1:] or m[1] != ref[1] or m[2] != ref[2]]
        if bad:
            raise _every_rank(InvalidArgument(
                f"write({name!r}): ranks disagree on shape beyond axis 0 or dtype (ranks {bad} differ from rank 0): "
                + ", ".join(f"rank {r}: shape {m[0]} dtype {m[1]}" for r, m in enumerate(metas))))
        if local.dtype.kind not in _WRITABLE_KINDS or local.dtype.hasobject:  # the same dtype on every rank
            raise _every_rank(InvalidArgument(f"write({name!r}): dtype {local.dtype} cannot be stored in HDF5 by "
                                              f"baobab.io (kinds {_WRITABLE_KINDS!r} only)"))
        counts = [m[0][0] for m in metas]
        if axis0_counts is not None:
            given = [int(c) for c in axis0_counts]
            if given != counts:
                raise InvalidArgument(f"write({name!r}): axis0_counts {given} do not match the ranks' rows {counts}")
        nbytes = sum(counts) * local.dtype.itemsize * prod(ref[0][1:])
        full = self._no_room(name, nbytes, ref[5])
        if full:  # every rank has rank 0's numbers: all raise, before HDF5 writes anything
            raise _every_rank(Error(full))
        self._write_rows(name, local, counts, ref[0][1:], attrs=metas[0][4], checksum=checksum, chunks=chunks)

    def _layout(self, name, shape, dtype, checksum, chunks):
        if chunks is True or (chunks is None and checksum):
            ch = chunk_shape(shape, dtype)
        elif chunks in (False, None):
            ch = None
            if checksum and 0 not in shape and len(shape):
                raise InvalidArgument(f"{name}: checksum=True needs chunking; pass chunks=True or checksum=False")
        else:
            ch = tuple(int(c) for c in chunks)
        return ch, bool(checksum and ch is not None)

    def _write_rows(self, name, local, counts, rest, *, attrs, checksum, chunks):
        dtype = local.dtype
        total = sum(counts)
        shape = (total,) + tuple(rest)
        ch, fl = self._layout(name, shape, dtype, checksum, chunks)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        row_bytes = max(1, dtype.itemsize * prod(rest))
        block = max(1, BLOCK_BYTES // row_bytes)
        err = None
        if self.parallel:
            # Each collective call is agreed on before the next one: a rank whose
            # write failed must not leave the others inside a collective write.
            dset = None
            try:
                dset = self._f.create_dataset(name, shape=shape, dtype=dtype, chunks=ch, fletcher32=fl)
            except Exception as e:  # noqa: BLE001
                err = _why(e)
            self._agree_write(err, name)
            h5py = _h5py()
            dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
            dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)
            rounds = max(-(-c // block) for c in counts) if total else 0
            mine = counts[self.rank]
            for i in range(rounds):
                a, b = min(i * block, mine), min((i + 1) * block, mine)
                part = local[a:b]
                try:
                    fspace = dset.id.get_space()
                    mspace = h5py.h5s.create_simple(part.shape)
                    if b > a:
                        fspace.select_hyperslab((int(offsets[self.rank]) + a,) + (0,) * len(rest), part.shape)
                    else:
                        fspace.select_none()
                        mspace.select_none()
                    dset.id.write(mspace, fspace, part, dxpl=dxpl)
                except Exception as e:  # noqa: BLE001
                    err = _why(e)
                self._agree_write(err, name)
        else:
            from mpi4py import MPI
            if self.rank == 0:
                # After an error the file is abandoned at once (_abandon), while
                # `dset` is still open: its close must not fail later.
                dset = None
                try:
                    dset = self._f.create_dataset(name, shape=shape, dtype=dtype, chunks=ch, fletcher32=fl)
                    if counts[0]:
                        dset[0:counts[0]] = local
                except Exception as e:  # noqa: BLE001
                    err = _why(e)
                    self._abandon()
                for r in range(1, self.size):
                    for a in range(0, counts[r], block):
                        b = min(a + block, counts[r])
                        buf = np.empty((b - a,) + tuple(rest), dtype)
                        self._comm.Recv([buf.reshape(-1).view(np.uint8), MPI.BYTE], source=r, tag=7)
                        if err is None:  # keep receiving after a failure so that no rank blocks
                            try:
                                dset[offsets[r] + a:offsets[r] + b] = buf
                            except Exception as e:  # noqa: BLE001
                                err = _why(e)
                                self._abandon()
                if err is None:
                    try:  # the chunks HDF5 still caches reach the disk now, while the dataset is open
                        dset.id.flush()
                    except Exception as e:  # noqa: BLE001
                        err = _why(e)
                        self._abandon()
                self._written += total * row_bytes
                del dset
            else:
                for a in range(0, counts[self.rank], block):
                    part = np.ascontiguousarray(local[a:a + block])
                    self._comm.Send([part.reshape(-1).view(np.uint8), MPI.BYTE], dest=0, tag=7)
            err = self._bcast(err, f"write({name!r})")
            if err:
                self._write_failed(name, [(0, err)])
        self._names |= _parents(name)
        if attrs:
            self._apply_attrs(name, attrs)

    def _agree_write(self, err, name):
        errs = self._allgather(err, f"write({name!r})")
        bad = [(r, e) for r, e in enumerate(errs) if e]
        if bad:
            self._write_failed(name, bad)

    def write_global(self, name, array, *, attrs=None, checksum=True):
        """Collective: a dataset every rank holds; rank 0's copy is written (the
        other ranks' `array` is not read). 0-d arrays and str (as fixed-length
        UTF-8, which parallel HDF5 can write) are stored unchunked."""
        self._check_writable()
        name = _norm(name)
        meta = None
        if self.rank == 0:
            if isinstance(array, str):
                meta = ("str", array, attrs)
            else:
                a = np.asarray(array)
                if a.dtype.kind not in _WRITABLE_KINDS or a.dtype.hasobject:
                    meta = ("error", f"write_global({name!r}): dtype {a.dtype} cannot be stored")
                elif self._f is not None and name in self._f:
                    meta = ("error", f"{self.path}: {name} already exists")
                elif self._no_room(name, a.nbytes, self._room()):
                    meta = ("full", self._no_room(name, a.nbytes, self._room()))
                elif a.ndim == 0:
                    meta = ("scalar", a, attrs)
                else:
                    meta = ("array", a.shape, a.dtype, attrs)
        meta = self._bcast(meta, f"write_global({name!r})")
        if meta[0] == "error":
            raise _every_rank(InvalidArgument(meta[1]))
        if meta[0] == "full":
            raise _every_rank(Error(meta[1]))
        if meta[0] in ("str", "scalar"):
            err = None
            if self._writes_here():
                dset = None
                try:
                    data = meta[1]
                    if meta[0] == "str":   # fixed-length UTF-8: parallel HDF5 cannot write variable-length data
                        b = data.encode("utf-8")
                        data = np.array(b, dtype=_h5py().string_dtype("utf-8", max(1, len(b))))
                    dset = self._f.create_dataset(name, data=data)
                    if not self.parallel:
                        dset.id.flush()
                except Exception as e:  # noqa: BLE001
                    err = _why(e)
                    if not self.parallel:
                        self._abandon()
                del dset
            errs = (self._allgather(err, f"write_global({name!r})") if self.parallel
                    else [self._bcast(err, f"write_global({name!r})")])
            bad = [(r if self.parallel else 0, e) for r, e in enumerate(errs) if e]
            if bad:
                self._write_failed(name, bad)
            self._names |= _parents(name)
            if meta[2]:
                self._apply_attrs(name, meta[2])
            return
        _, shape, dtype, attrs = meta
        if self.rank == 0:
            local = np.ascontiguousarray(np.asarray(array))
        else:
            local = np.empty((0,) + tuple(shape[1:]), dtype)
        counts = [shape[0]] + [0] * (self.size - 1)
        self._write_rows(name, local, counts, tuple(shape[1:]), attrs=attrs, checksum=checksum, chunks=True)

    def set_attrs(self, name, attrs):
        """Collective: attributes of a group or dataset (a missing name becomes a
        group); rank 0's values are written."""
        self._check_writable()
        name = "/" if name in ("/", "") else _norm(name)
        self._apply_attrs(name, self._bcast(dict(attrs) if self.rank == 0 else None, f"set_attrs({name!r})"))

    def _apply_attrs(self, name, attrs):
        """Writes attributes every rank agrees on (collective in mpio mode)."""
        err = None
        try:
            self._set_attrs_local(name, attrs)
        except Exception as e:  # noqa: BLE001
            err = _why(e)
            if not self.parallel:
                self._abandon()
        errs = (self._allgather(err, f"set_attrs({name!r})") if self.parallel
                else [self._bcast(err, f"set_attrs({name!r})")])
        bad = [(r if self.parallel else 0, e) for r, e in enumerate(errs) if e]
        if bad:
            self._failed = f"attributes of {name}: " + _agreed_message(bad)
            self._abandon()
            raise _every_rank(Error(f"{self.path}: {self._failed}"))
        if name != "/":
            self._names |= _parents(name)

    def write_units(self, units):
        """Attributes of group "/Units", e.g. {"Unit length in cgs (U_L)": 3.085678e24}."""
        self.set_attrs("/Units", units)

    # ---- reading -------------------------------------------------------------
    def read(self, name, start=None, stop=None):
        """Rows [start, stop) of dataset `name` as a numpy array."""
        f = self._need_handle()
        dset = f[name]
        try:
            if dset.ndim == 0:
                v = dset[()]
                info = _h5py().check_string_dtype(dset.dtype)
                return v.decode(info.encoding) if info is not None and isinstance(v, bytes) else v
            return dset[slice(start, stop)]
        except OSError as e:
            raise OSError(f"{self.path}: reading {name} rows [{start}, {stop}): {e}") from e

    def read_distributed(self, name, comm=None):
        """This rank's even share of axis 0 (the first N % size ranks get one extra row)."""
        c = _mpi_comm(comm) if comm is not None else self._comm
        rank, size = (c.Get_rank(), c.Get_size()) if c is not None else (0, 1)
        n = self._need_handle()[name].shape[0]
        base, extra = divmod(n, size)
        start = rank * base + min(rank, extra)
        return self.read(name, start, start + base + (1 if rank < extra else 0))

    def attrs(self, name="/"):
        f = self._need_handle()
        return {k: _py_attr(v) for k, v in f[name].attrs.items()}

    def __contains__(self, name):
        if self._f is not None and not self._closed:
            return name in self._f
        return _norm(name) in self._names

    # ---- closing -------------------------------------------------------------
    def _free_comm(self):
        if self.mode == "w":
            self._steps.free()
            self._comm = None
            if self.rank == 0 and self.tmp_path:
                _OPEN_TMPS.discard(os.path.abspath(self.tmp_path))

    def close(self):
        """Collective in mode "w": flush, fsync, and (after every rank is done)
        rename the temporary file to `path`."""
        if self._closed:
            return
        if self.mode == "r":
            self._f.close()
            self._closed = True
            return
        try:  # before HDF5's collective close: a rank that gave up is not coming
            self._arrive("close")
        except Error as e:
            self._abort(f"{type(e).__name__}: {e}"[:200])  # closes the HDF5 file with the others, removes the temporary
            raise
        err, skip = None, bool(self._failed)
        if self._failed and self.rank == 0:  # every rank knows; rank 0 says it
            err = f"not completed: {self._failed}"
        if self.parallel and not skip:
            # Parallel HDF5 cannot recover from a failed collective flush (the
            # ranks' metadata caches no longer agree: the close then hangs or
            # crashes), so there must be room for the metadata before it is tried.
            full = None
            if self.rank == 0:
                try:
                    cached = int(self._f.id.get_mdc_size()[2])
                except Exception:  # noqa: BLE001
                    cached = 0
                full = self._no_room("its metadata", cached, self._room(), "the file is given up")
            full = self._bcast(full, "close")
            if full:
                skip = True
                err = full if self.rank == 0 else None
        if not skip and self._f is not None:
            try:  # what HDF5 caches reaches the disk here, before any close: a full disk shows now
                self._f.flush()
            except Exception as e:  # noqa: BLE001
                err = _why(e)
        if self.parallel and not skip and any(self._allgather(err, "close")):
            skip = True  # HDF5's close is collective: every rank abandons the file together
        if skip or err is not None:
            self._abandon()
        try:
            if self._f is not None:
                self._f.close()
        except Exception as e:  # noqa: BLE001
            err = err or _why(e)
        self._f = None
        if self.rank == 0 and err is None and not skip:
            try:
                _fsync_file(self.tmp_path)
            except Exception as e:  # noqa: BLE001
                err = _why(e)
        self._closed = True
        try:
            errs = self._allgather(err, "close")  # the barrier: every rank has finished writing
        except Error as e:
            self._steps.give_up(f"{type(e).__name__}: {e}"[:200])
            if self.rank == 0:
                _unlink(self.tmp_path)
            self._free_comm()
            raise
        bad = [(r, e) for r, e in enumerate(errs) if e]
        if self.rank == 0:
            if bad:
                _unlink(self.tmp_path)
            else:
                try:
                    os.replace(self.tmp_path, self.path)
                    _fsync_dir(os.path.dirname(os.path.abspath(self.path)))
                except Exception as e:  # noqa: BLE001
                    bad = [(0, f"rename: {_why(e)}")]
                    _unlink(self.tmp_path)
        try:
            bad = self._bcast(bad, "close")
        except Error as e:
            self._steps.give_up(f"{type(e).__name__}: {e}"[:200])
            raise
        finally:
            self._free_comm()
        if bad:
            raise Error(f"closing {self.path}: " + _agreed_message(bad))

    def _abort(self, why="an exception", tell=True):
        """After an exception: close without renaming; rank 0 removes the temporary file.
        A rank that raised on its own (`tell`) first tells the others (they may
        be waiting at a collective step: they raise there and come here too).
        In mpio mode closing is collective (HDF5's rule), so every rank gets here."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "w" and tell:
            self._steps.give_up(why)
        if self._f is not None:
            self._abandon()
            try:
                self._f.close()
            except Exception:  # noqa: BLE001
                pass
        self._f = None
        if self.mode == "w" and self.rank == 0 and self.tmp_path:
            _unlink(self.tmp_path)
        self._free_comm()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self._abort(f"{exc_type.__name__}: {exc}"[:200], tell=not _raised_everywhere(exc))
        return False

    def __repr__(self):
        state = "closed" if self._closed else self.mode
        return f"<baobab.io.File {self.path!r} ({state}, {'mpio' if self.parallel else 'serial'})>"


def _descriptors_of(ref):
    """This process's open descriptors of the file whose os.stat is `ref` (from /proc/self/fd)."""
    out = set()
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return out
    for n in names:
        try:
            fd = int(n)
            if os.path.samestat(os.fstat(fd), ref):
                out.add(fd)
        except (OSError, ValueError):
            continue
    return out


def _memory_file():
    """A descriptor of an anonymous file in memory (where an abandoned file's last writes go)."""
    if hasattr(os, "memfd_create"):
        try:
            return os.memfd_create("baobab-abandoned", getattr(os, "MFD_CLOEXEC", 0))
        except OSError:
            pass
    import tempfile
    with tempfile.TemporaryFile() as fh:
        return os.dup(fh.fileno())


def _unlink(p):
    """Removes a file if it is there; cleanup never raises (it may run while an error is raised)."""
    if not os.path.lexists(p):
        return
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass
    except OSError as e:
        warnings.warn(f"cannot remove {p}: {e}", stacklevel=2)


def _posix_reason(path):
    """' (the OS says: ...)' when creating `path` fails here, else ''."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return ""
    except OSError as e:
        return f" (the OS says: {_why(e)})"
    os.close(fd)
    _unlink(path)
    return ""


def _fsync_file(path):
    """Flushes a file's data to its device (raises OSError)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(d):
    try:
        fd = os.open(d or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)

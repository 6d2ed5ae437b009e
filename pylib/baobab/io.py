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
finished: they are written to ``path + ".tmp.<jobid-or-pid>"`` and renamed by
rank 0 on close. h5py is imported on first use, not with baobab.
"""
import datetime
import json
import os
import subprocess
import time
import functools
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


_STRANDED = []  # (communicator, request) of arrival barriers a rank that gave up never joined


class File:
    """An HDF5 file written collectively over `comm` (mode "w") or read (mode "r")."""

    def __init__(self, path, mode="r", comm=None, *, attrs=None, parallel=None):
        h5py = _h5py()
        self.path = os.fspath(path)
        self.mode = mode
        self._f = None
        self._names = set()
        self._closed = False
        base = _mpi_comm(comm)
        if mode == "r":
            self._comm = base
            self.rank = base.Get_rank() if base is not None else 0
            self.size = base.Get_size() if base is not None else 1
            self.parallel = False
            self.tmp_path = None
            self._f = h5py.File(self.path, "r")
            return
        if mode != "w":
            raise InvalidArgument(f"mode must be 'r' or 'w', got {mode!r}")
        self._comm = base.Dup() if base is not None else None
        # A second duplicate carries the arrival barriers of the collective
        # steps and the notices of a rank that gave up (see _arrive, _abort).
        self._ctl = self._comm.Dup() if self._comm is not None else None
        self._told = False  # this rank raised because another gave up (or all raised together)
        self._pending = None  # an arrival barrier not yet complete
        self._step = 0  # collective steps so far
        self._abort_tag = 7301
        self.rank = self._comm.Get_rank() if self._comm is not None else 0
        self.size = self._comm.Get_size() if self._comm is not None else 1
        have_mpi = bool(h5py.get_config().mpi)
        if parallel is None:
            self.parallel = have_mpi and self.size > 1
        elif parallel:
            if not have_mpi:
                self._free_comm()
                raise InvalidArgument("parallel=True needs h5py built with MPI (h5py.get_config().mpi is False); "
                                      "see docs/io.md or pass parallel=None/False")
            if self._comm is None:
                raise InvalidArgument("parallel=True needs a communicator")
            self.parallel = True
        else:
            self.parallel = False
        jobid = os.environ.get("SLURM_JOB_ID") or os.environ.get("PBS_JOBID") or str(os.getpid())
        prov = provenance(attrs, comm=self._comm) if self.rank == 0 else None
        # each file's notices carry their own tag: a notice nobody received
        # (every rank raised at once) cannot stop a later file whose control
        # communicator reuses this one's context
        tag = int.from_bytes(os.urandom(2), "little") % 30000 + 2000 if self.rank == 0 else None
        jobid, prov, self._abort_tag = self._bcast((jobid, prov, tag))
        prov["io_mode"] = "mpio" if self.parallel else "serial"
        self.tmp_path = f"{self.path}.tmp.{jobid}"
        err = None
        try:
            if self.parallel:
                self._f = h5py.File(self.tmp_path, "w", driver="mpio", comm=self._comm)
            elif self.rank == 0:
                self._f = h5py.File(self.tmp_path, "w")
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {e}"
        self._agree(err, f"cannot create {self.tmp_path}")
        try:
            self._set_attrs_local("/", prov)
        except BaseException:
            self._abort()
            raise

    # ---- collective helpers ------------------------------------------------
    def _arrive(self, what):
        """Before each collective step: wait (yielding) until every rank has
        reached it. A rank that raised inside the `with` block, in a step of
        its own, or after waiting BAOBAB_TIMEOUT seconds (default 300) sends a
        notice from _abort instead of arriving: the others raise Error naming
        it rather than wait for ever in a collective it will never join.

        Two barriers: the first one completes for a rank that arrives after the
        others gave up (they had joined it), the second one cannot, so that
        rank waits there until the notice they sent reaches it."""
        if self._ctl is None:
            return
        from mpi4py import MPI
        self._step += 1
        limit = float(os.environ.get("BAOBAB_TIMEOUT", "300") or 300)
        deadline = time.monotonic() + limit
        for _ in range(2):
            req = self._ctl.Ibarrier()
            self._pending = req
            delay = 1e-5
            status = MPI.Status()
            while not req.Test():
                if self._ctl.Iprobe(source=MPI.ANY_SOURCE, tag=self._abort_tag, status=status):
                    src = status.Get_source()
                    why = self._ctl.recv(source=src, tag=self._abort_tag)
                    self._told = True
                    raise Error(f"{self.path}: {what}: rank {src} gave up ({why}); every rank stops writing")
                if time.monotonic() > deadline:
                    missing = self._missing(MPI, limit)
                    if missing:  # this rank gives up: _abort tells the others
                        raise TimeoutError(f"{self.path}: {what}: rank(s) {', '.join(map(str, missing))} did "
                                           f"not arrive within {limit:g} s (BAOBAB_TIMEOUT)")
                    raise TimeoutError(f"{self.path}: {what}: every rank reached this step, but not within "
                                       f"{limit:g} s of one another (BAOBAB_TIMEOUT)")
                time.sleep(delay)
                delay = min(2 * delay, 1e-3)
            self._pending = None

    def _missing(self, MPI, limit):
        """After a timeout: the ranks that are waiting too say so to every rank,
        and those not heard from within a short grace time are the missing ones."""
        tag = self._abort_tag + 1
        for r in range(self.size):
            if r != self.rank:
                self._ctl.isend((self.rank, self._step), dest=r, tag=tag)
        heard = {self.rank}
        end = time.monotonic() + min(2.0, max(0.2, limit / 10))
        status = MPI.Status()
        while len(heard) < self.size and time.monotonic() < end:
            if self._ctl.Iprobe(source=MPI.ANY_SOURCE, tag=tag, status=status):
                rank, step = self._ctl.recv(source=status.Get_source(), tag=tag)
                if step == self._step:
                    heard.add(rank)
            else:
                time.sleep(1e-3)
        return sorted(set(range(self.size)) - heard)

    def _bcast(self, obj, what="bcast"):
        if self._comm is None:
            return obj
        self._arrive(what)
        return self._comm.bcast(obj, root=0)

    def _allgather(self, obj, what="allgather"):
        if self._comm is None:
            return [obj]
        self._arrive(what)
        return self._comm.allgather(obj)

    def _agree(self, err, what, cls=Error):
        """Every rank raises if any rank failed (errors: None or a message)."""
        errs = self._allgather(err)
        bad = [(r, e) for r, e in enumerate(errs) if e]
        if bad:
            self._told = True  # every rank raises this one: nobody to tell
            raise cls(f"{what}: " + "; ".join(f"rank {r}: {e}" for r, e in bad))

    def _writes_here(self):
        return self.parallel or self.rank == 0

    def _check_writable(self):
        if self.mode != "w":
            raise InvalidArgument(f"{self.path} is open read-only")
        if self._closed:
            raise InvalidArgument(f"{self.path} is closed")

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
                                 if local.dtype.fields else None, exists, dict(attrs) if attrs else None),
                                f"write({name!r})")
        if metas[0][3]:
            raise InvalidArgument(f"{self.path}: {name} already exists")
        if any(len(m[0]) == 0 for m in metas):
            raise InvalidArgument(f"write({name!r}): every rank must pass an array with at least one "
                                  "dimension; shapes: " + ", ".join(f"rank {r}: {m[0]}" for r, m in enumerate(metas)))
        ref = metas[0]
        bad = [r for r, m in enumerate(metas) if m[0][1:] != ref[0][1:] or m[1] != ref[1] or m[2] != ref[2]]
        if bad:
            raise InvalidArgument(
                f"write({name!r}): ranks disagree on shape beyond axis 0 or dtype (ranks {bad} differ from rank 0): "
                + ", ".join(f"rank {r}: shape {m[0]} dtype {m[1]}" for r, m in enumerate(metas)))
        if local.dtype.kind not in _WRITABLE_KINDS or local.dtype.hasobject:
            raise InvalidArgument(f"write({name!r}): dtype {local.dtype} cannot be stored in HDF5 by baobab.io "
                                  f"(kinds {_WRITABLE_KINDS!r} only)")
        counts = [m[0][0] for m in metas]
        if axis0_counts is not None:
            given = [int(c) for c in axis0_counts]
            if given != counts:
                raise InvalidArgument(f"write({name!r}): axis0_counts {given} do not match the ranks' rows {counts}")
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
            dset = self._f.create_dataset(name, shape=shape, dtype=dtype, chunks=ch, fletcher32=fl)
            h5py = _h5py()
            dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
            dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)
            rounds = max(-(-c // block) for c in counts) if total else 0
            mine = counts[self.rank]
            for i in range(rounds):
                a, b = min(i * block, mine), min((i + 1) * block, mine)
                part = local[a:b]
                fspace = dset.id.get_space()
                mspace = h5py.h5s.create_simple(part.shape)
                if b > a:
                    fspace.select_hyperslab((int(offsets[self.rank]) + a,) + (0,) * len(rest), part.shape)
                else:
                    fspace.select_none()
                    mspace.select_none()
                dset.id.write(mspace, fspace, part, dxpl=dxpl)
        else:
            from mpi4py import MPI
            if self.rank == 0:
                dset = None
                try:
                    dset = self._f.create_dataset(name, shape=shape, dtype=dtype, chunks=ch, fletcher32=fl)
                    if counts[0]:
                        dset[0:counts[0]] = local
                except Exception as e:  # noqa: BLE001
                    err = f"{type(e).__name__}: {e}"
                for r in range(1, self.size):
                    for a in range(0, counts[r], block):
                        b = min(a + block, counts[r])
                        buf = np.empty((b - a,) + tuple(rest), dtype)
                        self._comm.Recv([buf.reshape(-1).view(np.uint8), MPI.BYTE], source=r, tag=7)
                        if err is None:  # keep receiving after a failure so that no rank blocks
                            try:
                                dset[offsets[r] + a:offsets[r] + b] = buf
                            except Exception as e:  # noqa: BLE001
                                err = f"{type(e).__name__}: {e}"
            else:
                for a in range(0, counts[self.rank], block):
                    part = np.ascontiguousarray(local[a:a + block])
                    self._comm.Send([part.reshape(-1).view(np.uint8), MPI.BYTE], dest=0, tag=7)
            err = self._bcast(err)
            if err:
                raise Error(f"{self.path}: writing {name} failed on rank 0: {err}")
        self._names |= _parents(name)
        if attrs:
            self._apply_attrs(name, attrs)

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
                elif a.ndim == 0:
                    meta = ("scalar", a, attrs)
                else:
                    meta = ("array", a.shape, a.dtype, attrs)
        meta = self._bcast(meta, f"write_global({name!r})")
        if meta[0] == "error":
            raise InvalidArgument(meta[1])
        if meta[0] in ("str", "scalar"):
            err = None
            if self._writes_here():
                try:
                    data = meta[1]
                    if meta[0] == "str":   # fixed-length UTF-8: parallel HDF5 cannot write variable-length data
                        b = data.encode("utf-8")
                        data = np.array(b, dtype=_h5py().string_dtype("utf-8", max(1, len(b))))
                    self._f.create_dataset(name, data=data)
                except Exception as e:  # noqa: BLE001
                    err = f"{type(e).__name__}: {e}"
            if not self.parallel:
                err = self._bcast(err)
            if err:
                raise Error(f"{self.path}: writing {name} failed: {err}")
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
            err = f"{type(e).__name__}: {e}"
        if not self.parallel:
            err = self._bcast(err)
        if err:
            raise Error(f"{self.path}: attributes of {name}: {err}")
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
            if getattr(self, "_pending", None) is not None:
                # A barrier some rank never joined: MPI forbids freeing or
                # cancelling a pending collective request, so the request and
                # its communicator are kept for the life of the process.
                _STRANDED.append((self._ctl, self._pending))
                self._ctl = self._pending = None
            for c in (self._comm, getattr(self, "_ctl", None)):
                if c is not None:
                    try:
                        c.Free()
                    except Exception:  # noqa: BLE001
                        pass
            self._comm = self._ctl = None

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
        except Error:
            self._abort()  # closes the HDF5 file with the rank that gave up, removes the temporary
            raise
        err = None
        try:
            if self._f is not None:
                self._f.flush()
                self._f.close()
            self._f = None
            if self.rank == 0:
                fd = os.open(self.tmp_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        except Exception as e:  # noqa: BLE001
            err = f"{type(e).__name__}: {e}"
        self._closed = True
        errs = self._allgather(err, "close")  # the barrier: every rank has finished writing
        bad = [(r, e) for r, e in enumerate(errs) if e]
        if self.rank == 0:
            if bad:
                _unlink(self.tmp_path)
            else:
                try:
                    os.replace(self.tmp_path, self.path)
                    _fsync_dir(os.path.dirname(os.path.abspath(self.path)))
                except Exception as e:  # noqa: BLE001
                    bad = [(0, f"rename: {type(e).__name__}: {e}")]
                    _unlink(self.tmp_path)
        bad = self._bcast(bad)
        self._free_comm()
        if bad:
            raise Error(f"closing {self.path}: " + "; ".join(f"rank {r}: {e}" for r, e in bad))

    def _abort(self, why="an exception"):
        """After an exception: close without renaming; rank 0 removes the temporary file.
        A rank that raised on its own first tells the others (they may be
        waiting at a collective step: they raise there and come here too). In
        mpio mode closing is collective (HDF5's rule), so every rank gets here."""
        if self._closed:
            return
        self._closed = True
        if self.mode == "w" and self._ctl is not None and not self._told:
            for r in range(self.size):
                if r != self.rank:
                    try:
                        self._ctl.isend(why, dest=r, tag=self._abort_tag)  # small: delivered eagerly
                    except Exception:  # noqa: BLE001
                        pass
        try:
            if self._f is not None:
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
            self._abort(f"{exc_type.__name__}: {exc}"[:200])
        return False

    def __repr__(self):
        state = "closed" if self._closed else self.mode
        return f"<baobab.io.File {self.path!r} ({state}, {'mpio' if self.parallel else 'serial'})>"


def _unlink(p):
    try:
        os.unlink(p)
    except FileNotFoundError:
        pass


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

"""Checkpoints: exact, validated, atomically written HDF5 snapshots of a run's state.

    ck = Checkpointer("ckpt", comm, keep=3)
    ck.save(step, {"t": t, "params": {...}, "rng": rng.bit_generator.state}, distributed={"x": x_local})
    state = ck.load()            # newest valid checkpoint; state["x"] is this rank's rows

File layout (format "baobab-checkpoint-1"): the replicated state under /state
(dicts are groups; every dataset has a "baobab_type" attribute saying how to
rebuild the Python value), distributed arrays under /distributed/<name> with
their per-rank row counts in a "counts" attribute. Root attributes: the
provenance of baobab.io, "format", "step", "sha256" (over every payload
dataset's path, kind, shape and bytes) and "complete"=1, written last.

Writing modes:
  asynchronous=False (default): save() returns once the file is complete; the
    distributed arrays are written collectively (MPI-IO where h5py has it).
  asynchronous=True, writers="rank0": save() gathers the distributed arrays to
    rank 0, whose background thread writes the file while the caller goes on.
  asynchronous=True, writers="all": save() has rank 0 lay the file out (the
    replicated state written, each distributed array allocated whole and
    contiguous) under a temporary name; then every rank's background thread
    writes its own rows at their byte offsets (plain pwrite, no MPI on the
    thread, nothing gathered). The checkpoint is committed (complete=1, renamed
    to its final name) by the first collective poll() or wait() that finds
    every rank's rows on disk.
An asynchronous checkpoint is never visible before it is whole: latest() only
ever sees committed files.

Every collective step (set-up, save, poll, latest, load, wait) is a collective of
the Checkpointer's own baobab.Communicator (io._Steps, as in baobab.io) and
agrees on success: an error on one rank raises CheckpointError (or the io
error) on every rank, and a rank that does not arrive within BAOBAB_TIMEOUT
is named in a TimeoutError.
"""
import errno
import hashlib
import json
import os
import re
import threading
import time
import traceback
import warnings

import numpy as np

from . import io as _io
from ._errors import CheckpointError, InvalidArgument

FORMAT = "baobab-checkpoint-1"
_DIRECT_KINDS = "biufcS?"


# ---- encoding ------------------------------------------------------------------
class _JSON(json.JSONEncoder):
    def default(self, o):
        if isinstance(o, np.ndarray):
            return {"__ndarray__": o.tolist(), "dtype": o.dtype.str, "shape": list(o.shape)}
        if isinstance(o, np.generic):
            return {"__npscalar__": o.item(), "dtype": o.dtype.str}
        return super().default(o)


def _json_hook(d):
    if "__ndarray__" in d:
        return np.array(d["__ndarray__"], dtype=np.dtype(d["dtype"])).reshape(d["shape"])
    if "__npscalar__" in d:
        return np.dtype(d["dtype"]).type(d["__npscalar__"])
    return d


def _is_rng_state(v):
    return isinstance(v, dict) and isinstance(v.get("bit_generator"), str) and "state" in v


def _dtype_from(spec):
    if spec.startswith("ml_dtypes:"):
        import ml_dtypes
        return np.dtype(getattr(ml_dtypes, spec.split(":", 1)[1]))
    return np.lib.format.descr_to_dtype(_tuplify(json.loads(spec.split(":", 1)[1])))


def _tuplify(d):
    """JSON turned the descr's (name, type[, shape]) tuples into lists."""
    if isinstance(d, list):
        return [tuple(_tuplify(x) if isinstance(x, list) and i == 1 else
                      (tuple(x) if isinstance(x, list) else x) for i, x in enumerate(f)) for f in d]
    return d


def _raw_spec(dt):
    """How a dtype that HDF5 cannot hold directly is named in the file."""
    if dt.kind == "V" and not dt.fields and not dt.name.startswith("void"):
        return f"ml_dtypes:{dt.name}"   # bfloat16, float8_*: rebuilt by name
    return "descr:" + json.dumps(np.lib.format.dtype_to_descr(dt))


def _utf8(text):
    """Text is stored as a uint8 array of its UTF-8 bytes: exact (NULs included) and
    writable by parallel HDF5, which cannot write variable-length strings."""
    return np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8)


def _encode(value, where):
    """(kind, stored, attrs): stored is the numpy array that goes into the file."""
    if _is_rng_state(value):
        return "rng", _utf8(json.dumps(value, cls=_JSON, sort_keys=True)), {}
    if isinstance(value, np.ndarray) or isinstance(value, np.generic):
        kind = "ndarray" if isinstance(value, np.ndarray) else "npscalar"
        a = np.asarray(value)
        if a.dtype.hasobject:
            raise InvalidArgument(f"checkpoint: {where}: object arrays cannot be stored")
        if a.dtype.kind in _DIRECT_KINDS and not a.dtype.fields:
            return kind, np.ascontiguousarray(a) if a.ndim else a, {}
        raw = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
        return kind + "_raw", raw, {"numpy_dtype": _raw_spec(a.dtype), "shape": np.array(a.shape, np.int64)}
    if isinstance(value, bool):
        return "bool", np.asarray(value, np.bool_), {}
    if isinstance(value, int):
        if -(1 << 63) <= value < (1 << 63):
            return "int", np.asarray(value, np.int64), {}
        return "bigint", _utf8(str(value)), {}
    if isinstance(value, float):
        return "float", np.asarray(value, np.float64), {}
    if isinstance(value, complex):
        return "complex", np.asarray(value, np.complex128), {}
    if isinstance(value, str):
        return "str", _utf8(value), {}
    if isinstance(value, (bytes, bytearray)):
        return "bytes", np.frombuffer(bytes(value), np.uint8), {}
    if value is None:
        return "none", np.asarray(0, np.int8), {}
    if isinstance(value, (list, tuple)):
        try:
            return "json", _utf8(json.dumps(value, cls=_JSON)), {}
        except TypeError as e:
            raise InvalidArgument(f"checkpoint: {where}: a list must be JSON-serializable ({e})") from None
    raise InvalidArgument(f"checkpoint: {where}: cannot store a {type(value).__name__} "
                          "(numpy arrays/scalars, int, float, complex, bool, str, bytes, None, lists of those, "
                          "dicts, RNG states)")


def _check_key(k, where):
    if not isinstance(k, str) or not k or "/" in k or k in (".", ".."):
        raise InvalidArgument(f"checkpoint: {where}: keys must be non-empty str without '/', got {k!r}")


def _flatten(state, base="/state"):
    """[(path, kind, stored, attrs)] in creation order; groups have stored None."""
    if not isinstance(state, dict):
        raise InvalidArgument(f"checkpoint: state must be a dict, got {type(state).__name__}")
    out = [(base, "dict", None, {})]
    for k, v in state.items():
        _check_key(k, base)
        path = f"{base}/{k}"
        if isinstance(v, dict) and not _is_rng_state(v):
            out += _flatten(v, path)
        else:
            kind, stored, attrs = _encode(v, path)
            out.append((path, kind, stored, attrs))
    return out


def _decode(kind, dset):
    a = dict(dset.attrs)
    v = dset[()]
    if kind in ("str", "rng", "json", "bigint"):
        text = np.asarray(v).tobytes().decode("utf-8", "surrogatepass")
        if kind == "str":
            return text
        if kind == "bigint":
            return int(text)
        return json.loads(text, object_hook=_json_hook)
    if kind == "ndarray":
        return np.asarray(v)
    if kind == "npscalar":
        return v
    if kind in ("ndarray_raw", "npscalar_raw"):
        arr = np.frombuffer(np.asarray(v).tobytes(), _dtype_from(_text(a["numpy_dtype"])))
        arr = arr.reshape(tuple(int(s) for s in a["shape"])).copy()
        return arr if kind == "ndarray_raw" else arr[()]
    if kind == "bool":
        return bool(v)
    if kind == "int":
        return int(v)
    if kind == "float":
        return float(v)
    if kind == "complex":
        return complex(v)
    if kind == "bytes":
        return np.asarray(v).tobytes()
    if kind == "none":
        return None
    raise CheckpointError(f"{dset.file.filename}: {dset.name}: unknown baobab_type {kind!r}")


def _text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


# ---- hashing -------------------------------------------------------------------
def _digest(stored):
    if isinstance(stored, str):
        return hashlib.sha256(stored.encode("utf-8")).digest()
    if isinstance(stored, bytes):
        return hashlib.sha256(stored).digest()
    return hashlib.sha256(np.ascontiguousarray(stored).tobytes() if np.ndim(stored) else
                          np.asarray(stored).tobytes()).digest()


def _shape_of(stored):
    return () if isinstance(stored, (str, bytes)) else tuple(int(s) for s in np.shape(stored))


def _dist_digest(slice_digests):
    return hashlib.sha256(b"".join(slice_digests)).digest()


def _combine(entries):
    """entries: {path: (kind, shape, extra, digest)} -> hex SHA-256 over all, sorted by path."""
    h = hashlib.sha256()
    for p in sorted(entries):
        kind, shape, extra, d = entries[p]
        h.update(f"{p}\0{kind}\0{tuple(int(s) for s in shape)}\0{extra}\0".encode())
        h.update(d)
    return h.hexdigest()


def _file_hash(h5):
    """Recomputes the payload hash of an open h5py file."""
    import h5py
    entries = {}

    def visit(name, obj):
        if not isinstance(obj, h5py.Dataset) or "baobab_type" not in obj.attrs:
            return
        kind = _text(obj.attrs["baobab_type"])
        path = "/" + name
        if kind == "distributed":
            counts = [int(c) for c in obj.attrs["counts"]]
            ds, start = [], 0
            for c in counts:
                ds.append(hashlib.sha256(np.ascontiguousarray(obj[start:start + c]).tobytes()).digest())
                start += c
            entries[path] = (kind, obj.shape, counts, _dist_digest(ds))
        else:
            v = obj[()]
            entries[path] = (kind, obj.shape, "", _digest(v if isinstance(v, bytes) else np.asarray(v)))
    h5.visititems(visit)
    return _combine(entries)


def validate(path):
    """None if `path` is a complete checkpoint whose payload matches its SHA-256, else the reason."""
    import h5py
    try:
        with h5py.File(path, "r") as h5:
            a = h5.attrs
            if _text(a.get("format", "")) != FORMAT:
                return f"not a {FORMAT} file (format={a.get('format')!r})"
            if int(a.get("complete", 0)) != 1:
                return "incomplete (no complete=1 attribute)"
            if "sha256" not in a:
                return "no sha256 attribute"
            got = _file_hash(h5)
            if got != _text(a["sha256"]):
                return f"SHA-256 mismatch (stored {_text(a['sha256'])[:16]}..., computed {got[:16]}...)"
    except Exception as e:  # noqa: BLE001  (truncated or corrupt files raise OSError and friends)
        return f"cannot be read: {type(e).__name__}: {e}"
    return None


# ---- the checkpointer ------------------------------------------------------------
def _write_plan(f, plan):
    """The replicated entries of a checkpoint (from _flatten) into an open, serial io.File."""
    for p, kind, stored, attrs in plan:
        if kind == "dict":
            f.set_attrs(p, {"baobab_type": "dict"})
        else:
            f.write_global(p, stored, attrs={"baobab_type": kind, **attrs})


class Checkpointer:
    """Saves and restores run state in `directory`, keeping the newest `keep` checkpoints."""

    def __init__(self, directory, comm=None, *, keep=3, prefix="checkpoint", asynchronous=False, writers="rank0"):
        if keep is not None and int(keep) < 1:
            raise InvalidArgument(f"keep must be >= 1 or None (keep all), got {keep!r}")
        if writers not in ("rank0", "all"):
            raise InvalidArgument(f"writers must be 'rank0' or 'all', got {writers!r}")
        if not prefix or "/" in prefix:
            raise InvalidArgument(f"bad prefix {prefix!r}")
        self.directory = os.fspath(directory)
        self.keep = None if keep is None else int(keep)
        self.prefix = prefix
        self.asynchronous = bool(asynchronous)
        self.writers = writers
        self._thread = None
        self._bg_error = None
        self._pending = None  # the checkpoint in flight: (final path, staged path or None, plan, dmeta)
        self._bg_digests = {}
        self._pattern = re.compile(rf"^{re.escape(prefix)}-(\d{{10,}})\.h5$")
        base = _io._mpi_comm(comm)
        limit = _io._timeout(comm)
        label = f"checkpoints in {self.directory}"
        # the collective steps (a baobab communicator), and the data communicator
        self._steps = _io._Steps(base, label, limit, f"Checkpointer({self.directory!r})")
        self._comm = self._steps.data
        self.rank = self._comm.Get_rank() if self._comm is not None else 0
        self.size = self._comm.Get_size() if self._comm is not None else 1
        try:
            self._setup()
        except BaseException as e:
            if not _io._raised_everywhere(e):  # not one every rank raised together: tell them
                self._steps.give_up(f"{type(e).__name__}: {e}"[:200])
            self._release()
            raise

    def _setup(self):
        """Collective: rank 0 creates the directory and removes what killed saves
        left there; then every rank must see it (load reads the files on every rank)."""
        err = None
        if self.rank == 0:
            try:
                os.makedirs(self.directory, exist_ok=True)
                if not os.path.isdir(self.directory):
                    raise NotADirectoryError(f"{self.directory} is not a directory")
                _io._remove_stale_temporaries(self.directory, self._pattern.match)
            except Exception as e:  # noqa: BLE001
                err = _io._why(e)
        got = self._steps.allgather(err, "set-up")
        if got[0]:
            raise _io._every_rank(CheckpointError(f"cannot create the checkpoint directory {self.directory}: "
                                                  f"rank 0: {got[0]}"))
        self._agree(None if self.rank == 0 else self._visible(), "set-up",
                    f"the checkpoint directory {self.directory} is not usable")

    def _visible(self):
        """None if the directory rank 0 created is a directory here, else why not.
        A network file system may show a new directory to other nodes a moment
        late: the parent is listed again for up to two seconds."""
        end = time.monotonic() + min(2.0, self._steps.limit)
        while True:
            if os.path.isdir(self.directory):
                return None
            if time.monotonic() > end:
                break
            try:
                os.listdir(os.path.dirname(os.path.abspath(self.directory)))
            except OSError:
                pass
            time.sleep(0.05)
        try:
            os.stat(self.directory)
        except OSError as e:
            return f"{_io._why(e)} (rank 0 created it: is it on a file system this node does not share?)"
        return f"{self.directory} is not a directory here"

    # ---- helpers -------------------------------------------------------------
    def _bcast(self, obj, what="bcast"):
        return self._steps.bcast(obj, what)

    def _allgather(self, obj, what="allgather"):
        return self._steps.allgather(obj, what)

    def _agree(self, err, step, what, cls=CheckpointError):
        """Every rank raises `cls` if any rank failed (err: None or a message)."""
        errs = self._allgather(err, step)
        bad = [(r, e) for r, e in enumerate(errs) if e]
        if bad:
            raise _io._every_rank(cls(f"{what}: " + _io._agreed_message(bad)))

    def path_of(self, step):
        return os.path.join(self.directory, f"{self.prefix}-{int(step):010d}.h5")

    def _files(self):
        """[(step, path)] newest first."""
        out = []
        for n in os.listdir(self.directory):
            m = self._pattern.match(n)
            if m:
                out.append((int(m.group(1)), os.path.join(self.directory, n)))
        return sorted(out, reverse=True)

    def _plan(self, step, state, distributed, copy, *, spread=False):
        """Collective: validates the arguments and returns (plan on rank 0, dist metadata).
        spread: the distributed arrays are copied (the caller may change them at once)
        and not hashed here (the writer threads hash what they write)."""
        err, plan = None, None
        if self.rank == 0:
            try:
                plan = _flatten(state)
                if copy:
                    plan = [(p, k, (s.copy() if isinstance(s, np.ndarray) else s), a) for p, k, s, a in plan]
            except InvalidArgument as e:
                err = str(e)
        dist = {}
        derr = None
        try:
            for name, local in (distributed or {}).items():
                _check_key(name, "distributed")
                if name in (state or {}) and self.rank == 0:
                    raise InvalidArgument(f"checkpoint: {name!r} is both in state and in distributed")
                a = np.asarray(local)
                if a.ndim == 0 or a.dtype.kind not in _DIRECT_KINDS or a.dtype.fields:
                    raise InvalidArgument(f"checkpoint: distributed {name!r}: need an array with at least one "
                                          f"dimension and a plain numeric/bytes dtype, got {a.dtype} {a.shape}")
                dist[name] = np.array(a, copy=True, order="C") if spread else np.ascontiguousarray(a)
        except InvalidArgument as e:
            derr = str(e)
        meta = {n: (a.shape, a.dtype.str, b"" if spread else hashlib.sha256(a.tobytes()).digest())
                for n, a in dist.items()}
        metas = self._allgather((err, derr, sorted(meta), meta), "save")
        errs = [f"rank {r}: {m[0] or m[1]}" for r, m in enumerate(metas) if m[0] or m[1]]
        if errs:
            raise InvalidArgument("; ".join(errs))
        names = metas[0][2]
        if any(m[2] != names for m in metas):
            raise InvalidArgument("checkpoint: ranks pass different distributed names: "
                                  + ", ".join(f"rank {r}: {m[2]}" for r, m in enumerate(metas)))
        dmeta = {}
        for n in names:
            shapes = [m[3][n][0] for m in metas]
            dtypes = [m[3][n][1] for m in metas]
            if any(s[1:] != shapes[0][1:] for s in shapes) or len(set(dtypes)) > 1:
                raise InvalidArgument(f"checkpoint: distributed {n!r}: ranks disagree on shape beyond axis 0 "
                                      "or dtype: " + ", ".join(f"rank {r}: shape {s} dtype {d}" for r, (s, d)
                                                                in enumerate(zip(shapes, dtypes))))
            counts = [s[0] for s in shapes]
            dmeta[n] = (counts, (sum(counts),) + tuple(shapes[0][1:]), np.dtype(dtypes[0]),
                        _dist_digest([m[3][n][2] for m in metas]))
        return plan, dist, dmeta

    @staticmethod
    def _hash(plan, dmeta):
        entries = {}
        for p, kind, stored, _ in plan:
            if stored is not None:
                entries[p] = (kind, _shape_of(stored), "", _digest(stored))
        for n, (counts, shape, _, d) in dmeta.items():
            entries[f"/distributed/{n}"] = ("distributed", shape, [int(c) for c in counts], d)
        return _combine(entries)

    # ---- saving -----------------------------------------------------------------
    def save(self, step, state, *, distributed=None):
        """Writes checkpoint `step` (collective); returns its path."""
        self.wait()
        step = int(step)
        path = self.path_of(step)
        spread = self.asynchronous and self.writers == "all"
        plan, dist, dmeta = self._plan(step, state, distributed, copy=self.asynchronous, spread=spread)
        top = {"format": FORMAT, "step": step}
        if not self.asynchronous:
            digest = self._hash(plan, dmeta) if self.rank == 0 else None
            items = plan if self.rank == 0 else None
            items = self._bcast([(p, k, a) for p, k, _, a in items] if self.rank == 0 else None, "save")
            with _io.File(path, "w", self._comm, attrs=top) as f:
                for i, (p, kind, attrs) in enumerate(items):
                    if kind == "dict":
                        f.set_attrs(p, {"baobab_type": "dict"})
                    else:
                        f.write_global(p, plan[i][2] if self.rank == 0 else None,
                                       attrs={"baobab_type": kind, **attrs})
                for n, (counts, _, _, _) in dmeta.items():
                    f.write(f"/distributed/{n}", dist[n], axis0_counts=counts,
                            attrs={"baobab_type": "distributed", "counts": np.array(counts, np.int64)})
                f.set_attrs("/", {"sha256": digest})
                f.set_attrs("/", {"complete": 1})
            err = None
            if self.rank == 0:
                try:
                    self._prune()
                except Exception as e:  # noqa: BLE001
                    err = _io._why(e)
            self._agree(err, "save", f"{path} was written, but removing older checkpoints failed")
            return path
        if spread:
            return self._save_spread(step, path, top, plan, dist, dmeta)
        # asynchronous: gather distributed parts to rank 0 now (MPI on this thread only), write in the background
        full = {n: self._gather_rows(dist[n], counts, shape, dtype) for n, (counts, shape, dtype, _) in dmeta.items()}
        if self.rank == 0:
            _io._git_commit()   # cached here: no subprocess from the writer thread
            top["mpi_ranks"] = self.size
            self._thread = threading.Thread(target=self._background, args=(path, top, plan, full, dmeta),
                                            name=f"baobab-checkpoint-{step}")
            self._thread.start()
        self._pending = (path, None, None, None)
        return path

    def _save_spread(self, step, path, top, plan, dist, dmeta):
        """asynchronous, writers="all": rank 0 lays the file out, every rank's thread writes its rows."""
        stage, offsets, err = None, None, None
        if self.rank == 0:
            try:
                stage, offsets = self._lay_out(path, top, plan, dmeta)
            except Exception as e:  # noqa: BLE001
                err = _io._why(e)
        stage, offsets, err = self._bcast((stage, offsets, err), "save")
        if err:
            raise CheckpointError(f"cannot lay out checkpoint {path}: rank 0: {err}")
        jobs = []
        for n, (counts, shape, dtype, _) in dmeta.items():
            row = dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64))
            start = sum(counts[:self.rank])
            jobs.append((n, offsets[n] + start * row, dist[n]))  # dist: copied by _plan
        self._bg_digests = {}
        self._thread = threading.Thread(target=self._write_rows_at, args=(stage, jobs),
                                        name=f"baobab-checkpoint-{step}")
        self._thread.start()
        self._pending = (path, stage, plan, dmeta)
        return path

    def _lay_out(self, path, top, plan, dmeta):
        """Rank 0: the staged file (replicated state written, distributed arrays
        allocated whole, contiguous, at fixed offsets; no sha256 and no complete
        yet: _commit adds them); returns (its path, {name: byte offset of row 0})."""
        import h5py
        stage = _io._temporary_path(path)
        need = sum(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for _, shape, dtype, _ in dmeta.values())
        free = _io._free_bytes(self.directory)
        if free is not None and free < need + (1 << 20):
            raise OSError(errno.ENOSPC, f"the checkpoint needs {need:,} bytes, the file system has {free:,} free")
        offsets = {}
        top = dict(top, mpi_ranks=self.size, writers="all")
        with _io.File(stage, "w", None, attrs=top) as f:
            _write_plan(f, plan)
            h5 = f._f  # serial (no communicator): rank 0 holds the handle
            for n, (counts, shape, dtype, _) in dmeta.items():
                dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
                dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
                dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
                dset = h5.require_group("/distributed").create_dataset(n, shape=shape, dtype=dtype, dcpl=dcpl)
                dset.attrs["baobab_type"] = "distributed"
                dset.attrs["counts"] = np.array(counts, np.int64)
                off = dset.id.get_offset()
                if off is None and dset.size:
                    raise CheckpointError(f"HDF5 did not allocate /distributed/{n} at a fixed offset")
                offsets[n] = int(off or 0)
        return stage, offsets

    def _write_rows_at(self, stage, jobs):
        """Background thread: this rank's rows at their offsets, then fsync, then
        the rows' SHA-256 (hashlib lets go of the GIL); no MPI here."""
        try:
            fd = os.open(stage, os.O_WRONLY)
            try:
                for _, off, a in jobs:
                    buf = memoryview(a.reshape(-1).view(np.uint8))
                    done = 0
                    while done < len(buf):
                        n = os.pwrite(fd, buf[done:done + (1 << 30)], off + done)
                        if n <= 0:
                            raise OSError(errno.EIO, f"pwrite wrote {n} bytes")
                        done += n
                os.fsync(fd)
            finally:
                os.close(fd)
            self._bg_digests = {n: hashlib.sha256(a.reshape(-1).view(np.uint8)).digest() for n, _, a in jobs}
        except BaseException as e:  # noqa: BLE001
            self._bg_error = f"{stage}: {type(e).__name__}: {e}"

    def _commit(self, path, stage, sha256):
        """Rank 0, once every rank's rows are on disk: sha256, complete=1, fsync, rename."""
        import h5py
        with h5py.File(stage, "r+") as h5:
            h5.attrs["sha256"] = sha256
            h5.attrs["complete"] = 1
        _io._fsync_file(stage)
        os.replace(stage, path)
        _io._fsync_dir(self.directory)
        self._prune()

    def _gather_rows(self, local, counts, shape, dtype):
        if self._comm is None:
            return local.copy()
        from mpi4py import MPI
        rest = tuple(shape[1:])
        row = max(1, dtype.itemsize * int(np.prod(rest, dtype=np.int64)))
        block = max(1, _io.BLOCK_BYTES // row)
        if self.rank != 0:
            for a in range(0, counts[self.rank], block):
                part = np.ascontiguousarray(local[a:a + block])
                self._comm.Send([part.reshape(-1).view(np.uint8), MPI.BYTE], dest=0, tag=11)
            return None
        out = np.empty(shape, dtype)
        out[:counts[0]] = local
        off = counts[0]
        for r in range(1, self.size):
            for a in range(0, counts[r], block):
                b = min(a + block, counts[r])
                self._comm.Recv([out[off + a:off + b].reshape(-1).view(np.uint8), MPI.BYTE], source=r, tag=11)
            off += counts[r]
        return out

    def _background(self, path, top, plan, full, dmeta):
        try:
            with _io.File(path, "w", None, attrs=top) as f:
                _write_plan(f, plan)
                for n, (counts, _, _, _) in dmeta.items():
                    f.write(f"/distributed/{n}", full[n],
                            attrs={"baobab_type": "distributed", "counts": np.array(counts, np.int64)})
                f.set_attrs("/", {"sha256": self._hash(plan, dmeta)})
                f.set_attrs("/", {"complete": 1})
            self._prune()
        except BaseException as e:  # noqa: BLE001
            self._bg_error = f"{path}: {type(e).__name__}: {e}\n{traceback.format_exc()}"

    def wait(self):
        """Collective: returns once the checkpoint in flight (if any) is on disk and
        committed; raises CheckpointError on every rank if writing it failed on any."""
        err = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
            err, self._bg_error = self._bg_error, None
        pending, self._pending = self._pending, None
        if pending is None or pending[1] is None:  # nothing in flight, or rank 0 wrote it all
            err = self._bcast(err, "wait")
            if err:
                raise CheckpointError(f"asynchronous checkpoint failed: {err}")
            return
        path, stage, plan, dmeta = pending
        got = self._allgather((err, None if err else self._bg_digests), "wait")
        bad = [(r, e) for r, (e, _) in enumerate(got) if e]
        cerr = None
        if self.rank == 0:
            try:
                if bad:
                    os.unlink(stage)
                else:
                    whole = {n: (c, shape, dt, _dist_digest([d[n] for _, d in got]))
                             for n, (c, shape, dt, _) in dmeta.items()}
                    self._commit(path, stage, self._hash(plan, whole))
            except Exception as e:  # noqa: BLE001
                cerr = _io._why(e)
        cerr = self._bcast(cerr, "wait")
        if bad:
            raise CheckpointError(f"asynchronous checkpoint {path} failed: " + _io._agreed_message(bad))
        if cerr:
            raise CheckpointError(f"asynchronous checkpoint {path}: committing it failed on rank 0: {cerr}")

    def poll(self):
        """Collective, and cheap: True when no checkpoint is in flight any more. A
        checkpoint whose writes have finished on every rank is committed here (as
        by wait()); one still being written is left alone. Call it from every rank
        at the same points (each training step, say) so that a checkpoint becomes
        visible soon after its data is on disk rather than at the next save."""
        if self._pending is None:
            return True
        done = self._thread is None or not self._thread.is_alive()
        if all(self._allgather(done, "poll")):
            self.wait()
            return True
        return False

    def _prune(self):
        if self.keep is None:
            return
        import h5py
        complete = 0
        for _, p in self._files():
            if complete >= self.keep:
                try:
                    os.unlink(p)
                except OSError as e:
                    warnings.warn(f"could not remove old checkpoint {p}: {e}", stacklevel=3)
                continue
            try:
                with h5py.File(p, "r") as h5:
                    if int(h5.attrs.get("complete", 0)) == 1:
                        complete += 1
            except Exception:  # noqa: BLE001
                pass

    # ---- loading ------------------------------------------------------------------
    def latest(self):
        """Path of the newest valid checkpoint (complete, SHA-256 matches), or None.
        Rank 0 decides (warning about each file it skips) and broadcasts."""
        self.wait()
        found, err = None, None
        if self.rank == 0:
            try:
                for _, p in self._files():
                    reason = validate(p)
                    if reason is None:
                        found = p
                        break
                    warnings.warn(f"skipping checkpoint {p}: {reason}", stacklevel=2)
            except Exception as e:  # noqa: BLE001
                err = _io._why(e)
        found, err = self._bcast((found, err), "latest")
        if err:
            raise CheckpointError(f"cannot list the checkpoints in {self.directory}: rank 0: {err}")
        return found

    def load(self, path=None, *, distributed=True):
        """The state dict of the newest valid checkpoint (or of `path`, validated).
        Distributed arrays come back under their names: this rank's rows when the
        number of ranks is the one that saved, an even share of axis 0 otherwise,
        the whole array without a communicator. distributed=False reads the
        replicated state only (a caller that reads its own slices of the
        distributed arrays)."""
        import h5py
        if path is None:
            path = self.latest()
            if path is None:
                raise CheckpointError(f"no valid checkpoint {self.prefix}-*.h5 in {self.directory}")
        else:
            self.wait()
            path = os.fspath(path)
            reason = validate(path) if self.rank == 0 else None
            reason = self._bcast(reason, "load")
            if reason:
                raise CheckpointError(f"checkpoint {path} is not valid: {reason}")
        state, err = None, None
        try:  # every rank reads its share: they agree on the outcome
            with h5py.File(path, "r") as h5:
                state = self._read_group(h5["/state"]) if "/state" in h5 else {}
                for n, dset in (h5["/distributed"].items() if distributed and "/distributed" in h5 else ()):
                    counts = [int(c) for c in dset.attrs["counts"]]
                    if self._comm is None:
                        state[n] = dset[()]
                    elif len(counts) == self.size:
                        start = sum(counts[:self.rank])
                        state[n] = dset[start:start + counts[self.rank]]
                    else:
                        base, extra = divmod(dset.shape[0], self.size)
                        start = self.rank * base + min(self.rank, extra)
                        state[n] = dset[start:start + base + (1 if self.rank < extra else 0)]
                state_step = int(h5.attrs["step"])
        except Exception as e:  # noqa: BLE001
            err = _io._why(e)
        self._agree(err, "load", f"cannot load checkpoint {path}")
        self.loaded_step = state_step
        return state

    def _read_group(self, g):
        import h5py
        out = {}
        for k, obj in g.items():
            if isinstance(obj, h5py.Group):
                out[k] = self._read_group(obj)
            else:
                out[k] = _decode(_text(obj.attrs["baobab_type"]), obj)
        return out

    def close(self):
        """Waits for the write in flight and releases the communicators (collective)."""
        try:
            self.wait()
        finally:
            self._release()

    def _release(self):
        self._steps.free()
        self._comm = None

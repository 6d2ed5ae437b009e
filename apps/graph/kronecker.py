"""Graph inputs: the Graph500 Kronecker generator (in parallel, the same edge
list on any number of ranks) and edge lists read from text (SNAP style) or
HDF5, each rank taking its own slice.

Kronecker: n = 2^scale vertices, m = edgefactor * n edges, initiator
A, B, C = 0.57, 0.19, 0.19 (D = 0.05), every vertex id permuted and the edge
list shuffled, float32 weights uniform on [0, 1), all drawn from a counter-based
generator keyed by the seed (src/generator.cpp), so edge k is the same whoever
makes it. Search keys: ``search_keys``."""
import math
from pathlib import Path

import numpy as np

from baobab import InvalidArgument
from baobab_apps import _graph as K

A, B, C = 0.57, 0.19, 0.19
KEY_STREAM = 11


def kronecker_slice(scale, edgefactor, seed, first, count, weights=True):
    """Edges [first, first + count) of the Kronecker edge list: (src, dst, weight)."""
    _check_scale(scale, edgefactor)
    src = np.empty(count, np.int64)
    dst = np.empty(count, np.int64)
    w = np.empty(count if weights else 0, np.float32)
    K.kronecker(int(scale), int(edgefactor), A, B, C, int(seed) & (2**64 - 1), int(first), int(count), src, dst, w)
    return src, dst, (w if weights else None)


def _check_scale(scale, edgefactor):
    if not isinstance(scale, (int, np.integer)) or not 1 <= scale <= 40:
        raise InvalidArgument(f"SCALE must be an integer in 1..40, got {scale!r}")
    if not isinstance(edgefactor, (int, np.integer)) or edgefactor < 1:
        raise InvalidArgument(f"edgefactor must be a positive integer, got {edgefactor!r}")


def kronecker(comm, scale, edgefactor=16, seed=2, weights=True):
    """This rank's slice of the Kronecker edge list: (n, src, dst, weight)."""
    _check_scale(scale, edgefactor)
    m = edgefactor << scale
    first, last = m * comm.rank // comm.size, m * (comm.rank + 1) // comm.size
    src, dst, w = kronecker_slice(scale, edgefactor, seed, first, last - first, weights)
    return 1 << scale, src, dst, w


def search_keys(seed, deg, count):
    """``count`` distinct search keys among the vertices of degree >= 1 (``deg``: the
    global degree array without self-loops), drawn in order from the generator's hash
    of (seed, KEY_STREAM, i); fewer when fewer vertices qualify. The same on every rank."""
    n = deg.size
    eligible = int(np.count_nonzero(deg))
    want = min(count, eligible)
    keys, seen, i = [], set(), 0
    while len(keys) < want:
        v = K.hash3(int(seed) & (2**64 - 1), KEY_STREAM, i) % n
        i += 1
        if deg[v] > 0 and v not in seen:
            seen.add(v)
            keys.append(v)
        if i > 64 * n + 1000:  # so few eligible vertices that hashing is slow: take them in order
            rest = [int(v) for v in np.flatnonzero(deg) if int(v) not in seen]
            keys += rest[:want - len(keys)]
    return np.array(keys, np.int64)


# ---- edge lists from files ------------------------------------------------------

def read_text(path, comm, n=None, weighted=None):
    """This rank's slice of a text edge list (SNAP style): one edge per line, ``u v``
    or ``u v w``, separated by whitespace (or commas); lines starting with # or %
    and blank lines are comments. ``n``: the declared vertex count (default: the
    largest id + 1); an id beyond it, a negative id, a line with one field or
    more than three, or a field that is not a number is an InvalidArgument naming
    the file and line. Returns (n, src, dst, weight or None)."""
    from dgraph import agree
    err, src, dst, w, has_w = None, None, None, None, False
    try:
        lines = Path(path).read_text().splitlines()
        first, last = len(lines) * comm.rank // comm.size, len(lines) * (comm.rank + 1) // comm.size
        us, vs, ws = [], [], []
        kind = None
        for lineno in range(first, last):
            s = lines[lineno].strip()
            if not s or s[0] in "#%":
                continue
            f = s.replace(",", " ").split()
            where = f"{path}:{lineno + 1}"
            if len(f) not in (2, 3):
                raise InvalidArgument(f"{where}: expected 'u v' or 'u v weight', got {s!r}")
            if kind is None:
                kind = len(f)
            try:
                u, v = int(f[0]), int(f[1])
                wt = float(f[2]) if len(f) == 3 else 1.0
            except ValueError:
                raise InvalidArgument(f"{where}: not an edge (integer ids, a number weight): {s!r}") from None
            if u < 0 or v < 0:
                raise InvalidArgument(f"{where}: negative vertex id in {s!r}")
            if n is not None and (u >= n or v >= n):
                raise InvalidArgument(f"{where}: vertex {max(u, v)} is beyond the declared count of {n} "
                                      f"(ids 0..{n - 1})")
            if not (wt >= 0 and np.isfinite(wt)):
                raise InvalidArgument(f"{where}: weight {f[2]} is not a finite non-negative number")
            us.append(u)
            vs.append(v)
            ws.append(wt)
        src = np.array(us, np.int64)
        dst = np.array(vs, np.int64)
        w = np.array(ws, np.float32)
        has_w = kind == 3
    except OSError as e:
        err = f"cannot read edge list {path}: {e.strerror or e}"
    except InvalidArgument as e:
        err = str(e)
    agree(comm, err)
    any_w = int(comm.allreduce(np.array([1 if has_w else 0], np.int64), op="max")[0])
    return _vertex_count(comm, n, src, dst), src, dst, (w if any_w else None)


def read_hdf5(path, comm, n=None, dataset="edges"):
    """This rank's slice of an HDF5 edge list: dataset ``edges`` of shape (m, 2)
    (integer ids), optional ``weights`` (m,), optional attribute ``n`` (the vertex
    count). Returns (n, src, dst, weight or None)."""
    import h5py

    from dgraph import agree
    err = src = dst = w = None
    try:
        with h5py.File(path, "r") as f:
            if dataset not in f:
                raise InvalidArgument(f"{path}: no dataset '{dataset}' (an (m, 2) array of vertex ids)")
            d = f[dataset]
            if d.ndim != 2 or d.shape[1] != 2 or d.dtype.kind not in "iu":
                raise InvalidArgument(f"{path}: '{dataset}' must be an (m, 2) integer array, got {d.shape} {d.dtype}")
            m = d.shape[0]
            first, last = m * comm.rank // comm.size, m * (comm.rank + 1) // comm.size
            e = d[first:last].astype(np.int64)
            src, dst = np.ascontiguousarray(e[:, 0]), np.ascontiguousarray(e[:, 1])
            if "weights" in f:
                w = np.ascontiguousarray(f["weights"][first:last], np.float32)
            if n is None and "n" in d.attrs:
                n = int(d.attrs["n"])
        if src.size and src.min() < 0 or dst.size and dst.min() < 0:
            raise InvalidArgument(f"{path}: negative vertex id")
        if n is not None and src.size and max(src.max(), dst.max()) >= n:
            raise InvalidArgument(f"{path}: vertex {max(src.max(), dst.max())} is beyond the declared count "
                                  f"of {n} (ids 0..{n - 1})")
    except OSError as e:
        err = f"cannot read edge list {path}: {e}"
    except InvalidArgument as e:
        err = str(e)
    agree(comm, err)
    return _vertex_count(comm, n, src, dst), src, dst, w


def _vertex_count(comm, n, src, dst):
    """The declared count n, or else the largest id on any rank + 1 (at least 1)."""
    if n is None:
        top = max(int(src.max(initial=-1)), int(dst.max(initial=-1))) + 1
        n = int(comm.allreduce(np.array([top], np.int64), op="max")[0])
    return max(int(n), 1)


def read_edges(path, comm, n=None):
    """An edge list by suffix: .h5/.hdf5 -> read_hdf5, anything else -> read_text."""
    if str(path).endswith((".h5", ".hdf5")):
        return read_hdf5(path, comm, n)
    return read_text(path, comm, n)


# ---- the command lines' graph source ------------------------------------------------

def add_input_arguments(p, directed_help):
    """The graph source options of graph500.py and analytics.py: --scale or --edges,
    --edgefactor, --seed, --nvertices, --directed."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--scale", "-s", type=int, default=None, help="Kronecker SCALE (default 16)")
    src.add_argument("--edges", type=Path, help="edge list (text 'u v [w]' or HDF5 'edges') instead of Kronecker")
    p.add_argument("--edgefactor", "-e", type=int, default=16)
    p.add_argument("--seed", type=int, default=2, help="generator seed (graph500.py's keys use seed + 1)")
    p.add_argument("--nvertices", type=int, default=None, help="declared vertex count of --edges")
    p.add_argument("--directed", action="store_true", help=directed_help)


def input_error(args):
    """What is wrong with those options (checked before MPI starts), or None."""
    if args.scale is not None and args.scale < 1:
        return f"SCALE must be a positive integer, got {args.scale}"
    if args.edgefactor < 1:
        return f"edgefactor must be a positive integer, got {args.edgefactor}"
    return None


def load_input(comm, args):
    """This rank's part of the graph the options name: (n, src, dst, weight or None,
    scale, edgefactor); for an edge list, scale = ceil(log2 n) and edgefactor None."""
    if args.edges is not None:
        n, src, dst, w = read_edges(args.edges, comm, args.nvertices)
        return n, src, dst, w, int(math.ceil(math.log2(max(n, 2)))), None
    scale = 16 if args.scale is None else args.scale
    n, src, dst, w = kronecker(comm, scale, args.edgefactor, args.seed)
    return n, src, dst, w, scale, args.edgefactor

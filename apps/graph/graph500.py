"""The Graph500 benchmark over baobab: Kronecker graph (or an edge list),
kernel 1 (construction, timed), BFS from 64 search keys (kernel 2) and SSSP
(kernel 3), each result validated by the specification's rules (untimed, can
be switched off), the statistics block in the reference code's key: value
form, and every result and per-key time in HDF5.

    mpiexec -n 2 python apps/graph/graph500.py --scale 20
    mpiexec -n 4 python apps/graph/graph500.py --scale 16 --out g500.h5
    mpiexec -n 2 python apps/graph/graph500.py --edges web.txt --nbfs 16 --no-sssp

Validation of a BFS tree (``validate_bfs``): the root is its own parent; the
parents form a tree (no cycle, every parent reached); every input edge joins
two reached or two unreached vertices (the tree spans the key's component) and
vertices whose levels differ by at most one; every tree edge (parent[v], v) is
an input edge. A failure raises ValidationError on every rank, naming it."""
import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from baobab import InvalidArgument  # noqa: E402
from baobab_apps import _graph as K  # noqa: E402

import bfs as bfs_mod  # noqa: E402
import dgraph  # noqa: E402
import kronecker  # noqa: E402
import sssp as sssp_mod  # noqa: E402

# A search result that breaks the Graph500 rules (BFS or SSSP); the same on every rank.
ValidationError = sssp_mod.ValidationError


def validate_bfs(g, parent, root):
    """Checks the global parent array of a BFS from ``root`` against this rank's
    slice of the input edges (g.src, g.dst), with the marks of tree edges OR-ed
    over the ranks; raises ValidationError on every rank when a rule is broken.
    Returns the levels (global, -1 unreached)."""
    comm, n = g.comm, g.n
    parent = np.ascontiguousarray(parent, np.int64)
    err = None
    level = np.full(n, -1, np.int64)
    if parent.shape != (n,):
        err = f"the parent array has shape {parent.shape}, expected ({n},)"
    else:
        err = K.bfs_levels(parent, int(root), level) or None
    sssp_mod.agree_valid(comm, err)
    tree = np.zeros(n, np.uint8)
    err = K.bfs_check_edges(parent, level, g.src, g.dst, tree) or None
    sssp_mod.agree_valid(comm, err)
    tree = comm.allreduce(tree, op="max")
    missing = np.flatnonzero((parent >= 0) & (tree == 0) & (np.arange(n) != root))
    if missing.size:
        v = int(missing[0])
        sssp_mod.agree_valid(comm, f"vertex {v}'s tree edge ({int(parent[v])}, {v}) is not an input edge"
                          + (f" ({missing.size} such vertices)" if missing.size > 1 else ""))
    return level


# ---- statistics -------------------------------------------------------------------

def _quartiles(x):
    """min, first quartile, median, third quartile, max as the reference code computes
    them (sorted values; quartiles by averaging neighbours at fractional positions)."""
    xs = np.sort(np.asarray(x, np.float64))
    n = xs.size

    def q(p):
        pos = (n - 1) * p
        lo = int(math.floor(pos))
        hi = min(lo + 1, n - 1)
        return float(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo))
    return [float(xs[0]), q(0.25), q(0.5), q(0.75), float(xs[-1])]


def statistics(times, nedge):
    """Graph500 statistics of one kernel: times (s) and traversed edges per search ->
    dict with min/firstquartile/median/thirdquartile/max/mean/stddev of time and nedge,
    the TEPS quartiles (from seconds per edge, as the reference) and the harmonic
    mean and harmonic standard deviation of TEPS."""
    t = np.asarray(times, np.float64)
    e = np.asarray(nedge, np.float64)
    n = t.size
    out = {}
    names = ["min", "firstquartile", "median", "thirdquartile", "max"]
    for name, val in zip(names, _quartiles(t)):
        out[f"{name}_time"] = val
    out["mean_time"] = float(t.mean())
    out["stddev_time"] = float(t.std(ddof=1)) if n > 1 else 0.0
    for name, val in zip(names, _quartiles(e)):
        out[f"{name}_nedge"] = val
    out["mean_nedge"] = float(e.mean())
    out["stddev_nedge"] = float(e.std(ddof=1)) if n > 1 else 0.0
    spe = t / np.maximum(e, 1)  # seconds per edge
    q = _quartiles(spe)
    for name, val in zip(names, reversed(q)):
        out[f"{name}_TEPS"] = 1.0 / val
    mean = float(spe.mean())
    out["harmonic_mean_TEPS"] = 1.0 / mean
    std = float(spe.std(ddof=1)) if n > 1 else 0.0
    out["harmonic_stddev_TEPS"] = std / (mean * mean * math.sqrt(n - 1)) if n > 1 else 0.0
    return out


def format_block(head, kernels):
    """The statistics block: ``head`` (dict: SCALE, edgefactor, NBFS, graph_generation,
    num_mpi_processes, construction_time), then for each (prefix, stats, validate
    stats or None) of the kernels (bfs, sssp) its times, the edge counts (once: the
    searches of a key traverse one component), its TEPS and its validation times,
    keys padded as the reference code prints them ('bfs  ', 'sssp ')."""
    def line(key, v):
        return f"{key + ':':<31} {_fmt(v)}"
    stats = ["min", "firstquartile", "median", "thirdquartile", "max", "mean", "stddev"]
    lines = [line(k, v) for k, v in head.items()]
    for prefix, st, _ in kernels:
        pad = f"{prefix:<5}"
        lines += [line(pad + s + "_time", st[s + "_time"]) for s in stats]
    st0 = kernels[0][1]
    lines += [line(s + "_nedge", st0[s + "_nedge"]) for s in stats]
    for prefix, st, _ in kernels:
        pad = f"{prefix:<5}"
        lines += [line(pad + s + "_TEPS", st[s + "_TEPS"]) for s in stats[:5]]
        lines.append(f"{pad + 'harmonic_mean_TEPS:':<28} !  {_fmt(st['harmonic_mean_TEPS'])}")
        lines.append(line(pad + "harmonic_stddev_TEPS", st["harmonic_stddev_TEPS"]))
    for prefix, _, val in kernels:
        pad = f"{prefix:<5}"
        lines += [line(pad + s + "_validate", val[s + "_time"] if val is not None else (0 if s == "stddev" else -1))
                  for s in stats]
    return "\n".join(lines)


def _fmt(v):
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.12g}"


def parse_block(text):
    """The key: value pairs of a statistics block (what existing Graph500 parsers read)."""
    out = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        k, v = line.split(":", 1)
        v = v.replace("!", "").strip()
        try:
            out[" ".join(k.split())] = float(v)
        except ValueError:
            continue
    return out


# ---- the benchmark -------------------------------------------------------------

def _parser():
    p = argparse.ArgumentParser(prog="graph500.py", description="Graph500 BFS and SSSP over baobab")
    kronecker.add_input_arguments(p, "--edges is directed (BFS follows out-edges)")
    p.add_argument("--nbfs", "-n", type=int, default=64, help="search keys (default 64)")
    p.add_argument("--no-validate", action="store_true", help="skip validation (timing runs)")
    p.add_argument("--no-sssp", action="store_true", help="BFS only")
    p.add_argument("--delegate-degree", type=int, default=None,
                   help="degree above which a vertex's edges are split over ranks (default: 1/64 of a share)")
    p.add_argument("--out", type=Path, default=None, help="HDF5 results (default graph500.h5; '-' for none)")
    p.add_argument("--results", choices=["all", "stats"], default="all",
                   help="all: parents and distances of every search too; stats: times and counts only")
    return p


def _fail(msg, comm=None):
    if comm is None or comm.rank == 0:
        print(f"graph500: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def main(argv=None):
    args = _parser().parse_args(argv)
    if kronecker.input_error(args):
        _fail(kronecker.input_error(args))
    if args.nbfs < 1:
        _fail(f"--nbfs must be at least 1, got {args.nbfs}")
    from mpi4py import MPI

    import baobab
    comm = baobab.Communicator(MPI.COMM_WORLD)
    try:
        return _run(comm, args)
    except (InvalidArgument, ValidationError) as e:  # raised on every rank alike
        _fail(str(e), comm)
    except baobab.Error as e:  # a timeout, a mismatch, a failed file: every rank says what it saw
        print(f"graph500: rank {comm.rank}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


def _run(comm, args):
    """Opens the results file first (an unusable path fails before any work), then runs."""
    out = args.out if args.out is not None else Path("graph500.h5")
    if str(out) == "-":
        return _bench(comm, args, None)
    from baobab import io
    with io.File(out, "w", comm) as f:
        return _bench(comm, args, f)


def _bench(comm, args, f):
    rank, P = comm.rank, comm.size
    t0 = time.perf_counter()
    n, src, dst, w, scale, edgefactor = kronecker.load_input(comm, args)
    if w is None:
        w = np.ones(src.size, np.float32)
    gen_time = time.perf_counter() - t0
    comm.barrier()
    t0 = time.perf_counter()
    g = dgraph.build(comm, n, src, dst, w, directed=args.directed, delegate_degree=args.delegate_degree)
    g.transpose()
    comm.barrier()
    k1 = time.perf_counter() - t0
    imbalance = g.imbalance()
    keys = kronecker.search_keys(args.seed + 1, g.deg, args.nbfs)
    if keys.size == 0:
        raise InvalidArgument("the graph has no vertex of degree >= 1 to search from")
    run_sssp = not args.no_sssp
    validate = not args.no_validate and not args.directed
    nk = keys.size
    res = {"bfs_time": np.zeros(nk), "bfs_nedge": np.zeros(nk, np.int64), "bfs_validate_time": np.zeros(nk),
           "bfs_levels": np.zeros(nk, np.int64)}
    if run_sssp:
        res.update({"sssp_time": np.zeros(nk), "sssp_nedge": np.zeros(nk, np.int64),
                    "sssp_validate_time": np.zeros(nk)})
    keep = args.results == "all"
    bfs_mod.bfs(g, int(keys[0]))  # one untimed search first: the collectives' plans are made on first use
    parents = np.zeros((g.nlocal, nk), np.int64) if keep else None
    dists = np.zeros((g.nlocal, nk), np.float64) if keep and run_sssp else None
    for i, key in enumerate(keys):
        st = bfs_mod.BFSStats()
        comm.barrier()
        t = time.perf_counter()
        p = bfs_mod.bfs(g, int(key), stats=st)
        res["bfs_time"][i] = time.perf_counter() - t
        res["bfs_levels"][i] = st.levels
        res["bfs_nedge"][i] = bfs_mod.traversed_edges(g, p)
        if keep:
            parents[:, i] = p
        if validate:
            t = time.perf_counter()
            validate_bfs(g, g.gather(p), int(key))
            res["bfs_validate_time"][i] = time.perf_counter() - t
        if run_sssp:
            comm.barrier()
            t = time.perf_counter()
            d, sp = sssp_mod.sssp(g, int(key))
            res["sssp_time"][i] = time.perf_counter() - t
            res["sssp_nedge"][i] = bfs_mod.traversed_edges(g, sp)
            if keep:
                dists[:, i] = d
            if validate:
                t = time.perf_counter()
                sssp_mod.validate(g, g.gather(d), g.gather(sp), int(key))
                res["sssp_validate_time"][i] = time.perf_counter() - t
    head = {"SCALE": scale, "edgefactor": edgefactor if edgefactor is not None else round(g.total_entries() / 2 / n),
            "NBFS": nk, "graph_generation": gen_time, "num_mpi_processes": P, "construction_time": k1}
    kern = [("bfs", statistics(res["bfs_time"], res["bfs_nedge"]),
             statistics(res["bfs_validate_time"], res["bfs_nedge"]) if validate else None)]
    if run_sssp:
        kern.append(("sssp", statistics(res["sssp_time"], res["sssp_nedge"]),
                     statistics(res["sssp_validate_time"], res["sssp_nedge"]) if validate else None))
    block = format_block(head, kern)
    if rank == 0:
        print(block, flush=True)
        print(f"{'edge_imbalance:':<31} {imbalance:.4f}", flush=True)
        print(f"{'delegates:':<31} {g.nhubs}", flush=True)
    if f is not None:
        _write(f, head, kern, keys, res, parents, dists, imbalance, g, block)
        if rank == 0:
            print(f"{'results:':<31} {f.path}", flush=True)
    return 0


def _write(f, head, kern, keys, res, parents, dists, imbalance, g, block):
    attrs = {k: (v if v is not None else -1) for k, v in head.items()}
    attrs.update(edge_imbalance=imbalance, delegates=g.nhubs, vertices=g.n, entries=g.total_entries())
    f.set_attrs("/", attrs)
    f.write_global("keys", keys)
    for k, v in res.items():
        f.write_global(k.replace("_", "/", 1), v)
    for prefix, st, _ in kern:
        f.set_attrs(f"/{prefix}", {k: float(v) for k, v in st.items()})
    f.write_global("statistics", block)
    if parents is not None:
        f.write("bfs/parent", parents, attrs={"layout": "row v, column i: parent of v in the search from keys[i]"})
    if dists is not None:
        f.write("sssp/dist", dists, attrs={"layout": "row v, column i: distance of v from keys[i]"})


if __name__ == "__main__":
    sys.exit(main())

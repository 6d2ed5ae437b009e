"""Bus bandwidth against message size from `baobab bench` tables (PNG).

    baobab bench allreduce --algo all --csv ar.csv --plot ar.png   # while benchmarking
    baobab plot ar.csv [more.csv ...] -o ar.png [--title ...]       # from saved tables

One line per algorithm (the "auto" choice drawn thicker) and one for the MPI
library's own collective, whose bus bandwidth uses the same factor (nccl-tests'
convention: allreduce 2(p-1)/p, allgather and reduce_scatter (p-1)/p, others 1).
"""
import csv
import math
import os

from .._errors import InvalidArgument
from .common import agree, writable_problem

COLUMNS = ("size", "algo", "algbw", "busbw")  # what a plot needs of a bench table


def _num(v):
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def read_csv(paths):
    """The rows of `baobab bench ... --csv` tables; InvalidArgument naming the
    file for one that cannot be read or is not such a table."""
    rows = []
    for p in paths:
        try:
            with open(p, newline="") as f:
                reader = csv.DictReader(f)
                missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise InvalidArgument(f"{p} is not a baobab bench table: no {', '.join(missing)} column"
                                          f"{'s' * (len(missing) > 1)}")
                rows.extend(reader)
        except UnicodeDecodeError:
            raise InvalidArgument(f"{p} is not a baobab bench table: not UTF-8 text") from None
        except csv.Error as e:
            raise InvalidArgument(f"{p} is not a baobab bench table: {e}") from None
        except OSError as e:
            raise InvalidArgument(f"cannot read {p}: {e.strerror or e}") from None
    return rows


def output_problem(path, option):
    """Why a plot cannot be written to `path` (None if it can): matplotlib
    missing, a format it does not write, or a path that cannot be written."""
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        return f"{option} needs matplotlib (pip install matplotlib)"
    ext = os.path.splitext(path)[1][1:].lower()
    kinds = FigureCanvasBase.get_supported_filetypes()
    if ext and ext not in kinds:
        return f"{option} {path}: matplotlib does not write .{ext} files (it writes {', '.join(sorted(kinds))})"
    return writable_problem(path, option)


def busbw_plot(rows, path, title=None):
    """Writes the PNG; rows are bench row dicts (from sweep() or read_csv())."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    lines, mpi = {}, {}
    for r in rows:
        size, busbw, algbw = _num(r.get("size")), _num(r.get("busbw")), _num(r.get("algbw"))
        if size is None or size <= 0 or busbw is None:
            continue
        algo = str(r["algo"]).split("/")[0]
        if r.get("requested", algo) == "auto":
            algo = "auto (baobab's choice)"
        lines.setdefault(algo, {})[size] = busbw
        mpi_us = _num(r.get("mpi_us"))
        if mpi_us and algbw:
            factor = busbw / algbw if algbw else 1.0
            mpi[size] = size / (mpi_us * 1e-6) / 1e9 * factor
    if not lines:
        raise InvalidArgument("no rows with sizes and bus bandwidths to plot")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for algo, pts in sorted(lines.items()):
        xs = sorted(pts)
        auto = algo.startswith("auto")
        ax.plot(xs, [pts[x] for x in xs], "o-", ms=4 if auto else 3, lw=3 if auto else 1.2, label=algo,
                zorder=3 if auto else 2)
    if mpi:
        xs = sorted(mpi)
        ax.plot(xs, [mpi[x] for x in xs], "k--", lw=2, label="MPI library")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("message size (bytes)")
    ax.set_ylabel("bus bandwidth (GB/s)")
    lo, hi = min(min(p) for p in lines.values()), max(max(p) for p in lines.values())
    ticks = [2 ** k for k in range(int(math.log2(lo)), int(math.log2(hi)) + 1, 2)]
    ax.set_xticks(ticks)
    ax.set_xticklabels([_human(t) for t in ticks], rotation=45)
    ax.set_title(title or "bus bandwidth")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _human(n):
    for unit, s in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << s:
            return f"{n >> s}{unit}"
    return str(int(n))


def add_parser(sub):
    p = sub.add_parser("plot", help="bus bandwidth against size from bench CSV tables (PNG)")
    p.add_argument("csv", nargs="+")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--title", default=None)
    p.set_defaults(func=run_cli)


def run_cli(args):
    """Rank 0 reads the tables and draws; the others (under mpiexec) learn how it went."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    problem = None
    if comm.rank == 0:
        problem = output_problem(args.output, "-o/--output")
        if not problem:
            try:
                busbw_plot(read_csv(args.csv), args.output, args.title)
            except (OSError, ValueError) as e:  # InvalidArgument is a ValueError; so are matplotlib's refusals
                problem = " ".join(str(e).split())
    agree(comm, problem)
    if comm.rank == 0:
        print(args.output)
    return 0

"""The baobab command line: info, bench, tune, explain, plot. Run under mpiexec or srun.

A bad command line prints one line on stderr and exits with 2 on every rank.
Every rank parses the same argv, so most mistakes are found by each rank alone
before anything collective starts; what only one rank can see (an output path
that rank 0 writes, the memory of each host) is agreed over the communicator
first, so no rank is left waiting for another.
"""
import argparse
import math
import os
import sys


class UsageError(Exception):
    """A bad command line: printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and goes through UsageError."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


# ---- argument types (argparse turns their ArgumentTypeError into "argument -X: message") -------------

def size_type(minimum=1):
    """A byte size such as 8, 64K, 4M (see bench.parse_size), at least `minimum`."""
    def parse(text):
        from .bench import parse_size
        try:
            n = parse_size(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be at least {minimum} byte{'s' * (minimum != 1)}")
        return n
    return parse


def size_list_type(minimum=1):
    """Comma-separated byte sizes: "8,64K,1M"."""
    one = size_type(minimum)

    def parse(text):
        parts = [p.strip() for p in str(text).split(",")]
        if not any(parts):
            raise argparse.ArgumentTypeError(f"{text!r}: expected one or more comma-separated sizes")
        return [one(p) for p in parts if p]
    return parse


def int_type(minimum, maximum=None):
    def parse(text):
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < minimum or (maximum is not None and n > maximum):
            hi = f" and at most {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"{text!r}: must be at least {minimum}{hi}")
        return n
    return parse


def float_type(above):
    def parse(text):
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(x) or x <= above:
            raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number above {above:g}")
        return x
    return parse


def dtype_type(allowed=None):
    """A dtype name baobab reduces and moves (or one of `allowed`)."""
    def parse(text):
        import numpy as np
        from .dtypes import SUPPORTED, dtype_from_name
        if allowed is not None:
            if text not in allowed:
                raise argparse.ArgumentTypeError(f"unsupported dtype {text!r}; supported: {', '.join(allowed)}")
            return np.dtype(text)
        try:
            return dtype_from_name(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"unsupported dtype {text!r}; supported: {', '.join(SUPPORTED)}") \
                from None
    return parse


# ---- checks that need the job -----------------------------------------------------------------

def world_size():
    """The number of ranks, known to each rank without communicating."""
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_size()


def check_root(root, what="--root"):
    p = world_size()
    if not 0 <= root < p:
        raise UsageError(f"{what} {root} is not a rank of this job (0..{p - 1})")


def agree(mpi_comm, problem):
    """Collective over mpi_comm: each rank brings its own problem (a message, or
    None); if any rank has one, every rank raises UsageError with the first."""
    problems = mpi_comm.allgather(problem)
    for r, msg in enumerate(problems):
        if msg:
            raise UsageError(msg if mpi_comm.Get_size() == 1 else f"{msg} (found on rank {r})")


def writable_problem(path, option, make_dirs=False, replace=False):
    """Why `path` cannot be written (None if it can): tried by opening it, so
    root's permissions, missing directories and special files all count. A file
    made by the trial is removed again. replace: the file will be written as a
    temporary file in its directory, then renamed (so that is what is tried)."""
    if os.path.isdir(path):
        return f"cannot write {option} {path}: it is a directory"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        if not make_dirs:
            return f"cannot write {option} {path}: the directory {parent} does not exist"
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            return f"cannot write {option} {path}: {e.strerror or e}"
    trial = f"{path}.tmp{os.getpid()}" if replace else path
    existed = os.path.exists(trial)
    try:
        with open(trial, "a"):
            pass
    except OSError as e:
        return f"cannot write {option} {path}: {e.strerror or e}"
    if not existed:
        try:
            os.unlink(trial)
        except OSError:
            pass
    return None


def mem_available():
    """Bytes of memory available on this host (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_problem(need_per_rank, ranks_here, what):
    """Why `ranks_here` ranks needing `need_per_rank` bytes each do not fit this host (or None)."""
    avail = mem_available()
    if avail is None or need_per_rank * ranks_here <= 0.9 * avail:
        return None
    share = f" ({_gib(need_per_rank * ranks_here)} for the {ranks_here} ranks on this host)" if ranks_here > 1 else ""
    return f"{what} needs about {_gib(need_per_rank)} per rank{share}, more than the {_gib(avail)} this host has free"


def _gib(n):
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def ranks_on_my_node(comm):
    t = comm.topology
    return next((len(node) for node in t.nodes if comm.rank in node), 1)


# ---- the command line -------------------------------------------------------------------------

def build_parser():
    parser = ArgumentParser(prog="baobab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="MPI library, mpi4py, CUDA, topology and algorithm table")
    from . import bench, plot, tune
    bench.add_parser(sub)
    tune.add_parser(sub)
    plot.add_parser(sub)
    from .comm import _COLL_CODES
    ex = sub.add_parser("explain", help="candidate algorithms and predicted times for one call")
    ex.add_argument("collective", choices=sorted(_COLL_CODES), metavar="collective",
                    help=f"one of {', '.join(sorted(_COLL_CODES))}")
    ex.add_argument("size", type=size_type(0), help="bytes, e.g. 8, 64K, 4M")
    ex.add_argument("--dtype", type=dtype_type(), default="float32")
    ex.add_argument("--root", type=int, default=0)
    ex.set_defaults(func=run_explain)
    return parser


def run_explain(args):
    check_root(args.root)
    import baobab
    comm = baobab.init()
    # every rank asks the model (local, the same answer everywhere), so a refusal is every rank's
    text = comm.explain(args.collective, args.size, dtype=args.dtype, root=args.root, file=False)
    if comm.rank == 0:
        print(text, end="", flush=True)
    return 0


def run_info(args):  # noqa: ARG001 - same signature as the others
    from .info import info
    return info()


def main(argv=None):
    """Runs the command; returns the exit status (2: bad command line, 1: the run failed)."""
    prog = "baobab"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        prog = f"baobab {args.cmd}" + (f" {args.what}" if getattr(args, "what", None) else "")
        if args.cmd == "info":
            return run_info(args)
        return args.func(args)
    except UsageError as e:
        msg = str(e)
        print(msg if msg.startswith("baobab") else f"{prog}: error: {msg}", file=sys.stderr, flush=True)
        return 2
    except Exception as e:  # noqa: BLE001 - baobab's own errors become one line; others stay tracebacks
        from ._errors import Error, InvalidArgument
        if not isinstance(e, (Error, OSError)):
            raise
        bad_input = isinstance(e, InvalidArgument)
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr, flush=True)
        return 2 if bad_input else 1


def _one_line(e):
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())

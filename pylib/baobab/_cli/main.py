"""The baobab command line: info, bench, tune, explain, plot, simulate. Run under mpiexec or srun.

A bad command line prints one line on stderr and exits with 2 on every rank.
Every rank parses the same argv, so most mistakes are found by each rank alone
before anything collective starts; what only one rank can see (an output path
that rank 0 writes, the memory of each host) is agreed over the communicator
first, so no rank is left waiting for another.
"""
import sys

import baobab

from .._core import Coll
from .._errors import Error, InvalidArgument
from . import bench, plot, simulate, tune
from .common import ArgumentParser, UsageError, check_root, collective_type, dtype_type, size_type
from .info import info


# ---- the command line -------------------------------------------------------------------------

def build_parser():
    parser = ArgumentParser(prog="baobab", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="MPI library, mpi4py, CUDA, topology and algorithm table")
    bench.add_parser(sub)
    tune.add_parser(sub)
    plot.add_parser(sub)
    simulate.add_parser(sub)
    ex = sub.add_parser("explain", help="candidate algorithms and predicted times for one call")
    ex.add_argument("collective", type=collective_type, metavar="collective",
                    help=f"one of {', '.join(c.name for c in Coll)}")
    ex.add_argument("size", type=size_type(0), help="bytes, e.g. 8, 64K, 4M")
    ex.add_argument("--dtype", type=dtype_type(), default="float32")
    ex.add_argument("--root", type=int, default=0)
    ex.set_defaults(func=run_explain)
    return parser


def run_explain(args):
    check_root(args.root)
    comm = baobab.init()
    # every rank asks the model (local, the same answer everywhere), so a refusal is every rank's
    text = comm.explain(args.collective, args.size, dtype=args.dtype, root=args.root, file=False)
    if comm.rank == 0:
        print(text, end="", flush=True)
    return 0


def run_info(args):  # noqa: ARG001 - same signature as the others
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
        if not isinstance(e, (Error, OSError)):
            raise
        bad_input = isinstance(e, InvalidArgument)
        print(f"{prog}: error: {_one_line(e)}", file=sys.stderr, flush=True)
        return 2 if bad_input else 1


def _one_line(e):
    return " ".join(str(e).split()) or type(e).__name__


if __name__ == "__main__":
    sys.exit(main())

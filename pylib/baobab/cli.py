"""The baobab command line: info, bench, tune, explain, plot. Run under mpiexec or srun."""
import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="baobab", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("info", help="MPI library, mpi4py, CUDA, topology and algorithm table")
    from . import bench, plot, tune
    bench.add_parser(sub)
    tune.add_parser(sub)
    plot.add_parser(sub)
    ex = sub.add_parser("explain", help="candidate algorithms and predicted times for one call")
    ex.add_argument("collective")
    ex.add_argument("size", help="bytes, e.g. 8, 64K, 4M")
    ex.add_argument("--dtype", default="float32")
    ex.add_argument("--root", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "info":
        from .info import info
        return info()
    if args.cmd == "explain":
        import baobab
        from .bench import parse_size
        comm = baobab.init()
        if comm.rank == 0:
            comm.explain(args.collective, parse_size(args.size), dtype=args.dtype, root=args.root)
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

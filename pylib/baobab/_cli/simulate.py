"""`baobab simulate COLL --ranks N --ppn K --size S`: every algorithm's predicted
time and bus bandwidth on a modelled cluster that need not exist here (see
baobab.simulate for the topologies and the default link rates), the one the
selector would pick marked with '*'. One process; no MPI job needed.

    baobab simulate allreduce --ranks 1024 --ppn 8 --size 1M,64M --topology fat-tree
    baobab simulate allreduce --ranks 256 -b 8 -e 1G -f 4 --link 1=25,2.5 --csv ar.csv --plot ar.png
"""
import math

from .. import _simulate as sim
from .._errors import InvalidArgument
from .common import UsageError, collective_type, dtype_type, float_type, int_type, parse_size, size_type, \
    writable_problem, write_csv
from .plot import busbw_plot, output_problem


def add_parser(sub):
    p = sub.add_parser("simulate", help="predicted time and bus bandwidth of every algorithm on a modelled cluster")
    p.add_argument("collective", type=collective_type, metavar="collective",
                   help="allreduce, reduce_scatter, allgather, bcast, reduce or alltoall")
    p.add_argument("--ranks", type=int_type(1), required=True, help="ranks in the job")
    p.add_argument("--ppn", type=int_type(1), default=8, help="ranks per node (default 8)")
    p.add_argument("--size", type=_size_list, default=None,
                   help="sizes in bytes, comma separated (e.g. 8,1M,64M); or a sweep with -b/-e/-f")
    p.add_argument("-b", "--minbytes", type=size_type(1), default=None)
    p.add_argument("-e", "--maxbytes", type=size_type(1), default=None)
    p.add_argument("-f", "--stepfactor", type=float_type(1.0), default=4.0)
    p.add_argument("--topology", default="two-tier",
                   help=f"{', '.join(sim.SHAPES)} (default two-tier), or a BAOBAB_TOPOLOGY spec")
    p.add_argument("--group", type=int_type(1), default=None, help="nodes per leaf switch (default min(nodes, 32))")
    p.add_argument("--pods", type=int_type(1), default=None, help="leaf switches per pod or dragonfly group")
    p.add_argument("--taper", type=float_type(0.0), default=None,
                   help="uplink oversubscription (default 1; dragonfly 4)")
    p.add_argument("--link", action="append", default=[], type=_link, metavar="LEVEL=GBps,us",
                   help="a link level's rate and latency (0 inside a node, 1 a node's link, 2.. uplinks); repeat")
    p.add_argument("--set", action="append", default=[], type=_param, metavar="KEY=VALUE",
                   help="any other model constant by its tuning-file key (gamma_GBps, copy_GBps, ...)")
    p.add_argument("--tuning", nargs="?", const=True, default=None, metavar="FILE",
                   help="start from a tuning file's measured parameters (default: the default tuning file)")
    p.add_argument("--algo", default=None, help="only this algorithm (a family: its variants)")
    p.add_argument("-d", "--dtype", type=dtype_type(), default="float32")
    p.add_argument("-r", "--root", type=int_type(0), default=0)
    p.add_argument("--budget", type=float_type(0.0), default=2e7,
                   help="largest replay per candidate, in schedule operations (default 2e7)")
    p.add_argument("--csv", help="also write the table to this CSV file")
    p.add_argument("--plot", help="also plot bus bandwidth against size to this PNG (needs matplotlib)")
    p.set_defaults(func=run_cli)


def _size_list(text):
    try:
        out = [parse_size(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise UsageError(f"--size: {e}") from None
    if not out or min(out) < 1:
        raise UsageError(f"--size {text!r}: sizes of at least 1 byte, comma separated")
    return out


def _link(text):
    try:
        lvl, rest = text.split("=", 1)
        gbps, us = rest.split(",", 1)
        lvl, gbps, us = int(lvl), float(gbps), float(us)
    except ValueError:
        raise UsageError(f"--link {text!r}: expected LEVEL=GBps,us, e.g. 1=50,3") from None
    if lvl < 0 or not (gbps > 0 and math.isfinite(gbps)) or not (us >= 0 and math.isfinite(us)):
        raise UsageError(f"--link {text!r}: needs a level >= 0, GB/s > 0 and microseconds >= 0")
    return lvl, (gbps, us)


def _param(text):
    try:
        k, v = text.split("=", 1)
        return k.strip(), float(v)
    except ValueError:
        raise UsageError(f"--set {text!r}: expected KEY=NUMBER, e.g. gamma_GBps=1500") from None


def _sizes(args):
    if args.size and (args.minbytes or args.maxbytes):
        raise UsageError("give --size or -b/-e, not both")
    if args.size:
        return args.size
    if args.minbytes is None and args.maxbytes is None:
        return [1 << 20]
    from .bench import sizes_between
    b = args.minbytes or 8
    e = args.maxbytes or b
    try:
        return sizes_between(b, e, args.stepfactor, limit=64)
    except InvalidArgument as err:
        raise UsageError(f"-b/-e/-f: {err}") from None


def format_table(rows, args, desc):
    lines = [f"# baobab simulate {args.collective}: {args.ranks} ranks, {desc}",
             f"#{'size':>11} {'algorithm':>30} {'time(us)':>12} {'algbw':>9} {'busbw':>9} {'segs':>5} "
             f"{'rounds':>7} {'msgs/rank':>9}  note"]
    for r in rows:
        t = "-" if r["time_s"] is None else f"{r['time_s'] * 1e6:12.2f}"
        ab = "-" if r["algbw"] is None else f"{r['algbw']:9.2f}"
        bb = "-" if r["busbw"] is None else f"{r['busbw']:9.2f}"
        lines.append(f"{'*' if r['chosen'] else ' '}{r['size']:>11} {r['algo']:>30} {t:>12} {ab:>9} {bb:>9} "
                     f"{r['segments']:>5} {r['rounds']:>7} {r['messages']:>9}  {r['note']}")
    lines.append("# * = the selector's choice among the simulated candidates; GB/s; busbw = algbw x the "
                 "nccl-tests factor")
    return "\n".join(lines)


def run_cli(args):
    from ..comm import coll_code
    coll = args.collective = coll_code(args.collective).name
    if coll == "barrier":
        raise UsageError("simulate: barrier moves no data; pick a collective with a size")
    if coll == "alltoall" and args.ranks > 2048:
        raise UsageError(f"--ranks {args.ranks}: alltoall's per-pair counts do not fit a simulation above 2048 ranks")
    sizes = _sizes(args)
    if args.csv and (why := writable_problem(args.csv, "--csv")):
        raise UsageError(why)
    if args.plot and (why := output_problem(args.plot, "--plot")):
        raise UsageError(why)
    try:
        _, _, desc = sim.shape(args.topology, args.ranks, args.ppn, args.group, args.pods, args.taper)
        rows = sim.simulate(coll, ranks=args.ranks, ppn=args.ppn, sizes=sizes, topology=args.topology,
                            group=args.group, pods=args.pods, taper=args.taper, links=dict(args.link),
                            params=dict(args.set), algo=args.algo, dtype=args.dtype.name, root=args.root,
                            tuning=args.tuning, budget=args.budget)
    except InvalidArgument as e:
        raise UsageError(str(e)) from None
    print(format_table(rows, args, desc), flush=True)
    if args.csv:
        write_csv(args.csv, rows)
    if args.plot:
        pts = [dict(r, requested=r["algo"]) for r in rows if r["busbw"] is not None]
        pts += [dict(r, requested="auto") for r in rows if r["chosen"]]
        busbw_plot(pts, args.plot, f"{coll}, predicted: {args.ranks} ranks, {desc}")
    return 0

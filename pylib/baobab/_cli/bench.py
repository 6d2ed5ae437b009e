"""`baobab bench COLLECTIVE`: an nccl-tests-style sweep with validation and the
MPI library's own collective measured on the same buffers in the same run.

Columns: size (bytes of the buffer nccl-tests names: the vector for allreduce,
bcast and reduce, the whole output of allgather, the whole input of
reduce_scatter, what each rank sends in alltoall), count (elements), type,
redop, root, algo, time (us, the slowest rank's mean), algbw = size / time,
busbw = algbw x factor (allreduce 2(p-1)/p; reduce_scatter, allgather,
alltoall (p-1)/p; bcast, reduce 1), #wrong (elements that differ from the
expected result), mpi (us) and ratio = mpi time / baobab time (above 1:
baobab is faster), and model (us), the cost model's prediction for the
algorithm that ran.

--device puts the buffers on the GPU (cupy). The baseline is then what users
of mpi4py write: with a CUDA-aware MPI, the MPI collective on the device
arrays; otherwise copy to the host, the MPI collective, copy back. Under
BAOBAB_DEVICE_EMULATION (no GPU) the buffers stay numpy arrays and baobab runs
them through its device lanes (a test of the command, not a measurement).
"""
import math
import time

import numpy as np

import baobab

from .._core import Coll
from .._errors import InvalidArgument
from ..dtypes import OPS
from . import bench_attention, bench_datatype
from .common import (UsageError, agree, check_root, dtype_type, float_type, int_type, memory_problem,
                     ranks_on_my_node, size_type, writable_problem, write_csv)
from .plot import busbw_plot, output_problem

COLLECTIVES = tuple(c.name for c in Coll if c is not Coll.barrier)  # the core's, by its names
MAX_SIZES = 1000  # sizes in one sweep

def add_parser(sub):
    bench = sub.add_parser("bench", help="benchmarks: collectives against MPI's own, pack, halo")
    kinds = bench.add_subparsers(dest="what", required=True)
    for coll in COLLECTIVES:
        p = kinds.add_parser(coll, help=f"{coll} sweep against the MPI library's own")
        _collective_options(p)
        p.set_defaults(func=run_cli, collective=coll)
    bench_datatype.add_parsers(kinds)
    bench_attention.add_parser(kinds)


def _collective_options(p):
    p.add_argument("-b", "--minbytes", type=size_type(1), default=8, help="smallest size (default 8)")
    p.add_argument("-e", "--maxbytes", type=size_type(1), default=32 << 20, help="largest size (default 32M)")
    p.add_argument("-f", "--stepfactor", type=float_type(1.0), default=2.0, help="size multiplier, above 1 (default 2)")
    p.add_argument("-d", "--dtype", type=dtype_type(), default="float32")
    p.add_argument("-o", "--op", choices=list(OPS), default="sum")
    p.add_argument("-r", "--root", type=int, default=0, help="root rank of bcast and reduce (default 0)")
    p.add_argument("-n", "--iters", type=int_type(1), default=None, help="timed iterations (default: by size)")
    p.add_argument("-w", "--warmup", type=int_type(0), default=3)
    p.add_argument("--algo", default="auto", help="an algorithm name, 'auto' (default) or 'all'")
    p.add_argument("--no-mpi", action="store_true", help="skip the MPI baseline")
    p.add_argument("--device", action="store_true",
                   help="buffers on the GPU (cupy); the baseline: mpi4py staging through the host, or the MPI "
                        "collective on device arrays when MPI is CUDA-aware")
    p.add_argument("--csv", help="also write the table to this CSV file")
    p.add_argument("--plot", help="also plot bus bandwidth against size to this PNG (needs matplotlib)")


def bus_factor(coll, p):
    if coll == "allreduce":
        return 2.0 * (p - 1) / p
    if coll in ("reduce_scatter", "allgather", "alltoall"):
        return (p - 1) / p
    return 1.0


def element_count(coll, nbytes, itemsize, p):
    """Elements per rank buffer unit: the vector, or one rank's block."""
    n = max(nbytes // itemsize, 1)
    if coll in ("allgather", "reduce_scatter", "alltoall"):
        return max(n // p, 1)  # per-rank block
    return n


def case_nbytes(coll, count, itemsize, p):
    """The size column (nccl-tests' convention) of a case with this per-rank count."""
    if coll in ("allgather", "reduce_scatter", "alltoall"):
        return count * p * itemsize
    return count * itemsize


def buffer_elements(coll, count, p):
    """(input, output) elements of one rank's buffers for a per-rank count."""
    n_in = count * (p if coll in ("reduce_scatter", "alltoall") else 1)
    n_out = count * (p if coll in ("allgather", "alltoall") else 1)
    return n_in, n_out


def case_memory(coll, count, itemsize, p):
    """Bytes one rank holds at once for a Case: its buffers, and the int64 and
    float64 temporaries of building the input and checking the result."""
    n_in, n_out = buffer_elements(coll, count, p)
    return (n_in + n_out) * itemsize + 6 * max(n_in, n_out) * 8


class Case:
    """Buffers, the baobab call, the MPI call and the check of one collective at one size."""

    def __init__(self, comm, coll, count, dtype, op, root, device=None):
        from mpi4py import MPI
        self.device = device  # None (host), "emulated" or "cupy"
        self.comm, self.coll, self.count, self.dtype, self.op, self.root = comm, coll, count, dtype, op, root
        p, r = comm.size, comm.rank
        self.p, self.r = p, r
        i = np.arange(count * (p if coll in ("reduce_scatter", "alltoall") else 1), dtype=np.int64)
        # Small integers keep every sum exact in every float type, so checks are exact.
        self.x = ((r + 1) + (i % 7)).astype(dtype)
        if op == "prod":
            self.x = np.where(i % 3 == 0, 2, 1).astype(dtype) if r < 4 else np.ones(i.size, dtype)
        if coll in ("allgather",):
            self.out = np.empty((p, count), dtype)
        elif coll == "reduce_scatter":
            self.out = np.empty(count, dtype)
        elif coll == "alltoall":
            self.x = self.x.reshape(p, count)
            self.out = np.empty((p, count), dtype)
        else:
            self.out = np.empty(count, dtype)
        self.mpi_op = {"sum": MPI.SUM, "prod": MPI.PROD, "min": MPI.MIN, "max": MPI.MAX}[op]
        self.mpi_ok = dtype.kind != "V" and dtype not in (np.dtype(np.float16),) and dtype.name != "bfloat16"
        self.aware = False
        if device == "cupy":
            import cupy
            self.hx, self.hout = self.x, self.out  # the baseline's host copies
            self.x, self.out = cupy.asarray(self.x), cupy.asarray(self.out)
            self.aware = baobab._core.mpi_cuda_aware()[0]

    def host_out(self):
        if self.device == "cupy":
            import cupy
            return cupy.asnumpy(self.out)
        return self.out

    def nbytes(self):
        return case_nbytes(self.coll, self.count, self.dtype.itemsize, self.p)

    def prepare(self):
        """Clears the output (the root of a bcast holds its data there): before the
        timed loops, not inside them, so neither side pays for it."""
        self.out[...] = 0
        if self.coll == "bcast" and self.r == self.root:
            self.out.reshape(-1)[...] = self.x

    def run(self, algo):
        c, x, out = self.comm, self.x, self.out
        if self.coll == "allreduce":
            c.allreduce(x, self.op, out=out, algo=algo)
        elif self.coll == "allgather":
            c.allgather(x, out=out, algo=algo)
        elif self.coll == "reduce_scatter":
            c.reduce_scatter(x, self.op, out=out, algo=algo)
        elif self.coll == "bcast":
            c.bcast(out, self.root, algo=algo)
        elif self.coll == "reduce":
            c.reduce(x, self.op, self.root, out=out if self.r == self.root else None, algo=algo)
        elif self.coll == "alltoall":
            c.alltoall(x, out=out, algo=algo)

    def run_mpi(self):
        if self.device == "cupy" and not self.aware:
            # What mpi4py users write without a CUDA-aware MPI: to the host, MPI, back.
            import cupy
            self.x.get(out=self.hx)
            self._mpi(self.hx, self.hout)
            self.out.set(self.hout)
            cupy.cuda.get_current_stream().synchronize()
            return
        self._mpi(self.x, self.out)
        if self.device == "cupy":
            import cupy
            cupy.cuda.get_current_stream().synchronize()

    def _mpi(self, x, out):
        m = self.comm.mpi_comm
        if self.coll == "allreduce":
            m.Allreduce(x, out, op=self.mpi_op)
        elif self.coll == "allgather":
            m.Allgather(x, out)
        elif self.coll == "reduce_scatter":
            m.Reduce_scatter_block(x, out, op=self.mpi_op)
        elif self.coll == "bcast":
            m.Bcast(out, root=self.root)
        elif self.coll == "reduce":
            m.Reduce(x, out if self.r == self.root else None, op=self.mpi_op, root=self.root)
        elif self.coll == "alltoall":
            m.Alltoall(x, out)

    def expected(self):
        """The result this rank must hold (None: no result here), built one
        source rank at a time (memory independent of the number of ranks)."""
        p, count, coll = self.p, self.count, self.coll
        n = count * (p if coll in ("reduce_scatter", "alltoall") else 1)
        i = np.arange(n, dtype=np.int64)

        def per(r):  # rank r's input, exact in int64
            if self.op == "prod":
                return np.where(i % 3 == 0, 2, 1) if r < 4 else np.ones(n, np.int64)
            return (r + 1) + (i % 7)
        if coll == "bcast":
            return per(self.root).astype(self.dtype)
        if coll == "allgather":
            return np.stack([per(r) for r in range(p)]).astype(self.dtype)
        if coll == "alltoall":
            return np.stack([per(s).reshape(p, count)[self.r] for s in range(p)]).astype(self.dtype)
        if coll == "reduce" and self.r != self.root:
            return None
        red = {"sum": np.add, "prod": np.multiply, "min": np.minimum, "max": np.maximum}[self.op]
        acc = per(0)
        for r in range(1, p):
            red(acc, per(r), out=acc)
        if coll == "reduce_scatter":
            acc = acc[self.r * count:(self.r + 1) * count]
        return acc.astype(self.dtype)

    def wrong(self):
        exp = self.expected()
        if exp is None:
            return 0
        got = self.host_out().reshape(exp.shape)
        return int(np.count_nonzero(got.astype(np.float64) != exp.astype(np.float64)))


def timed(case, fn, iters, warmup, barrier):
    for _ in range(warmup):
        fn()
    barrier()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - t0) / iters


def default_iters(nbytes):
    return int(min(1000, max(5, 2e8 / max(nbytes, 2e5))))


def sweep(comm, coll, sizes, dtype, op="sum", root=0, algos=("auto",), iters=0, warmup=3, mpi=True, device=None):
    """Runs the sweep (iters 0: by size; arguments as the command line checked
    them); every rank returns the same list of row dicts."""
    from mpi4py import MPI
    m = comm.mpi_comm
    rows = []
    for nbytes in sizes:
        count = element_count(coll, nbytes, dtype.itemsize, comm.size)
        case = Case(comm, coll, count, dtype, op, root, device)
        n = iters or default_iters(case.nbytes())
        mpi_t = None
        if mpi and case.mpi_ok:
            case.prepare()
            t = timed(case, case.run_mpi, n, warmup, m.Barrier)
            mpi_t = m.allreduce(t, op=MPI.MAX)
        # every candidate replayed to the end (the runtime's choice cuts off the losers);
        # device buffers: priced by the device model
        on_dev = device is not None
        predicted = {c["name"]: c["predicted"] for c in
                     comm.plan(coll, case.nbytes(), dtype=dtype, root=root, full=True, device=on_dev)["candidates"]}
        for algo in algos:
            name = None if algo == "auto" else algo
            plan = comm.plan(coll, case.nbytes(), dtype=dtype, root=root, algo=name, device=on_dev)
            case.prepare()
            t = timed(case, lambda: case.run(name), n, warmup, comm.barrier)
            t = m.allreduce(t, op=MPI.MAX)
            case.prepare()
            case.run(name)
            wrong = m.allreduce(case.wrong(), op=MPI.SUM)
            size = case.nbytes()
            algbw = size / t / 1e9
            rows.append(dict(size=size, count=count, type=dtype.name, redop=op if coll in (
                "allreduce", "reduce_scatter", "reduce") else "none", root=root if coll in ("bcast", "reduce") else -1,
                algo=plan["algorithm"] + (f"/{plan['segments']}" if plan["segments"] > 1 else ""), requested=algo,
                time_us=t * 1e6, algbw=algbw, busbw=algbw * bus_factor(coll, comm.size), wrong=wrong,
                mpi_us=None if mpi_t is None else mpi_t * 1e6,
                ratio=None if mpi_t is None else mpi_t / t, iters=n,
                model_us=predicted.get(plan["algorithm"], float("nan")) * 1e6))
    return rows


def format_table(rows, coll, comm, device=None):
    where = ""
    if device == "cupy":
        from .._device_coll import transport
        name = transport()[0]
        where = (f"# {comm._device_text()}# mpi column: "
                 f"{'the MPI collective on device arrays' if name == 'cuda-aware' else 'copy to host, MPI, copy back'}"
                 " (mpi4py)\n")
    elif device == "emulated":
        where = "# device lanes on the host emulation (BAOBAB_DEVICE_EMULATION): not a measurement of a device\n"
    head = (f"# baobab bench {coll}: {comm.size} ranks, {comm.topology.num_nodes} nodes "
            f"({comm.topology.source})\n" + where +
            f"#{'size':>11} {'count':>10} {'type':>9} {'redop':>6} {'root':>4} {'algo':>22} "
            f"{'time(us)':>10} {'algbw':>7} {'busbw':>7} {'#wrong':>6} {'mpi(us)':>10} {'ratio':>6} {'model(us)':>10}")
    lines = [head]
    for r in rows:
        mpi = "-" if r["mpi_us"] is None else f"{r['mpi_us']:10.2f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:6.2f}"
        lines.append(f" {r['size']:>11} {r['count']:>10} {r['type']:>9} {r['redop']:>6} {r['root']:>4} "
                     f"{r['algo']:>22} {r['time_us']:10.2f} {r['algbw']:7.3f} {r['busbw']:7.3f} "
                     f"{r['wrong']:>6} {mpi:>10} {ratio:>6} {r['model_us']:10.2f}")
    wrong = sum(r["wrong"] for r in rows)
    lines.append(f"# out of bounds values : {wrong} {'OK' if wrong == 0 else 'FAILED'}")
    err = model_error(rows)
    if err:
        lines.append(f"# model against measured, {err['rows']} rows: median error {err['median'] * 100:.1f} %, "
                     f"worst {err['worst'] * 100:.1f} % ({err['worst_algo']} at {err['worst_size']} bytes); "
                     f"predicted/measured {err['low']:.2f}-{err['high']:.2f}")
    return "\n".join(lines)


def model_error(rows):
    """How far the cost model's predictions are from the measured times:
    {rows, median, worst (relative errors |model - time| / time), worst_algo,
    worst_size, low, high (smallest and largest model / time)}, or None when no
    row has a prediction."""
    rs = [r for r in rows if math.isfinite(r.get("model_us", float("nan"))) and r["time_us"] > 0]
    if not rs:
        return None
    errs = [abs(r["model_us"] - r["time_us"]) / r["time_us"] for r in rs]
    ratios = [r["model_us"] / r["time_us"] for r in rs]
    w = max(range(len(rs)), key=errs.__getitem__)
    return dict(rows=len(rs), median=float(np.median(errs)), worst=errs[w], worst_algo=rs[w]["algo"],
                worst_size=rs[w]["size"], low=min(ratios), high=max(ratios))


def sizes_between(b, e, f, limit=MAX_SIZES):
    """b, b*f, b*f^2, ... up to e (whole bytes, each above the one before);
    InvalidArgument for an empty range, a factor not above 1, or more than
    `limit` sizes."""
    if b < 1 or e < b:
        raise InvalidArgument(f"no sizes from {b} to {e} bytes: the smallest must be at least 1 and at most the "
                              "largest")
    if not (math.isfinite(f) and f > 1):
        raise InvalidArgument(f"the size factor must be a finite number above 1, got {f}")
    out, s = [], float(b)
    while int(s) <= e:
        if len(out) == limit:
            raise InvalidArgument(f"factor {f} gives more than {limit} sizes from {b} to {e} bytes")
        out.append(int(s))
        s = max(s * f, int(s) + 1.0)  # always moves on, however close f is to 1
    return out


def _check_cli(args, algo_names):
    """The checks every rank makes alone, from argv and the world size (no communication)."""
    if args.maxbytes < args.minbytes:
        raise UsageError(f"-e/--maxbytes {args.maxbytes} is smaller than -b/--minbytes {args.minbytes}: no sizes "
                         "to run")
    try:
        sizes = sizes_between(args.minbytes, args.maxbytes, args.stepfactor)
    except InvalidArgument as e:
        raise UsageError(f"-b/-e/-f: {e}") from None
    check_root(args.root, "-r/--root")
    if args.algo not in ("auto", "all") and args.algo not in algo_names:
        raise UsageError(f"--algo {args.algo!r} is not an algorithm of {args.collective}; known: auto, all, "
                         f"{', '.join(algo_names)}")
    return sizes


def _check_job(args, comm, sizes, dtype):
    """The checks that need the communicator: this rank's problem, or None (agreed by the caller)."""
    coll, p = args.collective, comm.size
    if args.algo not in ("auto", "all"):
        for nbytes in sizes:  # a forced algorithm must run at every size (the plan is the same on every rank)
            count = element_count(coll, nbytes, dtype.itemsize, p)
            try:
                comm.plan(coll, case_nbytes(coll, count, dtype.itemsize, p), dtype=dtype, root=args.root,
                          algo=args.algo)
            except InvalidArgument as e:
                return f"--algo {args.algo}: {e}"
    count = element_count(coll, max(sizes), dtype.itemsize, p)
    problem = memory_problem(case_memory(coll, count, dtype.itemsize, p), ranks_on_my_node(comm),
                             f"the largest size ({max(sizes)} bytes)")
    if problem or comm.rank != 0:
        return problem
    if args.csv:
        problem = writable_problem(args.csv, "--csv")
    if not problem and args.plot:
        problem = output_problem(args.plot, "--plot")
    return problem


def run_cli(args):
    algo_names = [a["name"] for a in baobab.algorithms() if a["collective"] == args.collective]
    sizes = _check_cli(args, algo_names)
    dtype = args.dtype
    comm = baobab.init()
    device = None
    if args.device:
        device = "emulated" if comm._emulate else "cupy"
        if device == "cupy" and dtype.name == "bfloat16":
            raise UsageError("--device: cupy has no bfloat16 arrays; pick another -d/--dtype")
    agree(comm.mpi_comm, _check_job(args, comm, sizes, dtype) or (_device_problem() if device == "cupy" else None))
    if args.algo == "all":
        probe = max(sizes)
        algos = ["auto"] + [a for a in algo_names if _supported(comm, args.collective, a, probe, dtype)]
    else:
        algos = [args.algo]
    rows = sweep(comm, args.collective, sizes, dtype, args.op, args.root, algos, args.iters or 0, args.warmup,
                 not args.no_mpi, device)
    if comm.rank == 0:
        print(format_table(rows, args.collective, comm, device), flush=True)
        if args.csv:
            write_csv(args.csv, rows)
        if args.plot:
            nodes = comm.topology.num_nodes
            busbw_plot(rows, args.plot, f"{args.collective}: {comm.size} ranks, {nodes} node{'s' * (nodes > 1)}")
    return 0 if all(r["wrong"] == 0 for r in rows) else 1


def _device_problem():
    """Why --device cannot run on this rank, or None."""
    try:
        import cupy
    except ImportError:
        return "--device needs cupy (pip install cupy-cuda12x or cupy-cuda13x)"
    if not baobab._core.cuda_available():
        return f"--device: no usable CUDA device ({baobab._core.cuda_status()})"
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - cupy without a driver
        return f"--device: cupy sees no device ({e})"
    return None


def _supported(comm, coll, algo, nbytes, dtype):
    for c in comm.plan(coll, nbytes, dtype=dtype)["candidates"]:
        if c["name"] == algo:
            return not c["unsupported"]
    return False

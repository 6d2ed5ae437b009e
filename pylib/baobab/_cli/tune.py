"""`baobab tune`: measures the cost model's parameters on this job and writes
the tuning file every later run reads (BAOBAB_TUNING, or the default path).

For each link level present in the topology (0 = inside a node, 1 = between
nodes, 2.. = between coarser groups) ranks at that level run a ping-pong: alpha
is half the round trip of an 8-byte message; the bandwidth is that of a stream:
one rank sends K large messages back to back and the other acknowledges the
last, and the rate is the slope between K = 1 and K = 5 (what the extra
messages add), so that neither the latency nor a link's burst allowance (a
token bucket lets the first few hundred KiB after an idle pause through at
line rate) inflates it: collectives move long flows, not single messages.
Inside a node every rank takes part at once (disjoint pairs), because shared
memory is shared: the per-pair rate
under that load is what a collective gets. Between nodes one pair measures,
because the cost model itself shares a node's uplink among its ranks. The reduction
(gamma) and copy rates are measured with the core's own kernels on every rank
at once, so that they include the sharing of memory bandwidth (and of cores,
when ranks outnumber them) that a collective meets; the mean over ranks is kept.
Ranks not in the measuring pair wait in a baobab barrier, which yields the CPU.

Where the job spans three or more hosts, each host's own link is measured
too: the node leaders ping-pong in rounds of disjoint pairs (every pair once,
a round-robin tournament) and a host's rate is the best it reached with any
partner (a pair runs at its slower end's rate, so the fastest partner reveals
the host's own). These become host.<name>.bw_GBps keys, and collectives size
their blocks to them where hosts' links differ (allreduce "weighted", and the
hierarchical algorithms between nodes).

For non-contiguous messages, rank 0 measures baobab's packer and MPI_Pack on
byte vector types of several block sizes (the model that decides, per message,
whether baobab packs or MPI walks a derived datatype: keys pack.ours.<B>_GBps
and pack.mpi.<B>_GBps).

With --device, every rank also measures its GPU at once (ranks sharing a GPU
share it, as in a collective; the mean is kept), through the device
collectives' own backend (_core.measure_device): copies between the device
and pinned host memory, device-to-device copies and the reduction kernel,
each as the slope between one and several back-to-back operations, and the
latency of an 8-byte copy queued and seen done (keys device.d2h_GBps,
device.h2d_GBps, device.copy_GBps, device.reduce_GBps, device.latency_us: the
device model, docs/devices.md). Where MPI takes device pointers (transport
auto or cuda-aware), the top level's pair repeats its ping-pong and stream
on device buffers: device.aware_us is the latency added, device.aware_GBps
the rate. Under BAOBAB_DEVICE_EMULATION the emulation is measured (a test of
the procedure; its rates are the host's).
"""
import datetime
import os
import time

import numpy as np

import baobab

from .. import _core
from .. import _device_coll as _dc
from .bench import _device_problem
from .bench_datatype import pack_memory, pack_rates
from .common import agree, int_type, memory_problem, ranks_on_my_node, size_type, writable_problem

PACK_BLOCKS = (8, 64, 512, 4096, 32768)  # block sizes of the pack.ours/pack.mpi keys


def add_parser(sub):
    p = sub.add_parser("tune", help="measure per-level latency and bandwidth, write the tuning file")
    p.add_argument("-o", "--output", help="tuning file to write (default: BAOBAB_TUNING or ~/.config/baobab/tuning.conf)")
    p.add_argument("--bytes", type=size_type(1), default=4 << 20, help="message size for bandwidth (default 4M)")
    p.add_argument("--reps", type=int_type(1), default=20, help="round trips of the latency measurement (default 20; bandwidth streams: a quarter of it, at least 3)")
    p.add_argument("--pack-bytes", type=size_type(0), default=32 << 20,
                   help="data bytes per pack measurement (default 32M; 0: do not measure packing)")
    p.add_argument("--device", action="store_true",
                   help="also measure each rank's GPU for the device model: pinned copies, device copies, the "
                        "reduction kernel, latency, and a CUDA-aware MPI's cost (docs/devices.md)")
    p.add_argument("--device-bytes", type=size_type(4096), default=64 << 20,
                   help="bytes per device copy and reduction measured (default 64M)")
    p.set_defaults(func=run_cli)


def link_level(t, a, b):
    return next((lv for lv in range(t.levels) if t.groups[lv][a] == t.groups[lv][b]), t.levels)


def link_pairs(topology):
    """Pairs per link level present: level 0 as many disjoint pairs as the nodes
    allow (the first is the reported one), other levels one pair."""
    t = topology
    levels = {}
    for a in range(t.size):
        for b in range(a + 1, t.size):
            levels.setdefault(link_level(t, a, b), [(a, b)])
    if 0 in levels:
        pairs = []
        for node in t.nodes:
            free = list(node)
            while len(free) >= 2:
                a, b = free.pop(0), free.pop(0)
                pairs.append((a, b))
        levels[0] = pairs
    return dict(sorted(levels.items()))


def tournament(n):
    """Rounds of disjoint pairs of 0..n-1 in which every pair meets once (the
    circle method; with n odd one index sits out each round)."""
    idx = list(range(n)) + ([None] if n % 2 else [])
    m = len(idx)
    rounds = []
    for _ in range(m - 1):
        pairs = [(idx[i], idx[m - 1 - i]) for i in range(m // 2)]
        rounds.append([tuple(sorted(p)) for p in pairs if None not in p])
        idx = [idx[0], idx[-1]] + idx[1:-1]
    return rounds


def host_rates(comm, mpi, nbytes, reps):
    """{host: GB/s} of each node's link, measured between node leaders, or {}
    when fewer than three distinct hosts hold the nodes (two hosts cannot be
    told apart: a pair runs at its slower end's rate)."""
    t = comm.topology
    leaders = [nodes[0] for nodes in t.nodes]
    hosts = [t.hosts[r] for r in leaders]
    if len(leaders) < 3 or len(set(hosts)) != len(hosts):
        return {}
    best = {}
    for pairs in tournament(len(leaders)):
        comm.barrier()
        for i, j in pairs:
            a, b = leaders[i], leaders[j]
            if comm.rank in (a, b):
                bw = stream_rate(mpi, a, b, nbytes, reps)
                for k in (i, j):
                    best[hosts[k]] = max(best.get(hosts[k], 0.0), bw)
    comm.barrier()
    merged = {}
    for part in mpi.allgather(best):
        for h, bw in part.items():
            merged[h] = max(merged.get(h, 0.0), bw)
    return merged


STREAM_K = 5  # messages of the long stream (the short one is one message)


def stream_rate(mpi, a, b, nbytes, reps, zeros=np.zeros):
    """GB/s from a to b: the slope of the median time of streams of 1 and
    STREAM_K messages of nbytes, each ended by a one-byte acknowledgement.
    zeros: makes the buffers (cupy.zeros: device buffers)."""
    one = _stream(mpi, a, b, nbytes, 1, reps, zeros)
    many = _stream(mpi, a, b, nbytes, STREAM_K, reps, zeros)
    if many > one:
        return (STREAM_K - 1) * nbytes / (many - one) / 1e9
    return STREAM_K * nbytes / max(many, 1e-9) / 1e9  # noise swallowed the slope: the whole stream's rate


def _stream(mpi, a, b, nbytes, k, reps, zeros=np.zeros):
    me = mpi.Get_rank()
    buf = zeros(max(nbytes, 1), np.uint8)
    ack = np.zeros(1, np.uint8)
    times = []
    for i in range(reps + 1):  # the first is a warm-up
        t0 = time.perf_counter()
        if me == a:
            for _ in range(k):
                mpi.Send([buf, nbytes, _byte()], dest=b, tag=78)
            mpi.Recv([ack, 1, _byte()], source=b, tag=79)
        else:
            for _ in range(k):
                mpi.Recv([buf, nbytes, _byte()], source=a, tag=78)
            mpi.Send([ack, 1, _byte()], dest=a, tag=79)
        if i:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def pingpong(mpi, a, b, nbytes, reps, zeros=np.zeros):
    me = mpi.Get_rank()
    buf = zeros(max(nbytes, 1), np.uint8)
    peer = b if me == a else a
    for _ in range(3):
        _exchange(mpi, me == a, buf, nbytes, peer)
    t0 = time.perf_counter()
    for _ in range(reps):
        _exchange(mpi, me == a, buf, nbytes, peer)
    return (time.perf_counter() - t0) / reps / 2


def _exchange(mpi, first, buf, n, peer):
    if first:
        mpi.Send([buf, n, _byte()], dest=peer, tag=77)
        mpi.Recv([buf, n, _byte()], source=peer, tag=77)
    else:
        mpi.Recv([buf, n, _byte()], source=peer, tag=77)
        mpi.Send([buf, n, _byte()], dest=peer, tag=77)


def _byte():
    from mpi4py import MPI
    return MPI.BYTE


def local_rates(nbytes=64 << 20, reps=5):
    a = np.ones(nbytes // 4, np.float32)
    b = np.ones_like(a)
    out = np.empty_like(a)
    f32, add = _core.DType.float32, _core.RedOp.sum
    _core.reduce_local(f32, add, a, b, out)
    t0 = time.perf_counter()
    for _ in range(reps):
        _core.reduce_local(f32, add, a, b, out)
    gamma = (time.perf_counter() - t0) / reps
    np.copyto(out, a)
    t0 = time.perf_counter()
    for _ in range(reps):
        np.copyto(out, a)
    copy = (time.perf_counter() - t0) / reps
    return nbytes / gamma / 1e9, nbytes / copy / 1e9


def device_setup():
    """(emulated, zeros): whether the device is the host emulation, and how to
    make a device buffer for MPI (None where MPI does not take device pointers)."""
    emulated = _dc.emulation() is not None
    path = _dc.emulation() or _dc.transport()[0]
    if path == "staged":
        return emulated, None
    if emulated:
        return True, np.zeros
    import cupy
    return False, cupy.zeros


def measure(comm, nbytes=4 << 20, reps=20, pack_bytes=32 << 20, device_bytes=0):
    """Returns {key: value} of the tuning file; the same on every rank (the
    arguments as the command line checked them). device_bytes > 0: the device
    model's keys too (--device)."""
    mpi = comm.mpi_comm.Dup()
    results = {}
    aware = None
    emulated, dev_zeros = device_setup() if device_bytes else (False, None)
    if device_bytes and not emulated:
        comm.use_gpu()
    try:
        links = link_pairs(comm.topology)
        top = max(links) if links else None
        for L, pairs in links.items():
            comm.barrier()
            for a, b in pairs:
                if comm.rank in (a, b):
                    lat = pingpong(mpi, a, b, 8, max(reps * 10, 100))
                    bw = stream_rate(mpi, a, b, nbytes, max(3, reps // 4))
                    if (a, b) == pairs[0] and comm.rank == a:
                        results[L] = (lat * 1e6, bw, a, b, len(pairs))
                    if (a, b) == pairs[0] and L == top and dev_zeros is not None:
                        # the same pair on device buffers: what a CUDA-aware MPI adds
                        dlat = pingpong(mpi, a, b, 8, max(reps * 10, 100), dev_zeros)
                        dbw = stream_rate(mpi, a, b, nbytes, max(3, reps // 4), dev_zeros)
                        if comm.rank == a:
                            aware = (max(0.0, dlat - lat) * 1e6, dbw)
            comm.barrier()
        dev = _core.measure_device(emulated, device_bytes, max(3, reps // 4)) if device_bytes else None
        comm.barrier()
        hosts = host_rates(comm, mpi, nbytes, max(3, reps // 4))
        comm.barrier()
        gamma, copy = local_rates()
        packs = None
        if comm.rank == 0 and pack_bytes:
            packs = [pack_rates(b, pack_bytes) for b in PACK_BLOCKS]
        comm.barrier()  # the others wait here (yielding), not spinning inside MPI
        allres = mpi.allgather((results, gamma, copy))
        packs = mpi.bcast(packs)
        devs = mpi.allgather(dev)
        aware = next((a for a in mpi.allgather(aware) if a is not None), None)
    finally:
        mpi.Free()
    merged = {}
    for res, _, _ in allres:
        merged.update(res)
    gamma = sum(g for _, g, _ in allres) / len(allres)
    copy = sum(c for _, _, c in allres) / len(allres)
    out = {}
    for L, (alpha, bw, a, b, npairs) in sorted(merged.items()):
        out[f"link.{L}.alpha_us"] = round(alpha, 3)
        out[f"link.{L}.bw_GBps"] = round(bw, 3)
        out[f"# link.{L}"] = f"ranks {a} and {b}" + (f", {npairs} pairs at once" if npairs > 1 else "")
    if hosts:
        out["# host"] = "each host's link: its best rate with any other node leader"
    for h, bw in sorted(hosts.items()):
        out[f"host.{h}.bw_GBps"] = round(bw, 4)
    out["gamma_GBps"] = round(gamma, 3)
    out["copy_GBps"] = round(copy, 3)
    for r in packs or []:
        out[f"pack.ours.{r['block']}_GBps"] = round(r["pack"], 3)
        out[f"pack.mpi.{r['block']}_GBps"] = round(r["mpi_pack"], 3)
    if device_bytes:
        out["# device"] = (f"every rank's {'emulated device (host memory)' if emulated else 'GPU'} at once, "
                           f"{device_bytes} bytes per operation; the mean over ranks")
        for key in ("d2h_GBps", "h2d_GBps", "copy_GBps", "reduce_GBps", "latency_us"):
            out[f"device.{key}"] = round(sum(d[key] for d in devs) / len(devs), 3)
        if aware is not None:
            out["# device.aware"] = "the top level's pair on device buffers, against host buffers"
            out["device.aware_us"] = round(aware[0], 3)
            out["device.aware_GBps"] = round(aware[1], 3)
    return out


def write(path, values, comm):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(f"# baobab tuning file, written by `baobab tune` on "
                f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
        f.write(f"# {comm.size} ranks, {comm.topology.num_nodes} nodes, levels {comm.topology.level_names} "
                f"({comm.topology.source})\n")
        for k, v in values.items():
            if k.startswith("#"):
                f.write(f"{k}: {v}\n")
            else:
                f.write(f"{k} = {v}\n")
    os.replace(tmp, path)


def run_cli(args):
    comm = baobab.Communicator(tuning="")  # measure with the model's defaults; the file may not exist yet
    path = args.output or os.environ.get("BAOBAB_TUNING") or _core.default_tuning_path()
    # before measuring: the file rank 0 writes (the default's directory is made), and the memory
    problem = memory_problem(args.bytes, ranks_on_my_node(comm), f"--bytes {args.bytes}")
    if comm.rank == 0 and not problem and args.pack_bytes:
        problem = memory_problem(max(pack_memory(b, args.pack_bytes) for b in PACK_BLOCKS), 1,
                                 f"--pack-bytes {args.pack_bytes}")
    if comm.rank == 0 and not problem:
        problem = writable_problem(path, "-o/--output" if args.output else "the tuning file",
                                   make_dirs=not args.output, replace=True)
    if not problem and args.device and _dc.emulation() is None:
        problem = _device_problem()
    if not problem and args.device:
        problem = memory_problem(4 * args.device_bytes, ranks_on_my_node(comm), f"--device-bytes {args.device_bytes}")
    agree(comm.mpi_comm, problem)
    values = measure(comm, args.bytes, args.reps, args.pack_bytes, args.device_bytes if args.device else 0)
    if comm.rank == 0:
        write(path, values, comm)
        print(f"wrote {path}")
        for k, v in values.items():
            if not k.startswith("#"):
                print(f"  {k} = {v}")
    return 0

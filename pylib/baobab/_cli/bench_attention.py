"""`baobab bench attention`: decode latency of tree_decode (one merge
collective) against the ring (K/V shards passed around), for one query token,
batch 1, on the same ranks in the same run, with the bytes each rank sent as
counted by the runtime; and the local kernel's throughput against numpy's
matmul measured in the same run."""
import time

import numpy as np

import baobab

from .. import attention
from .common import agree, dtype_type, int_type, mem_available, memory_problem, size_list_type


def add_parser(sub):
    p = sub.add_parser("attention", help="tree decode vs ring decode; partial() GFLOP/s vs numpy matmul")
    p.add_argument("--seq", type=size_list_type(1), default=[16 << 10, 64 << 10, 256 << 10, 1 << 20],
                   help="total sequence lengths (default 16K,64K,256K,1M)")
    p.add_argument("--heads", type=int_type(1), default=8)
    p.add_argument("-d", type=int_type(1), default=64, help="head dimension (default 64)")
    p.add_argument("--iters", type=int_type(1), default=10)
    p.add_argument("--kernel", type=size_list_type(1), default=[4096],
                   help="kv lengths for the kernel throughput (default 4096)")
    p.add_argument("--dtype", type=dtype_type(("float32", "float64")), default="float32")
    p.set_defaults(func=run)


def kernel_memory(kv, h, d, itemsize):
    """Bytes rank 0 holds for the kernel measurement: q, k, v, the output and the
    matmul reference (2048 x 2048, three matrices)."""
    return (4 * h * kv * d + 3 * 2048 * 2048) * itemsize


def _timed(comm, fn, iters):
    from mpi4py import MPI
    fn()
    best = float("inf")
    for _ in range(iters):
        comm.barrier()
        t0 = time.perf_counter()
        fn()
        best = min(best, comm.mpi_comm.allreduce(time.perf_counter() - t0, op=MPI.MAX))
    return best


def run(args):
    from mpi4py import MPI
    comm = baobab.init()
    dtype = args.dtype
    h, d = args.heads, args.d
    problem = None
    if comm.rank == 0:  # the kernel runs on rank 0 alone; the sequence lengths skip what does not fit
        problem = memory_problem(kernel_memory(max(args.kernel), h, d, dtype.itemsize), 1,
                                 f"--kernel {max(args.kernel)}")
    agree(comm.mpi_comm, problem)
    rows = []
    for total in args.seq:
        per = total // comm.size + (1 if comm.rank < total % comm.size else 0)
        need = 2 * h * per * d * dtype.itemsize * 3  # k, v and the ring's buffers
        too_big = comm.mpi_comm.allreduce(need) > 0.6 * (mem_available() or 8 << 30)  # all ranks of this host together
        if comm.mpi_comm.allreduce(too_big, op=MPI.LOR):  # every rank skips, or none (hosts differ)
            if comm.rank == 0:
                print(f"# skipping {total}: {need / 2**30:.1f} GiB per rank is more memory than this host has free")
            continue
        rng = np.random.default_rng(comm.rank)
        q = np.random.default_rng(0).standard_normal((1, h, 1, d)).astype(dtype)
        k = rng.standard_normal((1, h, per, d)).astype(dtype)
        v = rng.standard_normal((1, h, per, d)).astype(dtype)
        s0 = comm.stats()
        t_tree = _timed(comm, lambda: attention.tree_decode(q, k, v, comm), args.iters)
        s1 = comm.stats()
        t_ring = _timed(comm, lambda: attention.ring_decode(q, k, v, comm), args.iters)
        s2 = comm.stats()
        calls = args.iters + 1
        tree_bytes = (s1["bytes_sent"] - s0["bytes_sent"] + s1["p2p_bytes_sent"] - s0["p2p_bytes_sent"]) / calls
        ring_bytes = (s2["p2p_bytes_sent"] - s1["p2p_bytes_sent"] + s2["bytes_sent"] - s1["bytes_sent"]) / calls
        a = attention.tree_decode(q, k, v, comm)
        b = attention.ring_decode(q, k, v, comm)
        err = float(np.abs(a.astype(np.float64) - b).max() / max(np.abs(b).max(), 1e-30))
        tree_bytes = max(comm.mpi_comm.allgather(tree_bytes))
        ring_bytes = max(comm.mpi_comm.allgather(ring_bytes))
        rows.append((total, t_tree, t_ring, tree_bytes, ring_bytes, err))
        del k, v
    if comm.rank == 0:
        print(f"# baobab bench attention: decode of one token, batch 1, {h} heads, d={d}, {dtype.name}, "
              f"{comm.size} ranks; best of {args.iters}; bytes = most any rank sent per call")
        print(f"#{'seq':>9} {'tree (us)':>10} {'ring (us)':>10} {'ring/tree':>9} {'tree B/rank':>12} "
              f"{'ring B/rank':>12} {'agree':>8}")
        for total, tt, tr, bt, br, err in rows:
            print(f" {total:>9} {tt * 1e6:10.1f} {tr * 1e6:10.1f} {tr / tt:9.2f} {bt:12.0f} {br:12.0f} {err:8.1e}",
                  flush=True)
    # the local kernel against numpy's matmul, on rank 0 (others wait)
    if comm.rank == 0:
        n = 2048
        a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
        a @ a
        t0 = time.perf_counter()
        for _ in range(3):
            a @ a
        mm = 2 * n**3 * 3 / (time.perf_counter() - t0) / 1e9
        print(f"# partial(): bh={h}, d={d}, q_len = kv_len; numpy matmul {n}x{n} {dtype.name}: {mm:.1f} GFLOP/s")
        print(f"#{'kv_len':>7} {'causal':>6} {'GFLOP/s':>8} {'of matmul':>9}")
        for kv in args.kernel:
            rng = np.random.default_rng(1)
            q, k, v = (rng.standard_normal((1, h, kv, d)).astype(dtype) for _ in range(3))
            for causal in (False, True):
                off = 0 if causal else None
                attention.partial(q, k, v, causal_offset=off)
                t0 = time.perf_counter()
                reps = 3
                for _ in range(reps):
                    attention.partial(q, k, v, causal_offset=off)
                el = (time.perf_counter() - t0) / reps
                pairs = kv * (kv + 1) / 2 if causal else kv * kv
                gf = 4 * h * pairs * d / el / 1e9
                print(f" {kv:>7} {str(causal):>6} {gf:8.1f} {100 * gf / mm:8.1f}%", flush=True)
    comm.barrier()
    return 0


"""Run under mpiexec: every collective, every algorithm forced, every dtype and op,
sizes 0, 1, primes, not divisible by the rank count, and 16 MiB; in-place and
out-of-place; results compared exactly with numpy references computed on every
rank, and floats checked to be bitwise identical across ranks.

Usage: collectives.py [quick|full]
"""
import sys

import numpy as np
from mpi4py import MPI

import baobab
from baobab.dtypes import bfloat16

MODE = sys.argv[1] if len(sys.argv) > 1 else "full"
comm = baobab.init(timeout=120)
p, r = comm.size, comm.rank
mpi = comm.mpi_comm

DTYPES = [np.float16, bfloat16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
          np.uint8, np.uint16, np.uint32, np.uint64]
OPS = {"sum": np.sum, "prod": np.prod, "min": np.min, "max": np.max}
SIZES = [0, 1, 7, 13, 5 * p + 3]
failures = []
checks = [0]


def algos(coll):
    """Every algorithm the model would consider here; a composition's family
    (split_rail: the selector picks its variant) where one of its variants is."""
    entries = [a for a in baobab.algorithms() if a["collective"] == coll]
    plan = comm.plan(coll, 64 * p, dtype=np.float32)
    cand = {c["name"]: c for c in plan["candidates"]}
    return [None] + [a["name"] for a in entries
                     if any(not cand[v]["unsupported"] for v in (a["variants"] or [a["name"]]))]


def data(rank, n, dtype, op, seed=0):
    """Small integers: every sum, product, min and max is exact in every dtype."""
    rng = np.random.default_rng(1000 * seed + rank)
    if op == "prod":
        v = rng.choice([1, 1, 1, 2], size=n) if np.dtype(dtype).kind == "u" else rng.choice([-1, 1, 1, 2], size=n)
    elif np.dtype(dtype).kind == "u":
        v = rng.integers(0, 9, size=n)
    else:
        v = rng.integers(-8, 9, size=n)
    return v.astype(dtype)


def reference(op, dtype, n, seed=0):
    stack = np.stack([data(q, n, dtype, op, seed).astype(np.float64 if np.dtype(dtype).kind == "f"
                                                        or dtype is bfloat16 else np.int64) for q in range(p)])
    red = OPS[op](stack, axis=0) if n else np.zeros(0)
    return red.astype(dtype)


def check(cond, what):
    checks[0] += 1
    if not cond:
        failures.append(what)
        print(f"rank {r}: FAILED {what}", flush=True)


def same(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint8) if a.size else a, b.view(np.uint8) if b.size else b)


# ---- allreduce: every dtype x op x size, default algorithm, out-of-place and in-place
for dtype in DTYPES:
    for op in OPS:
        for n in SIZES:
            x = data(r, n, dtype, op)
            want = reference(op, dtype, n)
            y = comm.allreduce(x, op)
            check(same(y, want), f"allreduce {np.dtype(dtype).name} {op} n={n}")
            z = x.copy()
            comm.allreduce(z, op, out=z)
            check(same(z, want), f"allreduce in-place {np.dtype(dtype).name} {op} n={n}")

# ---- every algorithm forced, for each collective
sizes = SIZES + ([4 << 20] if MODE == "full" else [])  # 4M float32 elements = 16 MiB
for algo in algos("allreduce"):
    for dtype in (np.float32, np.int64, bfloat16):
        for n in sizes:
            if n > 1000 and dtype is not np.float32:
                continue
            for op in (("sum", "max") if n < 1000 else ("sum",)):
                x = data(r, n, dtype, op, seed=3)
                y = comm.allreduce(x, op, algo=algo)
                check(same(y, reference(op, dtype, n, seed=3)), f"allreduce algo={algo} {np.dtype(dtype).name} {op} n={n}")

for algo in algos("reduce_scatter"):
    for dtype in (np.float32, np.int32, np.float16):
        for rows in (p, 3 * p + 1, 1, 0, 2 * p + (4 << 20 if MODE == "full" and dtype is np.float32 else 0)):
            x = data(r, rows, dtype, "sum", seed=5)
            full = reference("sum", dtype, rows, seed=5)
            y = comm.reduce_scatter(x, algo=algo)
            part = np.array_split(full, p)[r]
            check(same(y, part), f"reduce_scatter algo={algo} {np.dtype(dtype).name} rows={rows}")
    # explicit uneven counts
    counts = [(q % 3) for q in range(p)]
    x = data(r, sum(counts), np.float64, "sum", seed=6)
    y = comm.reduce_scatter(x, counts=counts, algo=algo)
    off = sum(counts[:r])
    check(same(y, reference("sum", np.float64, sum(counts), seed=6)[off:off + counts[r]]),
          f"reduce_scatter algo={algo} counts={counts}")

for algo in algos("allgather"):
    for dtype in (np.float32, np.uint8, bfloat16):
        for n in (0, 1, 7, 13) + ((1 << 20,) if MODE == "full" and dtype is np.float32 else ()):
            x = data(r, n, dtype, "sum", seed=7)
            y = comm.allgather(x, algo=algo)
            want = np.stack([data(q, n, dtype, "sum", seed=7) for q in range(p)])
            check(same(y, want), f"allgather algo={algo} {np.dtype(dtype).name} n={n}")
    rows = r % 3 + (1 if r == 0 else 0)
    x = np.full((rows, 2), r, np.int16)
    y, got = comm.allgatherv(x, algo=algo)
    want = np.concatenate([np.full((q % 3 + (1 if q == 0 else 0), 2), q, np.int16) for q in range(p)])
    check(same(y, want) and list(got) == [q % 3 + (1 if q == 0 else 0) for q in range(p)],
          f"allgatherv algo={algo}")

for algo in algos("bcast"):
    for root in range(p):
        for n in (0, 1, 13) + ((4 << 20,) if MODE == "full" and root == p - 1 else ()):
            x = data(root, n, np.float32, "sum", seed=9) if r == root else np.zeros(n, np.float32)
            comm.bcast(x, root=root, algo=algo)
            check(same(x, data(root, n, np.float32, "sum", seed=9)), f"bcast algo={algo} root={root} n={n}")

for algo in algos("reduce"):
    for root in range(p):
        for n in (0, 1, 13) + ((4 << 20,) if MODE == "full" and root == 0 else ()):
            for op in ("sum", "min"):
                x = data(r, n, np.float64 if n < 1000 else np.float32, op, seed=11)
                y = comm.reduce(x, op, root=root, algo=algo)
                if r == root:
                    check(same(y, reference(op, x.dtype.type, n, seed=11)),
                          f"reduce algo={algo} root={root} n={n} {op}")
                else:
                    check(y is None, f"reduce algo={algo} returns None off-root")

for algo in algos("alltoall"):
    for n in (0, 1, 5) + ((1 << 18,) if MODE == "full" else ()):
        x = np.stack([np.arange(n, dtype=np.int32) + 1000 * r + 10 * d for d in range(p)])
        y = comm.alltoall(x, algo=algo)
        want = np.stack([np.arange(n, dtype=np.int32) + 1000 * s + 10 * r for s in range(p)])
        check(same(y, want), f"alltoall algo={algo} n={n}")
    rng = np.random.default_rng(17)
    matrix = rng.integers(0, 4, size=(p, p))
    sc = matrix[r]
    x = np.concatenate([np.full(int(sc[d]), 100 * r + d, np.float64) for d in range(p)]) if sc.sum() else np.zeros(0)
    y, rc = comm.alltoallv(x, sc, algo=algo)
    want = np.concatenate([np.full(int(matrix[s, r]), 100 * s + r, np.float64) for s in range(p)])
    check(same(y, want.astype(np.float64)) and list(rc) == list(matrix[:, r]), f"alltoallv algo={algo}")

for algo in algos("barrier"):
    for _ in range(3):
        comm.barrier(algo=algo)

# ---- bitwise identical floats across ranks, repeatable with the same algorithm
rng = np.random.default_rng(100 + r)
x = rng.standard_normal(10007).astype(np.float32)
for algo in algos("allreduce"):
    y1 = comm.allreduce(x, algo=algo)
    y2 = comm.allreduce(x, algo=algo)
    check(same(y1, y2), f"allreduce algo={algo} repeatable bits")
    everyone = mpi.allgather(y1.tobytes())
    check(all(e == everyone[0] for e in everyone), f"allreduce algo={algo} identical bits on every rank")
    ref = np.sum(np.stack(mpi.allgather(x)).astype(np.float64), axis=0)
    check(np.allclose(y1, ref, rtol=1e-5, atol=1e-4), f"allreduce algo={algo} random float32 close to float64 sum")

# ---- BAOBAB_ALGO-style configuration through the constructor
c2 = baobab.Communicator(MPI.COMM_WORLD, algo={"allreduce": "ring"})
w = c2._c.start(0, np.ones(4, np.float32), np.empty(4, np.float32), 2, 0, 4, [], 0, "")
w.wait()
check(w.algorithm == "ring", f"algo= option forces ring (got {w.algorithm})")
c2.free()

total = mpi.allreduce(len(failures))
if r == 0:
    print(f"{'OK' if total == 0 else 'FAILED'} collectives p={p} topology={comm.topology.source} "
          f"checks={checks[0]} failures={total}", flush=True)
sys.exit(1 if total else 0)

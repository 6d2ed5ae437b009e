"""Run under mpiexec: non-contiguous send/recv and halo exchange against numpy
references, for every BAOBAB_PACK mode given on the command line."""
import itertools
import sys

import numpy as np
from mpi4py import MPI

import baobab

comm = baobab.init(timeout=60)
r, p = comm.rank, comm.size
fails = []
checks = [0]


def check(cond, what):
    checks[0] += 1
    if not cond:
        fails.append(what)
        sys.stdout.write(f"rank {r}: FAILED {what}\n")
        sys.stdout.flush()


# ---- strided send/recv: views of every kind, sender and receiver layouts differ
rng = np.random.default_rng(7)
base = np.arange(8 * 9 * 10, dtype=np.float64).reshape(8, 9, 10)
views = [
    (slice(None), slice(None), slice(None)),
    (slice(1, 7, 2), slice(None, None, -1), slice(0, 10, 3)),
    (Ellipsis, 4),
    (slice(None, None, -1), 0, slice(2, 8)),
    (slice(0, 8), slice(1, 2), slice(None)),
]
for dtype in (np.float32, np.float64, np.int32, np.int64, np.uint8):
    a = base.astype(dtype)
    for k, index in enumerate(views):
        src = a[index]
        dst_rank, src_rank = (r + 1) % p, (r - 1) % p
        # receive into a transposed, strided view of a fresh array with the same element count
        holder = np.full((2,) + src.shape[::-1], 77, dtype)
        out = holder[1].T
        req = comm.irecv(out, src_rank, tag=k)
        comm.send(src + r if src.dtype != np.uint8 else src, dst_rank, tag=k)  # a strided view, or a copy
        got = req.wait()
        want = a[index] + src_rank if src.dtype != np.uint8 else a[index]
        check(got is out and np.array_equal(out, want), f"send/recv {np.dtype(dtype).name} view {k}")
        check((holder[0] == 77).all(), f"recv wrote outside the view {np.dtype(dtype).name} view {k}")

# ---- halo exchange against a global numpy reference
for ndim in (2, 3):
    dims = MPI.Compute_dims(p, ndim)
    for periods in itertools.product([False, True], repeat=ndim):
        if ndim == 3 and sum(periods) not in (0, ndim):
            continue
        cart = MPI.COMM_WORLD.Create_cart(dims, periods=list(periods))
        coords = cart.Get_coords(cart.rank)
        for width in (1, 2):
            for dtype in ((np.float32, np.float64, np.int32) if ndim == 2 else (np.float64, np.int64)):
                L = 5 if ndim == 2 else 4
                N = [L * d for d in dims]
                G = np.arange(int(np.prod(N)), dtype=np.int64).reshape(N).astype(dtype)
                sentinel = dtype(-7)
                field = np.full([L + 2 * width] * ndim, sentinel, dtype)
                interior = tuple(slice(width, width + L) for _ in range(ndim))
                field[interior] = G[tuple(slice(c * L, (c + 1) * L) for c in coords)]
                comm.halo_exchange(field, width, cart)
                want = np.full_like(field, sentinel)
                for idx in np.ndindex(*field.shape):
                    g = []
                    for d, i in enumerate(idx):
                        gi = coords[d] * L + i - width
                        if periods[d]:
                            gi %= N[d]
                        elif not 0 <= gi < N[d]:
                            g = None
                            break
                        g.append(gi)
                    if g is not None:
                        want[idx] = G[tuple(g)]
                check(np.array_equal(field, want),
                      f"halo ndim={ndim} dims={dims} periods={periods} width={width} {np.dtype(dtype).name}")
        cart.Free()

# ---- errors: a receive layout of the wrong size; a read-only out
if p >= 2:
    if r == 0:
        comm.send(np.arange(10.0), 1, tag=99)
    elif r == 1:
        try:
            comm.recv(np.zeros((4, 4))[:, 1], 0, tag=99)
            check(False, "mismatched receive size raised nothing")
        except baobab.InvalidArgument as e:
            check("the sender's and receiver's element counts differ" in str(e) or "larger than" in str(e), str(e))
    ro = np.zeros(3)
    ro.flags.writeable = False
    try:
        comm.irecv(ro, 0)
        check(False, "read-only out accepted")
    except baobab.InvalidArgument as e:
        check("read-only" in str(e), str(e))
    # a receive nobody sends: a TimeoutError naming the peer
    try:
        comm.recv(np.zeros(2), (r + 1) % p, tag=12345, timeout=0.3)
        check(False, "receive without sender completed")
    except baobab.TimeoutError as e:
        check(f"rank {(r + 1) % p}" in str(e) and list(e.missing) == [(r + 1) % p], str(e))
    comm.barrier()

total = comm.mpi_comm.allreduce(len(fails))
if r == 0:
    sys.stdout.write(f"{'OK' if total == 0 else 'FAILED'} p2p p={p} checks={checks[0]} failures={total}\n")
sys.exit(1 if total else 0)

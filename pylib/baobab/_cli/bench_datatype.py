"""`baobab bench pack` and `baobab bench halo`.

pack: a byte vector datatype (blocks of B bytes, stride 2B) holding --bytes of
data, packed and unpacked by baobab, by MPI_Pack/MPI_Unpack of the same
committed type, and by a numpy strided copy, next to a contiguous copy of the
same byte count (np.copyto). Rates count the packed bytes per second, which for
the contiguous copy is its byte count: every column moves the same data.

halo: an N^3 float64 field per rank (plus halos) on a periodic 3-D Cartesian
grid; baobab's halo_exchange against the same exchange (same order, same
messages) done by mpi4py with MPI subarray datatypes; results must agree.
"""
import time

import numpy as np

import baobab

from .. import _core
from ..datatype import Datatype
from .common import UsageError, agree, int_type, memory_problem, ranks_on_my_node, size_list_type, size_type


def _rate(fn, nbytes, min_time=0.2, reps=3):
    fn()
    best = float("inf")
    for _ in range(reps):
        n, t0 = 0, time.perf_counter()
        while True:
            fn()
            n += 1
            el = time.perf_counter() - t0
            if el > min_time / reps:
                break
        best = min(best, el / n)
    return nbytes / best / 1e9


def pack_rates(block, nbytes, mpi=True):
    """(baobab pack, baobab unpack, MPI_Pack, MPI_Unpack, numpy, memcpy) in GB/s."""
    from mpi4py import MPI
    nblocks = max(nbytes // block, 1)
    nbytes = nblocks * block
    src = np.random.default_rng(0).integers(0, 255, size=2 * nbytes, dtype=np.uint8)
    t = MPI.BYTE.Create_vector(nblocks, block, 2 * block).Commit()
    d = Datatype.from_mpi(t)
    out = np.empty(nbytes, np.uint8)
    back = np.zeros_like(src)
    layout = d.layout
    ours = _rate(lambda: _core.pack_ptr(layout, src.ctypes.data, out.ctypes.data, 1), nbytes)
    ours_un = _rate(lambda: _core.unpack_ptr(layout, out.ctypes.data, back.ctypes.data, 1), nbytes)
    ok = bool(np.array_equal(out, src.reshape(nblocks, 2 * block)[:, :block].reshape(-1)))
    mp = mu = None
    if mpi:
        ref = np.empty(nbytes, np.uint8)
        inbuf = MPI.buffer.fromaddress(src.ctypes.data, t.Get_extent()[1])
        mp = _rate(lambda: t.Pack(inbuf, ref, 0, MPI.COMM_SELF), nbytes)
        outbuf = MPI.buffer.fromaddress(back.ctypes.data, t.Get_extent()[1])
        mu = _rate(lambda: t.Unpack(ref, 0, outbuf, MPI.COMM_SELF), nbytes)
        ok = ok and bool(np.array_equal(ref, out))
    view = src.reshape(nblocks, 2 * block)[:, :block]
    out2 = out.reshape(nblocks, block)
    npr = _rate(lambda: np.copyto(out2, view), nbytes)
    flat = src[:nbytes]
    mc = _rate(lambda: np.copyto(out, flat), nbytes)
    t.Free()
    return dict(block=block, bytes=nbytes, pack=ours, unpack=ours_un, mpi_pack=mp, mpi_unpack=mu, numpy=npr,
                memcpy=mc, correct=ok)


def pack_memory(block, nbytes):
    """Bytes pack_rates holds at once: the source (2x), the packed copies (2x) and the unpacked copy (2x)."""
    return 6 * max(nbytes // block, 1) * block


def run_pack(args):
    comm = baobab.init()
    problem = None
    if comm.rank == 0:  # rank 0 measures, the others wait
        problem = memory_problem(max(pack_memory(b, args.bytes) for b in args.blocks), 1, f"--bytes {args.bytes}")
    agree(comm.mpi_comm, problem)
    rows = []
    if comm.rank == 0:
        blocks = args.blocks
        print(f"# baobab bench pack: byte vector type, blocks of B bytes at stride 2B, "
              f"{args.bytes} bytes of data; GB/s of packed data")
        print(f"#{'block':>7} {'bytes':>10} {'pack':>7} {'unpack':>7} {'MPI_Pack':>9} {'MPI_Unp':>8} "
              f"{'numpy':>7} {'memcpy':>7} {'x MPI':>6} {'%memcpy':>8} {'ok':>3}")
        for b in blocks:
            r = pack_rates(b, args.bytes, not args.no_mpi)
            rows.append(r)
            mp = f"{r['mpi_pack']:9.2f}" if r["mpi_pack"] else "        -"
            mu = f"{r['mpi_unpack']:8.2f}" if r["mpi_unpack"] else "       -"
            ratio = f"{r['pack'] / r['mpi_pack']:6.2f}" if r["mpi_pack"] else "     -"
            print(f" {b:>7} {r['bytes']:>10} {r['pack']:7.2f} {r['unpack']:7.2f} {mp} {mu} {r['numpy']:7.2f} "
                  f"{r['memcpy']:7.2f} {ratio} {100 * r['pack'] / r['memcpy']:7.1f}% "
                  f"{'yes' if r['correct'] else 'NO'}", flush=True)
    ok = comm.mpi_comm.bcast(all(r["correct"] for r in rows) if comm.rank == 0 else None)
    return 0 if ok else 1


def _mpi_halo(cart, field, width, types, reqbuf):
    """The reference: the same exchange with MPI subarray datatypes through mpi4py."""
    from mpi4py import MPI
    for d in range(field.ndim):
        src, dst = cart.Shift(d, 1)
        reqs = []
        lo_halo, hi_halo, hi_send, lo_send = types[d]
        if src != MPI.PROC_NULL:
            reqs.append(cart.Irecv([field, 1, lo_halo], src, 2 * d))
        if dst != MPI.PROC_NULL:
            reqs.append(cart.Irecv([field, 1, hi_halo], dst, 2 * d + 1))
            reqs.append(cart.Isend([field, 1, hi_send], dst, 2 * d))
        if src != MPI.PROC_NULL:
            reqs.append(cart.Isend([field, 1, lo_send], src, 2 * d + 1))
        MPI.Request.Waitall(reqs)


def _subarray_types(shape, width):
    from mpi4py import MPI
    out = []
    for d, n in enumerate(shape):
        ts = []
        for start in (0, n - width, n - 2 * width, width):
            sub = list(shape)
            sub[d] = width
            st = [0] * len(shape)
            st[d] = start
            ts.append(MPI.DOUBLE.Create_subarray(list(shape), sub, st).Commit())
        out.append(ts)
    return out


def halo_memory(n, w):
    """Bytes run_halo holds per rank: the field, its reference copy, and the random interior."""
    return (2 * (n + 2 * w) ** 3 + n ** 3) * 8


def run_halo(args):
    from mpi4py import MPI
    n, w = args.size, args.width
    if n < w:
        raise UsageError(f"--size {n} is smaller than --width {w}: the interior must hold at least one halo's "
                         "width of cells")
    comm = baobab.init()
    agree(comm.mpi_comm, memory_problem(halo_memory(n, w), ranks_on_my_node(comm), f"--size {n}"))
    dims = MPI.Compute_dims(comm.size, 3)
    cart = comm.mpi_comm.Create_cart(dims, periods=[True] * 3)
    shape = (n + 2 * w,) * 3
    field = np.zeros(shape)
    rng = np.random.default_rng(cart.rank)
    field[w:-w, w:-w, w:-w] = rng.standard_normal((n, n, n))
    ref = field.copy()
    types = _subarray_types(shape, w)
    comm.halo_exchange(field, w, cart)
    _mpi_halo(cart, ref, w, types, None)
    same = bool(np.array_equal(field, ref))

    def timed(fn):
        fn()
        best = float("inf")
        for _ in range(args.iters):
            cart.Barrier()
            t0 = time.perf_counter()
            fn()
            el = cart.allreduce(time.perf_counter() - t0, op=MPI.MAX)
            best = min(best, el)
        return best
    tb = timed(lambda: comm.halo_exchange(field, w, cart))
    tm = timed(lambda: _mpi_halo(cart, ref, w, types, None))
    face = (n + 2 * w) ** 2 * w * 8
    same = cart.allreduce(same, op=MPI.LAND)
    if comm.rank == 0:
        print(f"# baobab bench halo: {comm.size} ranks, grid {dims} periodic, {n}^3 float64 per rank, width {w}, "
              f"{6 * face} bytes sent per rank per exchange; best of {args.iters}")
        print(f"#{'field':>8} {'width':>5} {'baobab (ms)':>12} {'MPI types (ms)':>15} {'ratio':>6} {'same':>5}")
        print(f" {n:>7}^3 {w:>5} {tb * 1e3:12.3f} {tm * 1e3:15.3f} {tm / tb:6.2f} {'yes' if same else 'NO':>5}",
              flush=True)
    for ts in types:
        for t in ts:
            t.Free()
    cart.Free()
    return 0 if same else 1


def add_parsers(sub):
    p = sub.add_parser("pack", help=argparse_help("pack"))
    p.add_argument("--blocks", type=size_list_type(1), default=[8, 64, 512, 4096],
                   help="block sizes in bytes (default 8,64,512,4096)")
    p.add_argument("--bytes", type=size_type(1), default=256 << 20,
                   help="data bytes per pack (default 256M: beyond the caches)")
    p.add_argument("--no-mpi", action="store_true")
    p.set_defaults(func=run_pack)
    h = sub.add_parser("halo", help=argparse_help("halo"))
    h.add_argument("--size", type=int_type(1), default=256, help="interior cells per dimension per rank (default 256)")
    h.add_argument("--width", type=int_type(1), default=1)
    h.add_argument("--iters", type=int_type(1), default=10)
    h.set_defaults(func=run_halo)


def argparse_help(kind):
    return {"pack": "pack/unpack a vector datatype: baobab vs MPI_Pack, numpy and memcpy",
            "halo": "3-D halo exchange: baobab vs MPI subarray datatypes"}[kind]

"""Run under mpiexec: baobab.io collective writes. Usage: io_write.py SCENARIO DIR [MODE]

MODE: auto (parallel=None), mpio (parallel=True), fallback (parallel=False).
Scenario "badpath" takes a fourth argument: a directory the file cannot be made in.
Prints 'OK <scenario> p=<size>' on rank 0 when every rank saw what it should."""
import os
import sys
import time

import numpy as np
from mpi4py import MPI

import baobab
from baobab import io

scenario, outdir = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "auto"
parallel = {"auto": None, "mpio": True, "fallback": False}[mode]
world = MPI.COMM_WORLD
r, p = world.rank, world.size


def say(msg):
    os.write(1, (msg + "\n").encode())  # one write: ranks' lines do not interleave


def slices(rank, size):
    """Uneven rows per rank; rank 1 has none."""
    rows = [0 if i == 1 else 3 + 5 * i for i in range(size)]
    start = sum(rows[:rank])
    return rows, np.arange(start * 4, (start + rows[rank]) * 4, dtype=np.float64).reshape(rows[rank], 4)


if scenario == "uneven":
    path = os.path.join(outdir, f"uneven-{p}-{mode}.h5")
    rows, x = slices(r, p)
    ints = (np.arange(rows[r]) + 1000 * r).astype(np.int32)
    comm = baobab.Communicator(world)  # odd sizes: the baobab wrapper, even: the mpi4py comm
    with io.File(path, "w", comm if p % 2 else world, attrs={"run": {"a": 1}}, parallel=parallel) as f:
        f.write("/particles/x", x, attrs={"units": "cm"})
        f.write("ints", ints, checksum=False, chunks=False)
        f.write("/empty", np.zeros((0, 3), np.float32))
        f.write_global("/grid/edges", np.linspace(0, 1, 11))
        f.write_global("scalar", np.float64(2.5))
        f.write_global("label", "hello")
        f.set_attrs("/particles", {"n": int(sum(rows))})
        f.write_units({"Unit length in cgs (U_L)": 1.0, "Unit mass in cgs (U_M)": 1.989e33})
        assert not os.path.exists(path)
    world.Barrier()
    assert os.path.exists(path) and not [n for n in os.listdir(outdir) if ".tmp." in n]
    g = io.File(path)   # every rank reads, no MPI needed
    full = np.concatenate([slices(i, p)[1] for i in range(p)])
    assert np.array_equal(g.read("/particles/x"), full)
    assert np.array_equal(g.read("ints"), np.concatenate([(np.arange(slices(i, p)[0][i]) + 1000 * i)
                                                           .astype(np.int32) for i in range(p)]))
    share = g.read_distributed("/particles/x", world)
    n = full.shape[0]
    base, extra = divmod(n, p)
    s0 = r * base + min(r, extra)
    assert np.array_equal(share, full[s0:s0 + base + (r < extra)])
    assert g.read("/empty").shape == (0, 3)
    assert g.read("scalar") == 2.5 and g.read("label") in ("hello", b"hello")
    a = g.attrs()
    assert a["creator"] == "baobab" and a["mpi_ranks"] == p and a["run"] == '{"a": 1}', a
    assert g.attrs("/particles/x")["units"] == "cm"
    assert g.attrs("/Units")["Unit mass in cgs (U_M)"] == 1.989e33
    assert g._f["/particles/x"].fletcher32 and not g._f["ints"].fletcher32
    g.close()
    world.Barrier()
    if r == 0:
        print(f"OK uneven p={p} mode={mode} io_mode={a['io_mode']}", flush=True)

elif scenario == "mismatch":
    path = os.path.join(outdir, f"mismatch-{p}-{mode}.h5")
    cols = 4 if r != p - 1 else 5
    try:
        with io.File(path, "w", world, parallel=parallel) as f:
            f.write("x", np.zeros((2, cols)))
        say(f"RANK {r}: no error")
    except baobab.InvalidArgument as e:
        say(f"RANK {r}: InvalidArgument: {e}")
    world.Barrier()
    assert not os.path.exists(path)
    assert not [n for n in os.listdir(outdir) if n.startswith(f"mismatch-{p}-{mode}")]
    if r == 0:
        print(f"OK mismatch p={p}", flush=True)

elif scenario in ("giveup", "giveup_close"):
    # The last rank raises inside the `with` block: before the first write, or
    # after the writes while the others close. The others must raise an Error
    # naming it instead of waiting in a collective it never joins.
    path = os.path.join(outdir, f"{scenario}-{p}-{mode}.h5")
    try:
        with io.File(path, "w", world, parallel=parallel) as f:
            if scenario == "giveup_close":  # the others are closing when it raises
                f.write("x", np.zeros((2, 3)))
                if r == p - 1:
                    time.sleep(0.5)
                    raise RuntimeError("boom")
            else:
                if r == p - 1:
                    raise RuntimeError("boom")
                f.write("y", np.zeros((2, 3)))
        say(f"RANK {r}: no error")
    except RuntimeError as e:
        say(f"RANK {r}: own RuntimeError: {e}")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    world.Barrier()
    assert not os.path.exists(path)
    assert not [n for n in os.listdir(outdir) if n.startswith(f"{scenario}-{p}-{mode}")]
    # the communicator still works, and a new file is not stopped by old notices
    with io.File(path, "w", world, parallel=parallel) as f:
        f.write("z", np.full((1, 2), r, np.int64))
    assert io.File(path).read("z").tolist() == [[i, i] for i in range(p)]
    world.Barrier()
    if r == 0:
        print(f"OK {scenario} p={p}", flush=True)

elif scenario == "late":
    # The last rank comes to its write long after BAOBAB_TIMEOUT (set by the
    # test): the others raise TimeoutError naming it; it learns they gave up.
    path = os.path.join(outdir, f"late-{p}-{mode}.h5")
    try:
        with io.File(path, "w", world, parallel=parallel) as f:
            if r == p - 1:
                time.sleep(float(os.environ["BAOBAB_TIMEOUT"]) * 2 + 2)
            f.write("y", np.zeros((2, 3)))
        say(f"RANK {r}: no error")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    world.Barrier()
    assert not os.path.exists(path)
    if r == 0:
        print(f"OK late p={p}", flush=True)

elif scenario == "badpath":
    # The file's directory cannot be created or written (a path under a regular
    # file, under /proc, on a read-only mount: sys.argv[4]); every rank gets one
    # error naming rank 0 and the cause, and the communicator is still usable.
    path = os.path.join(sys.argv[4], "x.h5")
    try:
        with io.File(path, "w", world, parallel=parallel) as f:
            f.write("x", np.zeros((2, 3)))
        say(f"RANK {r}: no error")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    world.Barrier()
    with io.File(os.path.join(outdir, "after.h5"), "w", world, parallel=parallel) as f:
        f.write("z", np.full((1, 2), r))
    if r == 0:
        print(f"OK badpath p={p}", flush=True)

elif scenario == "badattrs":
    # rank 0 alone cannot build the root attributes: every rank raises at once
    path = os.path.join(outdir, f"badattrs-{p}-{mode}.h5")
    try:
        with io.File(path, "w", world, attrs={"run": {"a": object()}}, parallel=parallel) as f:
            f.write("x", np.zeros((2, 3)))
        say(f"RANK {r}: no error")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    world.Barrier()
    assert not [n for n in os.listdir(outdir) if n.startswith(f"badattrs-{p}-{mode}")]
    if r == 0:
        print(f"OK badattrs p={p}", flush=True)

elif scenario.startswith("full-"):
    # DIR is a small tmpfs (1 MiB): more than fits is written. Every rank must
    # raise one baobab.Error naming ENOSPC and the file, nothing may be left in
    # DIR, and the process must exit normally (no segfault at exit).
    variant = scenario[5:]
    path = os.path.join(outdir, f"full-{p}.h5")
    if variant == "nocheck":
        # as on a file system whose statvfs says nothing: HDF5 itself meets the
        # full disk, in the middle of a write (serial h5py: the fallback mode)
        io._free_bytes = lambda d: None
    try:
        with io.File(path, "w", world, parallel=parallel) as f:
            if variant == "big":        # one write larger than the disk
                f.write("x", np.ones((1 << 16, 4)))
            elif variant in ("many", "nocheck"):  # each write fits, together they do not
                for i in range(12):
                    f.write(f"x{i}", np.full((1 << 13 if variant == "many" else 1 << 12, 4), r, np.float64))
                    f.write_global(f"g{i}", np.ones((1 << 12, 4)))
            elif variant == "fill":     # another process fills the disk before the close
                f.write("x", np.ones((1 << 10, 4)))
                if r == 0:
                    fd = os.open(os.path.join(outdir, "filler"), os.O_WRONLY | os.O_CREAT)
                    try:
                        while True:
                            os.write(fd, b"\0" * 4096)
                    except OSError:
                        pass
                    os.close(fd)
                for i in range(40):     # metadata HDF5 keeps in its cache until the close
                    f.set_attrs(f"/group{i}", {f"a{j}": "b" * 1000 for j in range(20)})
        say(f"RANK {r}: no error")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    world.Barrier()
    left = sorted(n for n in os.listdir(outdir) if n != "filler")
    filler = os.path.join(outdir, "filler")
    if r == 0 and os.path.exists(filler):
        os.unlink(filler)
    world.Barrier()
    # the space is free again: a small file fits
    with io.File(os.path.join(outdir, "small.h5"), "w", world, parallel=parallel) as f:
        f.write("y", np.full((4, 2), r, np.int32))
    assert io.File(os.path.join(outdir, "small.h5")).read("y").shape == (4 * p, 2)
    world.Barrier()
    if r == 0:
        print(f"LEFT {left}", flush=True)
        print(f"OK {scenario} p={p}", flush=True)

elif scenario == "killme":
    # Holds out.h5 open in DIR for ever after a write (the test kills it with SIGKILL).
    os.makedirs(outdir, exist_ok=True)
    with io.File(os.path.join(outdir, "out.h5"), "w", world, parallel=parallel) as f:
        f.write("x", np.full((1000, 4), r, np.float64))
        world.Barrier()
        if r == 0:
            print("READY", flush=True)
        time.sleep(600)

elif scenario == "restart":
    # Writes out.h5 in DIR again, as a run restarted after a killed one would.
    with io.File(os.path.join(outdir, "out.h5"), "w", world, parallel=parallel) as f:
        f.write("x", np.full((10, 4), r, np.float64))
    assert io.File(os.path.join(outdir, "out.h5")).read("x").shape == (10 * p, 4)
    world.Barrier()
    if r == 0:
        print(f"OK restart p={p}", flush=True)

elif scenario == "bandwidth":
    mib = int(os.environ.get("IO_BENCH_MIB", "256"))
    rows_total = (mib << 20) // (8 * 64)
    base, extra = divmod(rows_total, p)
    x = np.random.default_rng(r).random((base + (r < extra), 64))
    path = os.path.join(outdir, f"bw-{p}-{mode}.h5")
    world.Barrier()
    t = time.perf_counter()
    with io.File(path, "w", world, parallel=parallel) as f:
        f.write("x", x)
    world.Barrier()
    dt = time.perf_counter() - t
    if r == 0:
        print(f"BANDWIDTH p={p} mode={mode} io_mode={io.File(path).attrs()['io_mode']} "
              f"{mib} MiB in {dt:.3f} s = {mib / dt:.1f} MiB/s", flush=True)
        os.unlink(path)
else:
    raise SystemExit(f"unknown scenario {scenario}")

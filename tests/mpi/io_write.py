"""Run under mpiexec: baobab.io collective writes. Usage: io_write.py SCENARIO DIR [MODE]

MODE: auto (parallel=None), mpio (parallel=True), fallback (parallel=False).
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

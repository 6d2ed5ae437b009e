"""Run under mpiexec: distributed checkpoints. Usage: checkpoint_mpi.py DIR [SCENARIO [ARG]]

SCENARIO: sync, async or spread (asynchronous, every rank writing its rows;
default sync): save, prune, restore; prints 'OK checkpoint p=<size>
mode=<scenario>' on rank 0 when every rank restored what it saved.
The others exercise failures; each rank prints one 'RANK r: ...' line."""
import os
import sys
import time

import numpy as np
from mpi4py import MPI

import baobab
from baobab import io
from baobab.checkpoint import Checkpointer

outdir = sys.argv[1]
scenario = sys.argv[2] if len(sys.argv) > 2 else "sync"
world = MPI.COMM_WORLD
r, p = world.rank, world.size


def say(msg):
    os.write(1, (msg + "\n").encode())  # one write: ranks' lines do not interleave


if scenario in ("sync", "async", "spread"):
    asynchronous = scenario != "sync"
    rows = [2 * i + (0 if i == 1 else 1) for i in range(p)]          # rank 1 holds no rows
    start = sum(rows[:r])
    x = np.arange(start * 3, (start + rows[r]) * 3, dtype=np.float64).reshape(rows[r], 3) / 7
    ids = np.arange(start, start + rows[r], dtype=np.int64)
    rng = np.random.default_rng(42)
    rng.random(5)

    comm = baobab.Communicator(world) if p == 3 else world
    ck = Checkpointer(os.path.join(outdir, f"ck{p}{scenario}"), comm, keep=2,
                      asynchronous=asynchronous, writers="all" if scenario == "spread" else "rank0")
    for step in (10, 20, 30):
        state = {"step": step, "t": 0.1 * step, "rng": rng.bit_generator.state, "meta": {"name": "run", "p": p}}
        path = ck.save(step, state, distributed={"x": x + step, "ids": ids})
    ck.wait()
    files = sorted(os.listdir(ck.directory))
    assert files == ["checkpoint-0000000020.h5", "checkpoint-0000000030.h5"], files
    got = ck.load()
    assert got["step"] == 30 and got["t"] == 0.1 * 30 and got["meta"] == {"name": "run", "p": p}
    assert np.array_equal(got["x"], x + 30) and got["x"].dtype == np.float64 and got["x"].shape == (rows[r], 3)
    assert np.array_equal(got["ids"], ids)
    g = np.random.Generator(np.random.PCG64())
    g.bit_generator.state = got["rng"]
    assert np.array_equal(g.random(4), rng.random(4))

    # a save with a shape mismatch raises everywhere, never hangs
    try:
        ck.save(40, {"a": 1}, distributed={"x": np.zeros((1, 3 if r else 4))})
        print(f"RANK {r}: no error", flush=True)
        sys.exit(1)
    except baobab.InvalidArgument as e:
        assert "disagree" in str(e), e
    ck.close()
    world.Barrier()
    if r == 0:
        # serial load of the same checkpoint gives the full arrays
        full = Checkpointer(os.path.join(outdir, f"ck{p}{scenario}")).load()
        assert full["x"].shape == (sum(rows), 3)
        print(f"OK checkpoint p={p} mode={scenario}", flush=True)

elif scenario == "spread-fail":
    # every rank writes its own rows; rank 1's writes fail (a full disk): every
    # rank gets the CheckpointError naming rank 1, nothing is left, and the next
    # checkpoint works
    d = os.path.join(outdir, "spread-fail")
    ck = Checkpointer(d, world, asynchronous=True, writers="all")
    x = np.full((4, 2), float(r))
    real = os.pwrite
    if r == 1:
        def full(*args):
            raise OSError(28, "No space left on device")
        os.pwrite = full
    ck.save(1, {"step": 1}, distributed={"x": x})
    try:
        while not ck.poll():
            time.sleep(0.01)
        say(f"RANK {r}: no error")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    os.pwrite = real
    world.Barrier()
    assert not os.listdir(d), os.listdir(d)
    ck.save(2, {"step": 2}, distributed={"x": x})
    ck.close()
    got = Checkpointer(d, world).load()
    assert got["step"] == 2 and np.array_equal(got["x"], x)
    if r == 0:
        say("OK after failure")

elif scenario == "baddir":
    # ARG: a directory rank 0 cannot create (under a regular file, under /proc,
    # on a read-only mount), or "rank1:ARG": only rank 1 is given that path
    # (the others a good one), as when its node does not see rank 0's file system.
    bad = sys.argv[3]
    if bad.startswith("rank1:"):
        bad = bad[6:] if r == 1 else os.path.join(outdir, "good")
    try:
        Checkpointer(bad, world)
        say(f"RANK {r}: no error")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    # nothing is left waiting: the communicator works, a good directory too
    world.Barrier()
    ck = Checkpointer(os.path.join(outdir, "after"), world)
    ck.save(1, {"a": 1})
    assert ck.load()["a"] == 1
    ck.close()
    if r == 0:
        print(f"OK baddir p={p}", flush=True)

elif scenario == "steps":
    # latest() when rank 0 can no longer list the directory; load() of a file
    # only rank 1 cannot read: every rank raises CheckpointError naming the rank
    ck = Checkpointer(os.path.join(outdir, "ck"), world, keep=None)
    good = ck.save(1, {"a": 1}, distributed={"x": np.arange(3.0) + r})
    try:
        ck.load(good if r != 1 else os.path.join(outdir, "elsewhere", os.path.basename(good)))
        say(f"RANK {r}: load: no error")
    except baobab.Error as e:
        say(f"RANK {r}: load: {type(e).__name__}: {e}")
    world.Barrier()
    if r == 0:
        os.rename(ck.directory, ck.directory + ".moved")
    world.Barrier()
    try:
        ck.latest()
        say(f"RANK {r}: latest: no error")
    except baobab.Error as e:
        say(f"RANK {r}: latest: {type(e).__name__}: {e}")
    world.Barrier()
    if r == 0:
        os.rename(ck.directory + ".moved", ck.directory)
    world.Barrier()
    assert ck.load()["a"] == 1   # still usable
    ck.close()
    if r == 0:
        print(f"OK steps p={p}", flush=True)

elif scenario == "late":
    # The last rank comes to save() long after BAOBAB_TIMEOUT: the others raise
    # TimeoutError naming it; when it comes, it learns they gave up.
    ck = Checkpointer(os.path.join(outdir, "ck"), world)
    try:
        if r == p - 1:
            time.sleep(float(os.environ["BAOBAB_TIMEOUT"]) * 2 + 2)
        ck.save(1, {"a": 1})
        say(f"RANK {r}: no error")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    world.Barrier()
    if r == 0:
        print(f"OK late p={p}", flush=True)

elif scenario == "late-init":
    # The last rank reaches the constructor long after BAOBAB_TIMEOUT: the
    # others raise TimeoutError instead of waiting in MPI_Comm_dup for ever; the
    # late one then waits alone at the set-up step and names them.
    t = float(os.environ["BAOBAB_TIMEOUT"])
    try:
        if r == p - 1:
            time.sleep(2 * t + 2)
        Checkpointer(os.path.join(outdir, "ck"), world)
        say(f"RANK {r}: no error")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    world.Barrier()
    if r == 0:
        print(f"OK late-init p={p}", flush=True)

elif scenario.startswith("full-"):
    # DIR is a small tmpfs (1 MiB): a checkpoint that does not fit raises a
    # baobab.Error naming ENOSPC on every rank, leaves nothing, exits normally.
    variant = scenario[5:]
    if variant == "nocheck":  # HDF5 itself meets the full disk (see io_write.py)
        io._free_bytes = lambda d: None
    ck = Checkpointer(outdir, world)
    try:
        if variant == "big":
            ck.save(1, {"a": 1}, distributed={"x": np.ones((1 << 16, 4))})
        else:
            ck.save(1, {f"s{i}": np.full(1 << 14, i, np.float64) for i in range(12)})
        say(f"RANK {r}: no error")
    except baobab.Error as e:
        say(f"RANK {r}: {type(e).__name__}: {e}")
    world.Barrier()
    left = sorted(os.listdir(outdir))
    ck.save(2, {"a": np.arange(10)})   # the space is free again
    assert ck.load()["a"].tolist() == list(range(10))
    ck.close()
    if r == 0:
        print(f"LEFT {left}", flush=True)
        print(f"OK {scenario} p={p}", flush=True)

elif scenario == "killme":
    # Saves big checkpoints for ever (the test kills the job with SIGKILL while
    # one is being written); prints READY once the first one is on disk.
    ck = Checkpointer(outdir, world, keep=1)
    x = np.random.default_rng(r).random((1 << 20, 4))  # 32 MiB per rank
    step = 0
    while True:
        step += 1
        ck.save(step, {"step": step}, distributed={"x": x})
        if step == 1 and r == 0:
            print("READY", flush=True)

else:
    raise SystemExit(f"unknown scenario {scenario}")

"""Run under mpiexec: distributed checkpoints. Usage: checkpoint_mpi.py DIR [sync|async]

Prints 'OK checkpoint p=<size>' on rank 0 when every rank restored what it saved."""
import os
import sys

import numpy as np
from mpi4py import MPI

import baobab
from baobab.checkpoint import Checkpointer

outdir = sys.argv[1]
asynchronous = len(sys.argv) > 2 and sys.argv[2] == "async"
world = MPI.COMM_WORLD
r, p = world.rank, world.size
rows = [2 * i + (0 if i == 1 else 1) for i in range(p)]          # rank 1 holds no rows
start = sum(rows[:r])
x = np.arange(start * 3, (start + rows[r]) * 3, dtype=np.float64).reshape(rows[r], 3) / 7
ids = np.arange(start, start + rows[r], dtype=np.int64)
rng = np.random.default_rng(42)
rng.random(5)

comm = baobab.Communicator(world) if p == 3 else world
ck = Checkpointer(os.path.join(outdir, f"ck{p}{'a' if asynchronous else ''}"), comm, keep=2,
                  asynchronous=asynchronous)
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
    full = Checkpointer(os.path.join(outdir, f"ck{p}{'a' if asynchronous else ''}")).load()
    assert full["x"].shape == (sum(rows), 3)
    print(f"OK checkpoint p={p} async={asynchronous}", flush=True)

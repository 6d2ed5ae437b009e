"""Is a data-parallel step slower than the same step alone? (apps/llm, 2 ranks)

usage: mpiexec -n 2 python tests/perf/llm_contention.py

Round after round, with one thread per rank, the ~10M GPT's training step:
  alone  rank 0 trains a 1-rank model while rank 1 sleeps;
  pair   both ranks train independent 1-rank models at once (no communication);
  dp     both ranks train one --dp 2 model.
It prints each rank's median step time (the first round is not counted). If
"pair" is as slow as "dp", what slows a data-parallel step is the two cores
working at once, not the communication.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "apps" / "llm"))
from train import keep_freed_memory, set_blas_threads  # noqa: E402

set_blas_threads(1)
keep_freed_memory()
from mpi4py import MPI  # noqa: E402

import baobab  # noqa: E402
import train  # noqa: E402

w = baobab.init()
base = ["--layers", "6", "--width", "384", "--heads", "6", "--context", "256", "--batch", "8", "--steps", "20",
        "--threads", "1", "--no-ckpt", "--warmup", "1"]
solo = train.Trainer(train.parse(base), baobab.Communicator(MPI.COMM_SELF))
dp = train.Trainer(train.parse(base + ["--dp", "2"]), w)
res = {"alone": [], "pair": [], "dp": []}


def sleep_barrier():  # the other rank waits without taking a core
    r = w.mpi_comm.Ibarrier()
    while not r.Test():
        time.sleep(0.005)


def timed(tr, step, key):
    t = time.perf_counter()
    tr.step(step)
    res[key].append(time.perf_counter() - t)


for step in range(7):
    if w.rank == 0:
        timed(solo, step, "alone")
    sleep_barrier()
    w.mpi_comm.Barrier()
    timed(solo, step, "pair")
    sleep_barrier()
    w.mpi_comm.Barrier()
    timed(dp, step, "dp")
    sleep_barrier()
med = {k: sorted(v[1:])[len(v[1:]) // 2] for k, v in res.items() if v}
print(w.rank, {k: round(v, 3) for k, v in med.items()}, flush=True)

"""8-byte allreduce latency: baobab against MPI_Allreduce in the same run.

usage: mpiexec -n 2 python tests/perf/latency.py [CALLS]
Best of 5 loops of CALLS calls (default 20 000), float32, out= given; prints
the slowest rank's time per call and the ratio baobab / MPI, three times.
"""
import sys
import time

import numpy as np
from mpi4py import MPI

import baobab

comm = baobab.Communicator()
m = MPI.COMM_WORLD
x = np.ones(2, np.float32)
out = np.empty_like(x)
N = int(sys.argv[1]) if len(sys.argv) > 1 else 20000


def best(fn, reps=5):
    t = 1e9
    for _ in range(reps):
        m.Barrier()
        t0 = time.perf_counter()
        for _ in range(N):
            fn()
        t = min(t, (time.perf_counter() - t0) / N)
    return m.allreduce(t, op=MPI.MAX) * 1e6


for _ in range(3):
    a = best(lambda: comm.allreduce(x, out=out))
    b = best(lambda: m.Allreduce(x, out, op=MPI.SUM))
    if m.rank == 0:
        print(f"baobab {a:.2f} us  MPI {b:.2f} us  ratio {a / b:.2f}", flush=True)

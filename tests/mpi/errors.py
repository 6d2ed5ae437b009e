"""Run under mpiexec: error paths. Usage: errors.py SCENARIO

Each scenario prints 'RANK r: <ExceptionClass>: <message>' lines that the
pytest side inspects, then exits 0 if every rank saw what it should.
"""
import os
import sys
import time

import numpy as np
from mpi4py import MPI

import baobab

scenario = sys.argv[1]
timeout = float(os.environ.get("SCENARIO_TIMEOUT", "3"))
comm = baobab.Communicator(MPI.COMM_WORLD, timeout=timeout)
r, p = comm.rank, comm.size


def say(msg):
    sys.stdout.write(msg + "\n")  # one write per line: ranks' lines do not interleave
    sys.stdout.flush()


def report(exc):
    extra = ""
    if isinstance(exc, baobab.TimeoutError):
        extra = f" [op={exc.op} seq={exc.seq} missing={list(exc.missing)}]"
    say(f"RANK {r}: {type(exc).__name__}: {exc}{extra}")


def expect(fn, cls):
    try:
        fn()
    except cls as exc:
        report(exc)
        return True
    except Exception as exc:  # noqa: BLE001
        say(f"RANK {r}: UNEXPECTED {type(exc).__name__}: {exc}")
        return False
    say(f"RANK {r}: NO ERROR")
    return False


comm.allreduce(np.ones(3))  # a normal collective first: sequence numbers are in step

if scenario == "count":
    ok = expect(lambda: comm.allreduce(np.ones(10 + (r == 1), np.float32)), baobab.MismatchError)
elif scenario == "count_large":
    n = (1 << 16) + (1 if r == p - 1 else 0)
    ok = expect(lambda: comm.allreduce(np.ones(n, np.float32), algo="ring"), baobab.MismatchError)
elif scenario == "dtype":
    ok = expect(lambda: comm.allreduce(np.ones(8, np.float32 if r else np.int32)), baobab.MismatchError)
elif scenario == "op":
    ok = expect(lambda: comm.allreduce(np.ones(8), "max" if r == 0 else "sum"), baobab.MismatchError)
elif scenario == "root":
    # No message exposes this one: the stall check compares signatures.
    ok = expect(lambda: comm.bcast(np.ones(8), root=0 if r else 1), baobab.MismatchError)
elif scenario == "algo":
    ok = expect(lambda: comm.allreduce(np.ones(8), algo="ring" if r == 0 else "recursive_doubling"),
                baobab.MismatchError)
elif scenario == "collective":
    ok = expect(lambda: comm.allreduce(np.ones(8)) if r else comm.allgather(np.ones(8)), baobab.MismatchError)
elif scenario == "skip":
    # The last rank skips the allreduce: everyone else gets TimeoutError naming it.
    if r == p - 1:
        time.sleep(timeout * 2 + 2)
        # When it comes back, the communicator must report the failure, not hang.
        ok = expect(lambda: comm.allreduce(np.ones(4)), baobab.Error)
    else:
        t0 = time.time()
        ok = expect(lambda: comm.allreduce(np.ones(4)), baobab.TimeoutError)
        took = time.time() - t0
        say(f"RANK {r}: took {took:.2f}")
        ok = ok and took < timeout + 5
        # the communicator is now unusable, with a clear error
        ok = expect(lambda: comm.allreduce(np.ones(4)), baobab.TimeoutError) and ok
elif scenario == "skip_nonblocking":
    if r == p - 1:
        time.sleep(timeout * 2 + 2)
        ok = True
    else:
        w = comm.iallreduce(np.ones(4))
        ok = expect(lambda: w.wait(timeout=timeout / 2), baobab.TimeoutError)
else:
    raise SystemExit(f"unknown scenario {scenario}")

say(f"RANK {r}: {'PASS' if ok else 'FAIL'}")
sys.exit(0 if ok else 1)

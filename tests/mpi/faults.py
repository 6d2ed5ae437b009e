"""Run under mpiexec: fault scenarios of the runtime (issue 11). Usage: faults.py SCENARIO

Each scenario prints 'RANK r: ...' lines that tests/test_faults_core.py reads,
and ends with 'RANK r: PASS' or 'RANK r: FAIL'. The timeout comes from
BAOBAB_TIMEOUT in the environment unless the scenario sets one itself.
"""
import os
import sys
import threading
import time

import numpy as np
from mpi4py import MPI

import baobab

scenario = sys.argv[1]
world = MPI.COMM_WORLD
r, p = world.rank, world.size


def say(msg):
    sys.stdout.write(f"RANK {r}: {msg}\n")  # one write per line: ranks' lines do not interleave
    sys.stdout.flush()


def expect(fn, cls, within=None):
    """Runs fn, which must raise cls (within `within` seconds if given)."""
    t0 = time.monotonic()
    try:
        fn()
    except cls as exc:
        took = time.monotonic() - t0
        say(f"{type(exc).__name__} after {took:.2f} s: {exc}")
        if within is not None and took > within:
            say(f"too slow: {took:.2f} s > {within} s")
            return False
        return True
    except Exception as exc:  # noqa: BLE001
        say(f"UNEXPECTED {type(exc).__name__}: {exc}")
        return False
    say("NO ERROR")
    return False


ok = True
def mismatch_now_or_next(call, right=lambda: True):
    """The call raises MismatchError; or, on a rank whose own part completed
    correctly (it received the right data from peers that agree with it),
    returns with `right()` true, and the next call on the communicator raises
    the MismatchError the others found."""
    try:
        call()
    except baobab.MismatchError as exc:
        say(f"MismatchError: {exc}")
        return True
    except Exception as exc:  # noqa: BLE001
        say(f"UNEXPECTED {type(exc).__name__}: {exc}")
        return False
    good = bool(right())
    say(f"returned; its own result {'right' if good else 'WRONG'}")
    return good and expect(lambda: comm.allreduce(np.ones(2)), baobab.MismatchError, within=8)


if scenario in ("bcast_root", "barrier_vs_bcast", "reduce_leaf"):
    comm = baobab.Communicator(timeout=60)
    comm.allreduce(np.ones(3))
    x = np.full(8, float(r))
    t0 = time.monotonic()
    if scenario == "bcast_root":
        # Rank 1 says root=1, the others root=0: both "roots" only send, and
        # small messages go eagerly, so no send waits for a receiver: the check
        # must come from the messages themselves, at once.
        ok = mismatch_now_or_next(lambda: comm.bcast(x, root=1 if r == 1 else 0), lambda: r > 1 and x[0] == 0.0)
    elif scenario == "barrier_vs_bcast":
        ok = mismatch_now_or_next(lambda: comm.barrier() if r == 1 else comm.bcast(x, root=0),
                                  lambda: r > 1 and x[0] == 0.0)
    else:
        # The last rank (a leaf of the reduction tree: it only sends) calls
        # reduce, the others a barrier.
        ok = mismatch_now_or_next(lambda: comm.reduce(x, root=0) if r == p - 1 else comm.barrier(), lambda: False)
    ok = ok and time.monotonic() - t0 < 8  # from the messages, not from the stall check (10 s)
elif scenario == "bcast_roots_agree":
    # The acknowledgement that a sending-only rank waits for must not change
    # results or leave messages behind: many small and large bcasts and
    # reduces from every root, then an allreduce that would see any stray
    # message as a mismatch.
    comm = baobab.Communicator(timeout=60)
    for it in range(30):
        for root in range(p):
            for n in (1, 8, 3000, 70000):
                x = np.full(n, float(r * 100 + it)) if r == root else np.zeros(n)
                comm.bcast(x, root=root)
                ok = ok and bool((x == root * 100 + it).all())
                y = comm.reduce(np.full(n, float(r + 1)), root=root)
                if r == root:
                    ok = ok and bool((y == p * (p + 1) / 2).all())
    ok = ok and comm.allreduce(np.ones(5)).tolist() == [float(p)] * 5
    say(f"results {'right' if ok else 'WRONG'}")
elif scenario == "recv_no_sender":
    comm = baobab.Communicator()  # BAOBAB_TIMEOUT from the environment
    limit = comm.config()["timeout"]
    if r == 0:
        ok = expect(lambda: comm.recv(np.empty(4), source=1, tag=5), baobab.TimeoutError, within=limit + 5)
    else:
        time.sleep(limit + 2)
elif scenario == "send_no_receiver":
    comm = baobab.Communicator()
    limit = comm.config()["timeout"]
    if r == 0:
        big = np.ones(1 << 20)  # 8 MB: beyond any eager limit
        ok = expect(lambda: comm.send(big, dest=1, tag=5), baobab.TimeoutError, within=limit + 5)
    else:
        time.sleep(limit + 2)
elif scenario == "p2p_two_of_three":
    # A message between ranks 0 and 1 must not need rank 2, which makes no
    # baobab call after creating the communicator.
    comm = baobab.Communicator(timeout=30)
    if r == 0:
        comm.send(np.arange(6.0)[::2], dest=1, tag=3)
        comm.send(np.arange(4, dtype=np.int32), dest=1, tag=4)
    elif r == 1:
        got = comm.recv(np.empty(3), source=0, tag=3)
        got2 = comm.recv(np.empty(4, np.int32), source=0, tag=4)
        ok = got.tolist() == [0.0, 2.0, 4.0] and got2.tolist() == [0, 1, 2, 3]
        say(f"received {got.tolist()} {got2.tolist()}")
    else:
        time.sleep(0.5)
    say("done")
elif scenario == "construct_partial":
    # The last rank arrives long after the others' deadline: everyone raises,
    # nobody hangs.
    if r == p - 1:
        time.sleep(5)
        ok = expect(lambda: baobab.Communicator(timeout=2), baobab.TimeoutError, within=6)
    else:
        ok = expect(lambda: baobab.Communicator(timeout=2), baobab.TimeoutError, within=6)
elif scenario == "construct_late":
    # As construct_partial, but the early ranks go on inside MPI (a barrier)
    # after giving up: the late rank's duplication of the data communicator
    # completes, and its error names the ranks that left.
    if r == p - 1:
        time.sleep(5)
        t0 = time.monotonic()
        try:
            baobab.Communicator(timeout=2)
            say("NO ERROR")
            ok = False
        except baobab.TimeoutError as exc:
            say(f"TimeoutError after {time.monotonic() - t0:.2f} s: {exc} missing={list(exc.missing)}")
            ok = list(exc.missing) == list(range(p - 1)) and time.monotonic() - t0 < 6
    else:
        ok = expect(lambda: baobab.Communicator(timeout=2), baobab.TimeoutError, within=6)
    world.Barrier()
elif scenario == "construct_absent":
    # The last rank never creates it.
    if r == p - 1:
        time.sleep(4)
    else:
        ok = expect(lambda: baobab.Communicator(timeout=2), baobab.TimeoutError, within=6)
elif scenario == "no_deadline":
    comm = baobab.Communicator()
    t = comm.config()["timeout"]
    say(f"timeout {t}")
    ok = t == float("inf")
    ok = ok and comm.allreduce(np.ones(4)).tolist() == [float(p)] * 4
    ok = ok and comm.iallreduce(np.ones(2)).wait().tolist() == [float(p)] * 2
    ok = ok and comm.allreduce(np.ones(1 << 18, np.float32), algo="ring")[7] == p
    if r == 0:
        comm.send(np.arange(3.0), dest=1)
    elif r == 1:
        ok = ok and comm.recv(np.empty(3), source=0).tolist() == [0.0, 1.0, 2.0]
    comm.barrier()
elif scenario == "threads":
    # The communicator belongs to the thread that created it: a second thread
    # starting collectives on it is refused at once on every rank, and the
    # owner's results stay right. Then the owner hands it over.
    comm = baobab.Communicator(timeout=60)
    errors, results = [], []
    barrier = threading.Barrier(2)

    def intruder():
        barrier.wait()
        for _ in range(50):
            try:
                comm.allreduce(np.full(4, 1000.0))
                results.append("intruder got through")
            except baobab.InvalidArgument as exc:
                errors.append(str(exc))

    t = threading.Thread(target=intruder)
    t.start()
    barrier.wait()
    wrong = 0
    for i in range(200):
        y = comm.allreduce(np.full(4, float(r + i)))
        wrong += int(not (y == sum(q + i for q in range(p))).all())
    t.join()
    say(f"owner: {wrong} wrong of 200; intruder refused {len(errors)} times; {errors[0] if errors else ''}")
    ok = wrong == 0 and len(errors) == 50 and not results and "thread" in errors[0]
    # Non-blocking work started by the owner may be waited for anywhere.
    w = comm.iallreduce(np.ones(3))
    box = []
    waiter = threading.Thread(target=lambda: box.append(w.wait()))
    waiter.start()
    waiter.join()
    ok = ok and box[0].tolist() == [float(p)] * 3
    # Hand-over: the owner stops, a worker binds the communicator and uses it.
    comm.barrier()

    def worker():
        comm.bind_thread()
        box.append(comm.allreduce(np.full(2, 2.0)))

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    ok = ok and box[-1].tolist() == [2.0 * p] * 2
    ok = expect(lambda: comm.barrier(), baobab.InvalidArgument) and ok  # main is no longer the owner
    comm.bind_thread()
    comm.barrier()
elif scenario == "alltoall_flat":
    # As torch's all_to_all_single and mpi4py's Alltoall: a flat buffer is cut
    # into size equal blocks (axis 0 divisible by the size).
    comm = baobab.Communicator(timeout=30)
    x = np.arange(6 * p, dtype=np.int64) + 1000 * r
    y = comm.alltoall(x)
    want = np.concatenate([np.arange(6 * r, 6 * r + 6) + 1000 * j for j in range(p)])
    ok = y.shape == x.shape and y.tolist() == want.tolist()
    z = comm.alltoall(np.arange(4 * p * 3, dtype=np.float32).reshape(4 * p, 3) + r)
    ok = ok and z.shape == (4 * p, 3) and z[4 * 0:4].tolist() == (np.arange(4 * r * 3, 4 * r * 3 + 12,
                                                                             dtype=np.float32).reshape(4, 3)).tolist()
    ok = expect(lambda: comm.alltoall(np.ones(2 * p + 1)), baobab.InvalidArgument) and ok
    comm.barrier()
elif scenario in ("abort_in_collective", "abort_between"):
    # The last rank gives up (Communicator.abort) while the others wait in a
    # collective (a blocking one on rank 0, a non-blocking one waited for on
    # rank 1 of 3), or while they are between collectives: every other rank
    # raises baobab.Error naming it and its reason within a second, and so do
    # their next calls and its own. A second abort changes nothing; abort on a
    # freed communicator does nothing; a new communicator works.
    comm = baobab.Communicator(timeout=60)
    comm.allreduce(np.ones(3))
    quitter, reason = p - 1, "the test quits on purpose"
    want = f"rank {quitter} gave up ({reason})"

    def gave_up(fn, within):
        t0 = time.monotonic()
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            took = time.monotonic() - t0
            say(f"{type(exc).__name__} after {took:.2f} s: {exc}")
            good = type(exc) is baobab.Error and want in str(exc) and took <= within
            if not good:
                say(f"WRONG: want baobab.Error with {want!r} within {within} s")
            return good
        say("NO ERROR")
        return False

    world.Barrier()
    if r == quitter:
        time.sleep(0.5 if scenario == "abort_in_collective" else 0.0)
        comm.abort(reason)
        comm.abort("a second reason")  # idempotent: the first reason stays
        ok = gave_up(lambda: comm.allreduce(np.ones(3)), within=1.0)
    else:
        if scenario == "abort_between":
            time.sleep(0.5)  # the notice arrives while this rank is outside baobab
            ok = gave_up(lambda: comm.allreduce(np.ones(3)), within=1.0)
        elif r == 1:
            w = comm.iallreduce(np.ones(1000))
            ok = gave_up(w.wait, within=1.5)
        else:
            ok = gave_up(lambda: comm.allreduce(np.ones(1000)), within=1.5)  # the abort comes after 0.5 s
        ok = gave_up(comm.barrier, within=1.0) and ok  # and every later call
    comm.free()
    comm.abort("after free")  # does nothing
    ok = expect(lambda: comm.allreduce(np.ones(3)), baobab.Error) and ok
    fresh = baobab.Communicator(timeout=60)
    ok = ok and fresh.allreduce(np.ones(2)).tolist() == [float(p)] * 2
    fresh.free()
elif scenario == "abort_everywhere":
    # Every rank aborts at once: each one's notices reach ranks that no longer
    # listen and free the communicator. Later communicators (MPI may give them
    # the freed one's context) must not take those notices for their own.
    ok = True
    for i in range(10):
        comm = baobab.Communicator(timeout=60)
        y = comm.allreduce(np.full(4, float(i)))
        ok = ok and y.tolist() == [float(i * p)] * 4
        world.Barrier()  # every rank's allreduce has completed: the abort fails nothing in flight
        comm.abort(f"round {i}")
        comm.free()
    comm = baobab.Communicator(timeout=60)
    for i in range(20):
        ok = ok and comm.allreduce(np.ones(3)).tolist() == [float(p)] * 3
    comm.barrier()
    say(f"after 10 aborted communicators: {'right' if ok else 'WRONG'}")
elif scenario == "killed_rank":
    # The last rank dies (SIGKILL) in the middle of a stream of collectives:
    # the others must not wait for ever; the launcher or baobab's deadline ends them.
    import signal
    comm = baobab.Communicator(timeout=5)
    for i in range(200):
        if r == p - 1 and i == 50:
            os.kill(os.getpid(), signal.SIGKILL)
        comm.allreduce(np.ones(1000))
    say("survived the loop")  # not expected: the job should have ended
    ok = False
else:
    raise SystemExit(f"unknown scenario {scenario}")

say("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)

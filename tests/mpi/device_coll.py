"""Run under mpiexec: collectives on device buffers against the host collectives
on the same data. Usage: device_coll.py SCENARIO [emulated|cupy]

With `emulated` (no GPU needed) the device arrays are numpy arrays on a
communicator made under BAOBAB_DEVICE_EMULATION (which this script sets to
the transport named by BAOBAB_TEST_DEVICE_PATH, default staged); with `cupy`
they are cupy arrays on the GPU the rank's local rank selects.

Scenarios (each ends with 'RANK r: PASS' or 'RANK r: FAIL'):
  bits      every collective x float dtype x op on random data (not exact
            sums: the order of the reduction decides the bits), blocking and
            non-blocking, several sizes, the segmented path (many lanes in
            flight): the device result equals the host collective's, bit for bit.
  mixed     rank 0 passes device buffers, the others host buffers: one
            collective, the same bits (the messages are the same) with
            BAOBAB_DEVICE_PLAN=host and BAOBAB_DEVICE_IPC=0 or across nodes;
            with IPC on one node or the device plan, a MismatchError on every
            rank that says which setting to change.
  producer  (cupy) a kernel writes x on a non-default stream and the collective
            is called at once, without synchronising: the result is right.
  timeout   rank 1 never joins a device allreduce: the others get TimeoutError
            within BAOBAB_TIMEOUT (+ slack), naming rank 1.
  mismatch  rank 1 calls with another count: MismatchError on every rank.
  plans     the device model's own plans (BAOBAB_DEVICE_PLAN=device):
            each result equals the reference executor's replay of the plan
            the call ran (the simulator with data, every rank's inputs), bit
            for bit; at least one plan differs from the host buffers' plan.
  direct    (emulated) a ring allreduce: with IPC on one node the reduce-scatter
            half reduces straight out of the peer's exported buffer (no copy
            first) and the allgather half copies out of it; counted by the
            emulation, in bytes; the bits equal the host's.
"""
import os
import sys
import time

import numpy as np
from mpi4py import MPI

scenario = sys.argv[1]
MODE = sys.argv[2] if len(sys.argv) > 2 else "emulated"
world = MPI.COMM_WORLD
r, p = world.rank, world.size
PATH = os.environ.get("BAOBAB_TEST_DEVICE_PATH", "staged")

import baobab  # noqa: E402
from baobab.dtypes import bfloat16  # noqa: E402


def say(msg):
    sys.stdout.write(f"RANK {r}: {msg}\n")
    sys.stdout.flush()


host = baobab.Communicator(world, timeout=float(os.environ.get("BAOBAB_TIMEOUT", "60")))
if MODE == "emulated":
    os.environ["BAOBAB_DEVICE_EMULATION"] = PATH
    dev = baobab.Communicator(world, timeout=host.config()["timeout"])
    del os.environ["BAOBAB_DEVICE_EMULATION"]
    assert dev._emulate == PATH
    to_dev = np.array
    to_host = np.asarray
    DTYPES = [np.float16, bfloat16, np.float32, np.float64, np.int32, np.uint8, np.int64]
else:
    import cupy
    cupy.cuda.Device(int(os.environ.get("BAOBAB_GPU", "0"))).use()
    dev = host
    to_dev = cupy.asarray
    to_host = cupy.asnumpy
    DTYPES = [np.float16, np.float32, np.float64, np.int32, np.uint8, np.int64]  # cupy has no bfloat16

ok = True


def same(a, b, what):
    global ok
    a, b = to_host(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
        say(f"DIFFER {what}: shapes {a.shape} {b.shape}, dtypes {a.dtype} {b.dtype}")
        ok = False


def rand(n, dt, seed):
    rng = np.random.default_rng(seed)
    if np.dtype(dt).kind in "iu":
        return rng.integers(0, 50, size=n).astype(dt)
    return (rng.standard_normal(n) * 3).astype(dt)


def bits():
    sizes = [0, 1, 13, 5 * p + 3, 40000]
    for dt in DTYPES:
        for op in ("sum", "prod", "min", "max"):
            for n in sizes:
                x = rand(n, dt, 100 * r + n)
                want = host.allreduce(x, op=op)
                same(dev.allreduce(to_dev(x), op=op), want, f"allreduce {np.dtype(dt)} {op} n={n}")
                same(dev.iallreduce(to_dev(x), op=op).wait(), want, f"iallreduce {np.dtype(dt)} {op} n={n}")
                if op in ("sum", "max") and n:
                    rows = rand(n * p, dt, 7 * r + n).reshape(p * n, 1)
                    same(dev.reduce_scatter(to_dev(rows), op=op), host.reduce_scatter(rows, op=op),
                         f"reduce_scatter {np.dtype(dt)} {op} n={n}")
                    got = dev.reduce(to_dev(x), op=op, root=p - 1)
                    want_r = host.reduce(x, op=op, root=p - 1)
                    if r == p - 1:
                        same(got, want_r, f"reduce {np.dtype(dt)} {op} n={n}")
        x = rand(1001, dt, r)
        same(dev.allgather(to_dev(x)), host.allgather(x), f"allgather {np.dtype(dt)}")
        same(dev.iallgather(to_dev(x)).wait(), host.allgather(x), f"iallgather {np.dtype(dt)}")
        y = rand(1000, dt, 55)
        b = to_dev(y if r == 1 % p else np.zeros_like(y))
        dev.bcast(b, root=1 % p)
        same(b, y, f"bcast {np.dtype(dt)}")
        a = rand(4 * p, dt, r + 9)
        same(dev.alltoall(to_dev(a)), host.alltoall(a), f"alltoall {np.dtype(dt)}")
        rows = rand(3 * (r + 1), dt, r).reshape(r + 1, 3)
        got, counts = dev.allgatherv(to_dev(rows))
        want, wcounts = host.allgatherv(rows)
        same(got, want, f"allgatherv {np.dtype(dt)}")
        sc = [(r + d) % 3 for d in range(p)]
        v = rand(sum(sc), dt, r + 3)
        got, _ = dev.alltoallv(to_dev(v), sc)
        same(got, host.alltoallv(v, sc)[0], f"alltoallv {np.dtype(dt)}")
    # every algorithm forced, and the segmented path: 2 MiB of float32 in 64 KiB lanes
    seg = baobab.Communicator(world, segment=65536, window=4, timeout=host.config()["timeout"])
    if MODE == "emulated":
        os.environ["BAOBAB_DEVICE_EMULATION"] = PATH
        dseg = baobab.Communicator(world, segment=65536, window=4, timeout=host.config()["timeout"])
        del os.environ["BAOBAB_DEVICE_EMULATION"]
    else:
        dseg = seg
    x = rand(1 << 19, np.float32, r)
    for a in [None] + [e["name"] for e in baobab.algorithms() if e["collective"] == "allreduce"]:
        try:
            want = seg.allreduce(x, algo=a)
        except baobab.InvalidArgument:  # not applicable at this rank count
            continue
        w = dseg.iallreduce(to_dev(x), algo=a)
        same(w.wait(), want, f"segmented allreduce algo={a} ({w.algorithm})")
    works = [dseg.iallreduce(to_dev(rand(70000, np.float64, r + k))) for k in range(3)]
    for k, w in enumerate(works):  # several in flight at once
        same(w.wait(), seg.allreduce(rand(70000, np.float64, r + k)), f"concurrent allreduce {k}")


def mixed():
    x = rand(30000, np.float32, r)
    want = host.allreduce(x)
    if MODE == "emulated":  # one communicator, device lanes on rank 0 only
        if r == 0:
            os.environ["BAOBAB_DEVICE_EMULATION"] = PATH
        mix = baobab.Communicator(world, timeout=host.config()["timeout"])
        os.environ.pop("BAOBAB_DEVICE_EMULATION", None)
    else:
        mix = host
    by_ipc = os.environ.get("BAOBAB_DEVICE_IPC", "1") != "0" and mix.topology.num_nodes == 1
    device_plan = os.environ.get("BAOBAB_DEVICE_PLAN", "device") != "host"
    if by_ipc or device_plan:
        # Device buffers by IPC on a node whose other ranks have host buffers,
        # or under the device model's plan: refused by the signature.
        global ok
        try:
            if r == 0:
                mix.allreduce(to_dev(x))
            else:
                mix.allreduce(x)
            mix.allreduce(x[:10])
            say("NO ERROR")
            ok = False
        except baobab.MismatchError as e:
            say(f"MismatchError: {e}")
            ok = ok and ("BAOBAB_DEVICE_IPC=0" in str(e)) == by_ipc and ("BAOBAB_DEVICE_PLAN=host" in str(e)) == device_plan
        return
    if r == 0:
        got = to_host(mix.allreduce(to_dev(x)))
    else:
        got = mix.allreduce(x)
    same(got, want, "mixed host/device allreduce")
    same(np.asarray(world.bcast(got if r == 0 else None, root=0)), got, "rank 0's device result equals the others'")


def producer():
    import cupy
    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        a = cupy.arange(1 << 24, dtype=cupy.float32)
        for _ in range(20):  # keep the stream busy for a while
            a = a * 1.0 + 0.0
        x = a + r  # written on s, not synchronised
        y = dev.allreduce(x)
    s.synchronize()
    want = np.arange(1 << 24, dtype=np.float32) * p + sum(range(p))
    same(y, want, "unsynchronised producer")


def timeout():
    global ok
    x = to_dev(np.ones(1000, np.float32))
    if r == 1:
        time.sleep(host.config()["timeout"] + 3)
        say("slept")
        return
    t0 = time.monotonic()
    try:
        dev.allreduce(x)
        say("NO ERROR")
        ok = False
    except baobab.TimeoutError as e:
        took = time.monotonic() - t0
        say(f"TimeoutError after {took:.2f} s: {e}")
        if took > host.config()["timeout"] + 5 or "1" not in str(e):
            ok = False


def mismatch():
    global ok
    n = 1000 if r != 1 else 1001
    try:
        dev.allreduce(to_dev(np.ones(n, np.float32)))
        dev.allreduce(to_dev(np.ones(5, np.float32)))  # a rank whose own part completed learns it here
        say("NO ERROR")
        ok = False
    except baobab.MismatchError as e:
        say(f"MismatchError: {e}")


def direct():
    global ok
    from baobab._core import emulated_peer_traffic
    n = p * 4096
    for dt, es in ((np.float32, 4), (np.float64, 8)):
        x = rand(n, dt, r)
        want = host.allreduce(x, algo="ring")
        c0, d0 = emulated_peer_traffic()
        same(dev.allreduce(to_dev(x), algo="ring"), want, f"ring allreduce {np.dtype(dt)}")
        c1, d1 = emulated_peer_traffic()
        block = (p - 1) * (n // p) * es if os.environ.get("BAOBAB_DEVICE_IPC", "1") == "1" else 0
        if (c1 - c0, d1 - d0) != (block, block):
            say(f"peer traffic: copied {c1 - c0}, reduced from {d1 - d0}; expected {block} each")
            ok = False


def plans():
    global ok
    from baobab import _core
    from baobab.comm import ALLREDUCE, REDUCE_SCATTER
    from baobab.dtypes import OPS, code_of
    topo = dev._c.topology()
    differ = 0
    for dt in [d for d in (np.float16, bfloat16, np.float32, np.float64) if d in DTYPES]:
        for n in (13, 40000, 1 << 19):
            for coll in ("allreduce", "reduce_scatter"):
                count = n - n % p if coll == "reduce_scatter" else n
                x = rand(count, dt, 31 * r + n)
                if coll == "allreduce":
                    w = dev.iallreduce(to_dev(x))
                else:
                    w = dev.ireduce_scatter(to_dev(x.reshape(p, -1)))
                got = to_host(w.wait())
                plan = dev.plan(coll, x.nbytes, dtype=np.dtype(dt), device=True)
                hp = host.plan(coll, x.nbytes, dtype=np.dtype(dt))
                if plan["algorithm"] != w.algorithm:
                    say(f"{coll} n={count}: ran {w.algorithm}, plan(device=True) says {plan['algorithm']}")
                    ok = False
                differ += (hp["algorithm"], hp["segments"]) != (plan["algorithm"], plan["segments"])
                inputs = [a.view(np.uint8) for a in world.allgather(x)]  # bytes: the replay reduces as `dt`
                outs = [np.zeros(count // p if coll == "reduce_scatter" else count, dt).view(np.uint8)
                        for _ in range(p)]
                code = ALLREDUCE if coll == "allreduce" else REDUCE_SCATTER
                counts = [] if coll == "allreduce" else [count // p] * p
                _core.simulate(topo, code, w.algorithm, 0 if counts else count, counts, 0, code_of(np.dtype(dt)),
                               OPS["sum"], inputs, outs, {}, plan["segments"], plan["segment_count"])
                same(got.reshape(-1), outs[r].view(dt), f"{coll} {np.dtype(dt)} n={count} ({w.algorithm}, "
                                               f"{plan['segments']} segments) against the replay")
    if differ == 0:
        say("no device plan differs from the host plan: nothing here tests the device model's plans")
        ok = False


{"bits": bits, "mixed": mixed, "direct": direct, "plans": plans, "producer": producer, "timeout": timeout, "mismatch": mismatch}[scenario]()
say("PASS" if ok else "FAIL")

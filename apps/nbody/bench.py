"""Throughput of the N-body force kernel.

    python apps/nbody/bench.py [--n 16384] [--ni NI] [--eps2 1e-6] [--device] [--device-k 1,8,64,512]

Host: interactions/s (ni x n per call) of the compiled kernel on one thread and
on all cores, and of forces_numpy() (timed on a subset of the targets), in the
same run, with their ratio, the ISA tier, and the largest relative difference
between the kernel and numpy. --device: the CUDA kernel on cupy arrays, its
interactions/s, FLOP rate (60 flops per interaction) and fraction of the card's
float64 peak (SMs x FP64 FMA/clk/SM x 2 x boost clock), and its difference from
the host kernel. --device-k: small target sets (k targets among the n
sources, as in a block step with k active bodies), the one-thread-per-target
kernel against the j-split, each a bare kernel call on buffers made once, their
interactions/s and ratio, and which one the automatic choice takes. Prints one
table; asserts nothing about time.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from kernels import forces, forces_isa, forces_numpy  # noqa: E402

FLOPS_PER_INTERACTION = 60
FP64_FMA_PER_SM = {(8, 0): 32, (9, 0): 64}  # A100, H100 (non-tensor FP64 units per SM)


def best_time(fn, reps, sync=lambda: None):
    best = float("inf")
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 1:
        return float(np.max(np.abs(a - b) / np.abs(b)))
    return float(np.max(np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16384, help="sources")
    p.add_argument("--ni", type=int, default=None, help="targets (default n: the sources themselves)")
    p.add_argument("--eps2", type=float, default=1e-6)
    p.add_argument("--numpy-ni", type=int, default=512, help="targets timed with numpy")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--device", action="store_true", help="also time the CUDA kernel (cupy arrays)")
    p.add_argument("--device-n", type=int, default=None,
                   help="sources = targets for the device run (default n, ni; one thread per target, so a GPU "
                        "needs ni of 100k or more to fill)")
    p.add_argument("--device-k", default="",
                   help="comma-separated target counts: time the device kernels (split off / on) on k targets "
                        "among the n sources")
    a = p.parse_args()
    n = a.n
    ni = a.ni or n
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3))
    v = rng.standard_normal((n, 3))
    m = rng.uniform(0.5, 1.5, n) / n
    ids = np.arange(n, dtype=np.int64)
    pick = np.arange(ni) % n
    xi, vi, idi = x[pick].copy(), v[pick].copy(), ids[pick].copy()
    inter = float(ni) * n
    rows = []

    forces(xi[:64], vi[:64], idi[:64], x, v, m, 0, a.eps2, threads=1)  # warm-up
    t1 = best_time(lambda: forces(xi, vi, idi, x, v, m, 0, a.eps2, threads=1), a.reps)
    ta = best_time(lambda: forces(xi, vi, idi, x, v, m, 0, a.eps2), a.reps)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    nn = min(ni, a.numpy_ni)
    ref = []
    tn = best_time(lambda: ref.append(forces_numpy(xi[:nn], vi[:nn], idi[:nn], x, v, m, 0, a.eps2)),
                   max(1, a.reps - 1))
    got = forces(xi[:nn], vi[:nn], idi[:nn], x, v, m, 0, a.eps2)
    diff = max(rel(g, r) for g, r in zip(got, ref[-1]))
    r1, ra, rn = inter / t1, inter / ta, nn * float(n) / tn
    rows.append((f"C++ {forces_isa()}, 1 thread", r1, f"{r1 / rn:.1f}x numpy"))
    rows.append((f"C++ {forces_isa()}, {cores} cores", ra, f"{ra / rn:.1f}x numpy, {ra / r1:.2f}x 1 thread"))
    rows.append((f"numpy ({nn} targets)", rn, f"max rel diff vs C++ {diff:.1e}"))

    if a.device:
        import cupy
        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        sms = cupy.cuda.runtime.deviceGetAttribute(cupy.cuda.runtime.cudaDevAttrMultiProcessorCount, dev.id)
        clk_khz = cupy.cuda.runtime.deviceGetAttribute(cupy.cuda.runtime.cudaDevAttrClockRate, dev.id)
        cc = dev.compute_capability
        per_sm = FP64_FMA_PER_SM.get((int(cc[:-1]), int(cc[-1])))
        peak = sms * per_sm * 2 * clk_khz * 1e3 if per_sm else None
        dn = a.device_n or None
        if dn:
            dx = rng.standard_normal((dn, 3))
            dv = rng.standard_normal((dn, 3))
            dm = rng.uniform(0.5, 1.5, dn) / dn
            hd = (dx, dv, np.arange(dn, dtype=np.int64), dx, dv, dm)
        else:
            hd = (xi, vi, idi, x, v, m)
        dinter = float(hd[0].shape[0]) * hd[3].shape[0]
        d = [cupy.asarray(t) for t in hd]
        sync = cupy.cuda.get_current_stream().synchronize
        forces(*d, first_id=0, eps2=a.eps2)
        sync()
        td = best_time(lambda: forces(*d, first_id=0, eps2=a.eps2), max(a.reps, 5), sync)
        out = forces(*d, first_id=0, eps2=a.eps2)
        nc = min(hd[0].shape[0], 2048)  # host check on the first targets
        host = forces(hd[0][:nc], hd[1][:nc], hd[2][:nc], *hd[3:], 0, a.eps2)
        ddiff = max(rel(cupy.asnumpy(g[:nc]), h) for g, h in zip(out, host))
        rd = dinter / td
        fl = rd * FLOPS_PER_INTERACTION
        pk = f"{100 * fl / peak:.0f}% of FP64 peak {peak / 1e12:.1f} TFLOP/s" if peak else "peak unknown"
        rows.append((f"CUDA {name} (sm_{cc}, {sms} SMs), n = ni = {hd[3].shape[0]}", rd,
                     f"{fl / 1e12:.2f} TFLOP/s, {pk}; {rd / ra:.0f}x host; max rel diff vs C++ {ddiff:.1e}"))

    print(f"N-body forces, float64: n = {n} sources, ni = {ni} targets, eps2 = {a.eps2:g}")
    print(f"{'kernel':40s} {'interactions/s':>16s}  notes")
    for label, rate, note in rows:
        print(f"{label:40s} {rate:16.3e}  {note}")
    if a.device_k:
        small_sets(x, v, m, ids, [int(k) for k in a.device_k.split(",")], a.eps2)


def small_sets(x, v, m, ids, ks, eps2, calls=50):
    """The two device kernels on k targets among the sources: a bare kernel call on
    one stream (outputs and scratch made once), the best of 5 rounds of `calls`
    back-to-back calls, launches included; the results of both compared."""
    import cupy

    from kernels import native
    ext = native()
    n = len(m)
    stream = cupy.cuda.Stream(non_blocking=True)
    dx, dv, dm = (cupy.asarray(t) for t in (x, v, m))
    print(f"\nsmall target sets on the device, n = {n} (split: j-split kernel; 1-thread: one thread per target)")
    print(f"{'k':>7s} {'1-thread us':>12s} {'interactions/s':>15s} {'split us':>10s} {'interactions/s':>15s} "
          f"{'split/1-thread':>15s} {'auto':>8s} {'max rel diff':>13s}")
    rng = np.random.default_rng(1)
    for k in ks:
        pick = np.sort(rng.choice(n, min(k, n), replace=False))
        k = len(pick)
        t = cupy.asarray(np.concatenate([x[pick].ravel(), v[pick].ravel(), ids[pick].view(np.float64)]))
        ti = t.data.ptr
        outs, times = {}, {}
        for mode in ("off", "on"):
            plan = ext.device_plan(k, n, mode)
            work = cupy.empty(max(plan["work_bytes"], 1), cupy.uint8)
            out = cupy.empty(7 * k)
            o = out.data.ptr

            def call():
                ext.forces_device(ti, ti + 24 * k, ti + 48 * k, k, dx.data.ptr, dv.data.ptr, dm.data.ptr, n,
                                  0, eps2, o, o + 24 * k, o + 48 * k, stream.ptr, mode, work.data.ptr, work.nbytes)

            call()
            times[mode] = best_time(lambda: [call() for _ in range(calls)], 5, stream.synchronize) / calls
            outs[mode] = cupy.asnumpy(out)
        parts = (slice(0, 3 * k), slice(3 * k, 6 * k), slice(6 * k, 7 * k))  # acc, jerk, pot
        diff = max(float(np.abs(outs["on"][q] - outs["off"][q]).max() / np.abs(outs["off"][q]).max()) for q in parts)
        auto = "split" if ext.device_plan(k, n, "auto")["split"] else "1-thread"
        r1, rs = k * n / times["off"], k * n / times["on"]
        print(f"{k:7d} {times['off'] * 1e6:12.1f} {r1:15.3e} {times['on'] * 1e6:10.1f} {rs:15.3e} "
              f"{rs / r1:14.1f}x {auto:>8s} {diff:13.1e}")


if __name__ == "__main__":
    main()

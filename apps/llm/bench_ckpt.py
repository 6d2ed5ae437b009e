"""What checkpointing costs a training run: the same steps without checkpoints
and with one after every step, in each --ckpt-mode, in the same job.

    mpiexec -n 2 python apps/llm/bench_ckpt.py [--steps 6] [--dir /scratch/x] [--json out.json]

Each mode trains --steps steps of the ~10M GPT of bench.py (--dp = the rank
count, one thread per rank) with a checkpoint (parameters and both AdamW
moments, float32: 12 bytes per parameter) after every step, committed as it
would be in train.py (poll() at each step end, close() at the end); "none"
trains the same steps without. Printed per mode: the wall time per step, its
excess over "none" (what a checkpoint costs the run), how long save() held
the training loop (the stall), and the checkpoint's size. The first step of
each mode is not timed. Modes run one after another in the order given,
after an untimed "none" warm-up.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

MODES = ("none", "async", "async-rank0", "collective")


def parse(argv):
    p = argparse.ArgumentParser(prog="llm-bench-ckpt", description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="sequences per data-parallel rank")
    p.add_argument("--steps", type=int, default=6, help="timed steps per mode (after one untimed)")
    p.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    p.add_argument("--dir", default=None, help="where the checkpoints go (default: a temporary directory)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.steps < 1:
        p.error("--steps must be at least 1")
    return a


def main(argv=None):
    a = parse(sys.argv[1:] if argv is None else argv)
    from train import keep_freed_memory, set_blas_threads
    set_blas_threads(1)
    keep_freed_memory()
    import numpy as np

    import baobab
    import ckpt
    import train
    world = baobab.init()
    base = ["--layers", str(a.layers), "--width", str(a.width), "--heads", str(a.heads), "--context", str(a.context),
            "--batch", str(a.batch), "--steps", str(a.steps + 1), "--threads", "1", "--no-ckpt", "--warmup", "1",
            "--dp", str(world.size)]
    tr = train.Trainer(train.parse(base), world)
    top = a.dir
    made = None
    if world.rank == 0 and top is None:
        made = top = tempfile.mkdtemp(prefix="llm-bench-ckpt-")
    top = world.mpi_comm.bcast(top, root=0)
    results = {}
    tr.step(0)  # warm-up
    for mode in a.modes:
        ck = None if mode == "none" else ckpt.open_checkpointer(os.path.join(top, mode), world, keep=2, mode=mode)
        walls, stalls = [], []
        for step in range(a.steps + 1):
            world.mpi_comm.Barrier()
            t0 = time.perf_counter()
            tr.step(step)
            t1 = time.perf_counter()
            if ck is not None:
                tr.save(ck, step + 1)
                ck.poll()
            t2 = time.perf_counter()
            if step:
                walls.append(t2 - t0)
                stalls.append(t2 - t1)
        t3 = time.perf_counter()
        size = 0
        if ck is not None:
            ck.close()
            if world.rank == 0:
                size = max(os.path.getsize(os.path.join(ck.directory, f)) for f in os.listdir(ck.directory))
        tail = time.perf_counter() - t3
        results[mode] = dict(wall=float(np.mean(walls)), stall=float(np.mean(stalls)), close=tail, bytes=size)
    if world.rank == 0 and made:
        shutil.rmtree(made, ignore_errors=True)
    if world.rank != 0:
        return 0
    ref = results.get("none", {}).get("wall")
    print(f"llm-bench-ckpt: {world.size} ranks, {tr.M.num_params(tr.cfg):,} parameters, "
          f"{a.steps} timed steps per mode, a checkpoint after every step")
    print(f"{'mode':>12} {'s/step':>8} {'excess':>8} {'stall':>8} {'final wait':>10} {'checkpoint':>11}")
    for mode, r in results.items():
        excess = "" if ref is None or mode == "none" else f"{r['wall'] - ref:+8.3f}"
        print(f"{mode:>12} {r['wall']:8.3f} {excess:>8} {r['stall']:8.3f} {r['close']:10.3f} "
              f"{r['bytes'] / 2**20:10.1f}M")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"config": vars(a), "ranks": world.size, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

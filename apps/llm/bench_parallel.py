"""Parallel training throughput on 2 ranks, against 1 rank in the same job:
data parallel (--dp 2, also ZeRO-1), tensor parallel (--tp 2) and sequence
parallel (--sp 2), one thread per rank, the ~10M GPT of bench.py by default.

    mpiexec -n 2 python apps/llm/bench_parallel.py [--steps 3] [--json out.json]

Rank 0 trains alone (train.Trainer on a one-rank communicator, one thread)
while rank 1 sleeps, then both ranks train each layout, one step each, round
after round (a slow spell of the machine falls on all alike); the medians of
the timed rounds are compared. For each layout:
tokens/s (median step) and its ratio to the one rank, the exposed
communication's share of the step (t_comm: the waits for gradient buckets
after the backward pass, the TP all-reduces, the loss's reduction, less the
time spent waiting for the slower rank, shown as imbalance), and the
bytes per step this rank handed to collectives against the formula:
  DP:  the gradient, Psi b (Psi: parameters, bucket padding included)
  TP:  per micro-batch (4 layers + 2) B T C b for the activations' all-reduces
       (two per layer forward, two backward, the embedding and the head) plus
       3 B T b for the vocabulary-parallel cross-entropy's row statistics,
       plus the loss
  SP:  ring attention, per layer (3p - 2) x 2 B (T/p) C b (K and V travel p - 1
       hops forward and back, their gradients p hops), by formula only, plus
       the gradient as for DP.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def parse(argv):
    p = argparse.ArgumentParser(prog="llm-bench-parallel", description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=8, help="sequences per data-parallel rank")
    p.add_argument("--steps", type=int, default=3, help="timed steps per layout (after one untimed)")
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def main(argv=None):
    a = parse(sys.argv[1:] if argv is None else argv)
    from train import keep_freed_memory, set_blas_threads
    set_blas_threads(1)
    keep_freed_memory()
    import numpy as np
    from mpi4py import MPI

    import baobab
    import train
    world = baobab.init()
    if world.size != 2:
        print("llm-bench-parallel: run it on 2 ranks (mpiexec -n 2)", file=sys.stderr)
        return 2
    base = ["--layers", str(a.layers), "--width", str(a.width), "--heads", str(a.heads), "--context", str(a.context),
            "--batch", str(a.batch), "--steps", str(a.steps + 1), "--threads", "1", "--no-ckpt", "--warmup", "1"]

    layouts = {"dp 2": ["--dp", "2"], "dp 2 zero 1": ["--dp", "2", "--zero", "1"],
               "tp 2": ["--tp", "2"], "sp 2": ["--sp", "2"]}
    one = train.Trainer(train.parse(base), baobab.Communicator(MPI.COMM_SELF)) if world.rank == 0 else None
    trainers = {name: train.Trainer(train.parse(base + extra), world) for name, extra in layouts.items()}
    rows = {name: [] for name in ["1 rank", *layouts]}

    def sleep_until_rank0_is_done():  # rank 1 waits without taking a core
        req = world.mpi_comm.Ibarrier()
        while not req.Test():
            time.sleep(0.005)

    # Rounds alternate the layouts step by step, so that a slow spell of this
    # machine falls on all of them alike; the first round is not timed.
    for step in range(a.steps + 1):
        if world.rank == 0:
            rows["1 rank"].append(one.step(step))
        sleep_until_rank0_is_done()
        for name, tr in trainers.items():
            rows[name].append(tr.step(step))
    results = {}
    for name, rs in rows.items():
        if not rs:
            continue
        rs = sorted(rs[1:], key=lambda r: r["t_step"])
        results[name] = rs[len(rs) // 2]
        if name in trainers:
            tr = trainers[name]
            results[name]["psi_bytes"] = tr.layout.total * tr.cfg.np_dtype.itemsize
    if world.rank != 0:
        return 0
    C, L, T = a.width, a.layers, a.context
    b = 4
    ref = results["1 rank"]["tokens_per_s"]
    out = {"config": vars(a), "layouts": {}}
    print(f"{'layout':>12} {'tokens/s':>9} {'vs 1 rank':>9} {'exposed comm':>12} {'imbalance':>9} {'bytes/step':>11} "
          f"{'formula':>11}")
    for name, r in results.items():
        B = a.batch
        if name.startswith("dp"):
            formula = r["psi_bytes"]
        elif name.startswith("tp"):
            formula = (4 * L + 2) * B * T * C * b + 3 * B * T * b
        elif name.startswith("sp"):
            formula = L * (3 * 2 - 2) * 2 * B * (T // 2) * C * b + r["psi_bytes"]
        else:
            formula = 0
        measured = r["comm_bytes"] + (L * (3 * 2 - 2) * 2 * B * (T // 2) * C * b if name.startswith("sp") else 0)
        share = r["t_comm"] / r["t_step"]
        print(f"{name:>12} {r['tokens_per_s']:9,.0f} {r['tokens_per_s'] / ref:8.2f}x {share:11.1%} "
              f"{r['t_imbalance'] / r['t_step']:8.1%} "
              f"{measured / 2**20:10.1f}M {formula / 2**20:10.1f}M")
        out["layouts"][name] = dict(tokens_per_s=r["tokens_per_s"], ratio=r["tokens_per_s"] / ref,
                                    exposed_comm=share, imbalance=r["t_imbalance"] / r["t_step"], bytes=measured, formula=formula, t_step=r["t_step"],
                                    t_comm=r["t_comm"], t_optim=r["t_optim"])
    print("(sp: the ring's bytes are the formula's; the gradient's are measured)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

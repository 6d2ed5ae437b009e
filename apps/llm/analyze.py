"""Plots of a training run from its metrics.h5: the loss curves (training per
step, validation at its intervals) and the throughput (tokens/s, with the
step's time split into compute, exposed communication and optimizer).

    python apps/llm/analyze.py RUN_DIR [--out DIR]   -> loss.png, throughput.png
    python apps/llm/analyze.py RUN_A RUN_B ...        -> the runs' losses on one plot

Exit status: 0, or 2 with one line when a run has no readable metrics.h5.
"""
import argparse
import os
import sys


def load(run_dir):
    """{"train": {column: array}, "val": {...}} of a run's metrics.h5."""
    import h5py
    import numpy as np
    path = os.path.join(run_dir, "metrics.h5")
    with h5py.File(path, "r") as f:
        return {g: {k: np.asarray(f[g][k]) for k in f[g].keys()} for g in ("train", "val") if g in f}


def plot(run_dirs, out=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = [(os.path.basename(os.path.normpath(r)) or r, load(r)) for r in run_dirs]
    out = out or run_dirs[0]
    os.makedirs(out, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, d in runs:
        tr = d["train"]
        line, = ax.plot(tr["step"], tr["loss"], lw=1, alpha=0.8, label=f"{name} train")
        if "val" in d and len(d["val"].get("step", ())):
            ax.plot(d["val"]["step"], d["val"]["loss"], "o-", ms=3, color=line.get_color(), label=f"{name} validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("loss")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    loss = os.path.join(out, "loss.png")
    fig.savefig(loss, dpi=120)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 6), sharex=True)
    for name, d in runs:
        tr = d["train"]
        a1.plot(tr["step"], tr["tokens_per_s"], lw=1, label=name)
    a1.set_ylabel("tokens/s")
    a1.set_title("throughput")
    a1.grid(True, alpha=0.3)
    a1.legend(fontsize=8)
    tr = runs[0][1]["train"]
    parts = [(k, tr[k]) for k in ("t_compute", "t_comm", "t_imbalance", "t_optim") if k in tr]
    if parts:
        a2.stackplot(tr["step"], *[v for _, v in parts], labels=[k[2:] for k, _ in parts])
        a2.legend(fontsize=8, loc="upper right")
    a2.set_xlabel("step")
    a2.set_ylabel(f"seconds per step ({runs[0][0]})")
    a2.grid(True, alpha=0.3)
    fig.tight_layout()
    thr = os.path.join(out, "throughput.png")
    fig.savefig(thr, dpi=120)
    plt.close(fig)
    return loss, thr


def main(argv=None):
    p = argparse.ArgumentParser(prog="llm-analyze", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories (each with metrics.h5)")
    p.add_argument("--out", default=None, help="where the PNGs go (default: the first run's directory)")
    a = p.parse_args(argv)
    for r in a.runs:
        path = os.path.join(r, "metrics.h5")
        try:
            load(r)
        except (OSError, KeyError) as e:
            print(f"llm-analyze: cannot read {path}: {e}", file=sys.stderr)
            return 2
    for path in plot(a.runs, a.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

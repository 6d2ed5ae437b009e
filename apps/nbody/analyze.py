"""Plots of an N-body run from its diagnostics.h5: energy error and Lagrangian
radii (with the core radius) against time.

    python apps/nbody/analyze.py RUN_DIR [--out DIR]   -> energy.png, lagrangian.png
"""
import argparse
import os
import sys


def load(run_dir):
    import h5py
    import numpy as np
    path = os.path.join(run_dir, "diagnostics.h5")
    with h5py.File(path, "r") as f:
        return {k: np.asarray(f[k]) for k in f.keys()}


def plot(run_dir, out=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    d = load(run_dir)
    out = out or run_dir
    os.makedirs(out, exist_ok=True)
    t = d["time"]
    fig, ax = plt.subplots(figsize=(6, 4))
    de = np.where(d["de_rel"] > 0, d["de_rel"], np.nan)
    ax.semilogy(t, de, "o-", ms=3)
    ax.set_xlabel("time (N-body units)")
    ax.set_ylabel("|E - E0| / |E0|")
    ax.set_title("energy error")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    energy = os.path.join(out, "energy.png")
    fig.savefig(energy, dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    lag = d["lagrangian_radii"]
    for i, f in enumerate((10, 50, 90)):
        ax.semilogy(t, lag[:, i], label=f"{f} % mass")
    if np.isfinite(d["core_radius"]).any():
        ax.semilogy(t, d["core_radius"], "k--", label="core radius")
    ax.set_xlabel("time (N-body units)")
    ax.set_ylabel("radius (N-body units)")
    ax.set_title("Lagrangian radii")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    lagr = os.path.join(out, "lagrangian.png")
    fig.savefig(lagr, dpi=120)
    plt.close(fig)
    return energy, lagr


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    try:
        for path in plot(a.run_dir, a.out):
            print(path)
    except (OSError, KeyError) as e:
        print(f"analyze: error: cannot read {a.run_dir}/diagnostics.h5: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

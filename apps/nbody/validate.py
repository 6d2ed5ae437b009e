"""Checks an N-body run's outputs: every snapshot has the GADGET/SWIFT layout,
the run's bodies, finite values and coordinates inside [0, BoxSize), and the
energy series is finite with the energy error and virial ratio in bounds.

    python apps/nbody/validate.py RUN_DIR [--max-de 1e-5] [--virial 0.5 --virial-tol 0.1]
Prints "Verification: PASS", or the failures and "Verification: FAIL" and exits
1; a bad argument is one line and exit 2. A NaN anywhere is a failure (every
comparison here is written so that NaN fails it).
"""
import argparse
import glob
import math
import os
import sys

HEADER = ("NumPart_ThisFile", "NumPart_Total", "NumPart_Total_HighWord", "MassTable", "Time", "Redshift",
          "BoxSize", "NumFilesPerSnapshot")
DATASETS = ("Coordinates", "Velocities", "Masses", "ParticleIDs", "Potential")
SERIES = ("time", "energy", "kinetic", "potential", "de_rel", "virial")


def _nonfinite(np, a):
    return int(np.sum(~np.isfinite(a)))


def check_snapshot(s, n=None):
    """(failures, number of bodies) of one snapshot file."""
    import h5py
    import numpy as np
    bad = []
    try:
        with h5py.File(s, "r") as f:
            hd = f["Header"].attrs if "Header" in f else {}
            for k in HEADER:
                if k not in hd:
                    bad.append(f"{s}: Header lacks {k}")
            missing = [k for k in DATASETS if f"PartType1/{k}" not in f]
            bad += [f"{s}: no PartType1/{k}" for k in missing]
            if missing or "NumPart_Total" not in hd:
                return bad, n
            total = int(hd["NumPart_Total"][1]) + (int(hd["NumPart_Total_HighWord"][1]) << 32
                                                   if "NumPart_Total_HighWord" in hd else 0)
            if n is None:
                n = total
            g = f["PartType1"]
            if total != n or len(g["Masses"]) != n:
                bad.append(f"{s}: {len(g['Masses'])} bodies, expected {n}")
            ids = np.asarray(g["ParticleIDs"])
            if len(np.unique(ids)) != len(ids):
                bad.append(f"{s}: duplicate ParticleIDs")
            for k in ("Coordinates", "Velocities", "Masses", "Potential"):
                a = np.asarray(g[k])
                if _nonfinite(np, a):
                    bad.append(f"{s}: PartType1/{k} holds {_nonfinite(np, a)} non-finite values")
            if not math.isfinite(float(hd.get("Time", math.nan))):
                bad.append(f"{s}: Header/Time is not finite")
            box = float(hd.get("BoxSize", math.nan))
            x = np.asarray(g["Coordinates"])
            inside = (x >= 0) & (x < box)  # GADGET/SWIFT readers take the domain as [0, BoxSize)
            if not (box > 0 and np.all(inside | ~np.isfinite(x))):
                bad.append(f"{s}: {int(np.sum(~inside & np.isfinite(x)))} coordinates outside [0, BoxSize = {box})")
    except (OSError, KeyError, ValueError, TypeError, IndexError) as e:
        bad.append(f"{s}: unreadable ({e})")
    return bad, n


def check(run_dir, max_de=1e-5, virial=None, virial_tol=0.1):
    import h5py
    import numpy as np
    bad = []
    snaps = sorted(glob.glob(os.path.join(run_dir, "snapshot_*.h5")))
    if not snaps:
        return [f"no snapshots in {run_dir}"]
    n = None
    for s in snaps:
        more, n = check_snapshot(s, n)
        bad += more
    path = os.path.join(run_dir, "diagnostics.h5")
    try:
        with h5py.File(path, "r") as f:
            series = {k: np.asarray(f[k], np.float64) for k in SERIES if k in f}
    except (OSError, KeyError, ValueError) as e:
        return bad + [f"{path}: unreadable ({e})"]
    bad += [f"{path}: no {k}" for k in SERIES if k not in series]
    for k, a in series.items():
        if _nonfinite(np, a):
            bad.append(f"{path}: {k} holds {_nonfinite(np, a)} non-finite values")
    if not series.get("time", np.zeros(0)).size:
        return bad + [f"{path}: no outputs"]
    de, q = series.get("de_rel"), series.get("virial")
    if de is not None and not np.all(de <= max_de):
        bad.append(f"energy error {np.nanmax(np.abs(de)) if np.any(np.isfinite(de)) else math.nan:.3g} "
                   f"exceeds {max_de:g} (de_rel)")
    if virial is not None and q is not None and not np.all(np.abs(q - virial) <= virial_tol):
        bad.append(f"virial ratio {np.nanmin(q):.3f}..{np.nanmax(q):.3f} outside {virial} +- {virial_tol}")
    return bad


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--max-de", type=float, default=1e-5)
    p.add_argument("--virial", type=float, default=None)
    p.add_argument("--virial-tol", type=float, default=0.1)
    a = p.parse_args(argv)
    for name, v in (("--max-de", a.max_de), ("--virial", a.virial), ("--virial-tol", a.virial_tol)):
        if v is not None and not (math.isfinite(v) and v >= 0):
            print(f"validate: error: {name} must be a finite non-negative number, got {v}", file=sys.stderr)
            return 2
    if not os.path.isdir(a.run_dir):
        print(f"validate: error: {a.run_dir!r} is not a directory", file=sys.stderr)
        return 2
    bad = check(a.run_dir, a.max_de, a.virial, a.virial_tol)
    for b in bad:
        print("FAIL:", b)
    print("Verification:", "FAIL" if bad else "PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

"""Checks an N-body run's outputs: every snapshot has the GADGET/SWIFT layout
and the run's bodies, and the energy error and virial ratio stay in bounds.

    python apps/nbody/validate.py RUN_DIR [--max-de 1e-5] [--virial 0.5 --virial-tol 0.1]
Prints "Verification: PASS" or the failures and exits 1.
"""
import argparse
import glob
import os
import sys

HEADER = ("NumPart_ThisFile", "NumPart_Total", "NumPart_Total_HighWord", "MassTable", "Time", "Redshift",
          "BoxSize", "NumFilesPerSnapshot")
DATASETS = ("Coordinates", "Velocities", "Masses", "ParticleIDs", "Potential")


def check(run_dir, max_de=1e-5, virial=None, virial_tol=0.1):
    import h5py
    import numpy as np
    bad = []
    snaps = sorted(glob.glob(os.path.join(run_dir, "snapshot_*.h5")))
    if not snaps:
        return [f"no snapshots in {run_dir}"]
    n = None
    for s in snaps:
        with h5py.File(s, "r") as f:
            for k in HEADER:
                if k not in f["Header"].attrs:
                    bad.append(f"{s}: Header lacks {k}")
            for k in DATASETS:
                if f"PartType1/{k}" not in f:
                    bad.append(f"{s}: no PartType1/{k}")
            total = int(f["Header"].attrs["NumPart_Total"][1])
            if n is None:
                n = total
            if total != n or len(f["PartType1/Masses"]) != n:
                bad.append(f"{s}: {len(f['PartType1/Masses'])} bodies, expected {n}")
            ids = np.asarray(f["PartType1/ParticleIDs"])
            if len(np.unique(ids)) != len(ids):
                bad.append(f"{s}: duplicate ParticleIDs")
    with h5py.File(os.path.join(run_dir, "diagnostics.h5"), "r") as f:
        de = np.asarray(f["de_rel"])
        q = np.asarray(f["virial"])
    if de.max() > max_de:
        bad.append(f"energy error {de.max():.3g} exceeds {max_de:g}")
    if virial is not None and np.abs(q - virial).max() > virial_tol:
        bad.append(f"virial ratio {q.min():.3f}..{q.max():.3f} outside {virial} +- {virial_tol}")
    return bad


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir")
    p.add_argument("--max-de", type=float, default=1e-5)
    p.add_argument("--virial", type=float, default=None)
    p.add_argument("--virial-tol", type=float, default=0.1)
    a = p.parse_args(argv)
    bad = check(a.run_dir, a.max_de, a.virial, a.virial_tol)
    for b in bad:
        print("FAIL:", b)
    print("Verification:", "FAIL" if bad else "PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

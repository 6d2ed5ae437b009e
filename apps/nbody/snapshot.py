"""Snapshots in the GADGET/SWIFT HDF5 layout, written collectively with baobab.io.

    /Header      NumPart_ThisFile, NumPart_Total, NumPart_Total_HighWord, MassTable,
                 Time, Redshift, BoxSize, Shift, NumFilesPerSnapshot, Dimension, Flag_* ...
    /Units       "Unit length in cgs (U_L)", ... (Hénon units: 1, with the system named)
    /Parameters  the run's parameters
    /PartType1   Coordinates (N, 3), Velocities (N, 3), Masses (N,), ParticleIDs (N,) uint64,
                 Potential (N,)

Every rank writes rows [lo, hi) of the particle arrays (the whole set is held by
every rank; each writes its share), so the file is one distributed write.

Coordinates: GADGET and SWIFT readers (yt among them) take the domain to be the
box [0, BoxSize)^3, while the run's bodies are centred on the origin. So the
stored Coordinates are the run's positions plus Header/Shift, the same vector
(s, s, s) on each axis as SWIFT records its own shift, with BoxSize = 2 s and s
the smallest power of two that puts every stored coordinate in [0, 2 s). The
run's positions are Coordinates - Shift (ics.from_snapshot does that), to
float64 resolution of the box (|error| <= BoxSize 2^-53; s being a power of
two, subtracting it is exact, and adding it to what was read gives the stored
coordinates again). Checkpoints, not snapshots, hold a run's exact state.
"""
import math

import numpy as np

UNITS = {
    "Unit length in cgs (U_L)": 1.0,
    "Unit mass in cgs (U_M)": 1.0,
    "Unit time in cgs (U_t)": 1.0,
    "Unit current in cgs (U_I)": 1.0,
    "Unit temperature in cgs (U_T)": 1.0,
    "System": "Henon N-body units: G = 1, total mass M = 1, total energy E = -1/4 (dimensionless)",
}


def share(n, size, rank):
    """[lo, hi) of rank's even share of n rows (the first n % size ranks get one more)."""
    base, extra = divmod(n, size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def rows_of(n, size):
    """Every rank's row count under share()."""
    return [hi - lo for lo, hi in (share(n, size, r) for r in range(size))]


def box_and_shift(x):
    """(BoxSize, s): s the smallest power of two (at least 2^-20) with every
    x + s in [0, 2 s) after rounding, BoxSize = 2 s. x must be finite."""
    reach = float(np.max(np.abs(x))) if len(x) else 0.0
    s = math.ldexp(1.0, max(-20, math.frexp(reach)[1]))  # a power of two above reach
    while len(x) and not (float(np.min(x + s)) >= 0.0 and float(np.max(x + s)) < 2.0 * s):
        s *= 2.0  # x + s rounded up to 2 s (x within half an ulp of s)
    return 2.0 * s, s


def header(n, time, box, shift=0.0):
    six = np.zeros(6, np.int64)
    six[1] = n
    return {
        "NumPart_ThisFile": six.astype(np.int32) if n < 2**31 else six,
        "NumPart_Total": (six & 0xFFFFFFFF).astype(np.uint32),
        "NumPart_Total_HighWord": (six >> 32).astype(np.uint32),
        "MassTable": np.zeros(6),
        "Time": float(time),
        "Redshift": 0.0,
        "BoxSize": float(box),
        "Shift": np.full(3, float(shift)),
        "NumFilesPerSnapshot": 1,
        "Dimension": 3,
        "Omega0": 0.0,
        "OmegaLambda": 0.0,
        "HubbleParam": 1.0,
        "Flag_Sfr": 0,
        "Flag_Cooling": 0,
        "Flag_StellarAge": 0,
        "Flag_Metals": 0,
        "Flag_Feedback": 0,
        "Flag_Entropy_ICs": 0,
        "Flag_DoublePrecision": 1,
        "Periodic": 0,
    }


def write_snapshot(path, x, v, m, ids, time, pot=None, *, comm=None, params=None, index=None):
    """Writes one snapshot of the (replicated) particle arrays; collective over comm.
    The coordinates are stored shifted into [0, BoxSize) (see the module's notes).
    Non-finite positions raise ValueError on every rank before the file is opened."""
    from baobab import io
    n = len(m)
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    lo, hi = share(n, size, rank)
    x = np.asarray(x, np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"snapshot {path}: {int(np.sum(~np.isfinite(x)))} coordinates are not finite")
    box, shift = box_and_shift(x)  # every rank holds every body: the same box on each
    with io.File(path, "w", comm, attrs={"snapshot_index": -1 if index is None else int(index)}) as f:
        f.set_attrs("Header", header(n, time, box, shift))
        f.write_units(UNITS)
        f.set_attrs("Parameters", dict(params or {}))
        f.write("PartType1/Coordinates", np.ascontiguousarray(x[lo:hi] + shift))
        f.write("PartType1/Velocities", np.ascontiguousarray(v[lo:hi]))
        f.write("PartType1/Masses", np.ascontiguousarray(m[lo:hi]))
        f.write("PartType1/ParticleIDs", np.ascontiguousarray(ids[lo:hi]).astype(np.uint64))
        if pot is not None:
            f.write("PartType1/Potential", np.ascontiguousarray(pot[lo:hi]))
    return path

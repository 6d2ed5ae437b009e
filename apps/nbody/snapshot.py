"""Snapshots in the GADGET/SWIFT HDF5 layout, written collectively with baobab.io.

    /Header      NumPart_ThisFile, NumPart_Total, NumPart_Total_HighWord, MassTable,
                 Time, Redshift, BoxSize, NumFilesPerSnapshot, Dimension, Flag_* ...
    /Units       "Unit length in cgs (U_L)", ... (Hénon units: 1, with the system named)
    /Parameters  the run's parameters
    /PartType1   Coordinates (N, 3), Velocities (N, 3), Masses (N,), ParticleIDs (N,) uint64,
                 Potential (N,)

Every rank writes rows [lo, hi) of the particle arrays (the whole set is held by
every rank; each writes its share), so the file is one distributed write.
"""
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


def header(n, time, box):
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
    """Writes one snapshot of the (replicated) particle arrays; collective over comm."""
    from baobab import io
    n = len(m)
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    lo, hi = share(n, size, rank)
    box = 2.0 * float(np.max(np.abs(x))) if n else 0.0  # not periodic: a box that holds every body
    with io.File(path, "w", comm, attrs={"snapshot_index": -1 if index is None else int(index)}) as f:
        f.set_attrs("Header", header(n, time, box))
        f.write_units(UNITS)
        f.set_attrs("Parameters", dict(params or {}))
        f.write("PartType1/Coordinates", np.ascontiguousarray(x[lo:hi]))
        f.write("PartType1/Velocities", np.ascontiguousarray(v[lo:hi]))
        f.write("PartType1/Masses", np.ascontiguousarray(m[lo:hi]))
        f.write("PartType1/ParticleIDs", np.ascontiguousarray(ids[lo:hi]).astype(np.uint64))
        if pot is not None:
            f.write("PartType1/Potential", np.ascontiguousarray(pot[lo:hi]))
    return path

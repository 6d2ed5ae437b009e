"""Diagnostics of an N-body state at an output time (all bodies synchronised).

energy (kinetic + potential, the potential summed afresh at the corrected
positions), virial ratio T/|W|, linear and angular momentum, the density
centre and core radius of Casertano & Hut (1985) from 6th-neighbour densities,
and Lagrangian radii (10, 50, 90 % of the mass) around the density centre.
The O(N^2) parts are split over the ranks.
"""
import math

import numpy as np

from kernels import forces as _kernel_forces
from snapshot import rows_of, share as _split

LAGRANGE = (0.1, 0.5, 0.9)
FIELDS = ("time", "energy", "kinetic", "potential", "de_rel", "virial", "momentum", "angular_momentum",
          "density_centre", "core_radius", "lagrangian_radii", "wall", "interactions_per_s", "steps", "body_steps")


def _gather(comm, mine, n_total):
    if comm is None or comm.size == 1:
        return mine
    rows = rows_of(n_total, comm.size)
    return comm.allgatherv(np.ascontiguousarray(mine), rows=rows)[0]


def potential(x, v, m, eps2, comm=None, threads=None):
    """Potential of every body at positions x (a fresh direct sum, split over ranks)."""
    n = len(m)
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    lo, hi = _split(n, size, rank)
    ids = np.arange(lo, hi, dtype=np.int64)
    _, _, pot = _kernel_forces(x[lo:hi], v[lo:hi], ids, x, v, m, 0, eps2, threads)
    return _gather(comm, pot, n)


def neighbour_density(x, m, comm=None, k=6, block=256):
    """Casertano & Hut density of each body: the mass of its k-1 nearest
    neighbours over the volume of the sphere through the k-th."""
    n = len(m)
    k = min(k, n - 1)
    rank, size = (0, 1) if comm is None else (comm.rank, comm.size)
    lo, hi = _split(n, size, rank)
    rho = np.empty(hi - lo)
    for i0 in range(lo, hi, block):
        i1 = min(hi, i0 + block)
        d = x[i0:i1, None, :] - x[None, :, :]
        r2 = np.einsum("ijk,ijk->ij", d, d)
        r2[np.arange(i1 - i0), np.arange(i0, i1)] = np.inf
        near = np.argpartition(r2, k - 1, axis=1)[:, :k]
        rr = np.take_along_axis(r2, near, axis=1)
        order = np.argsort(rr, axis=1)
        near = np.take_along_axis(near, order, axis=1)
        rk = np.sqrt(np.take_along_axis(rr, order, axis=1)[:, k - 1])
        mass = m[near[:, :k - 1]].sum(axis=1)
        rho[i0 - lo:i1 - lo] = mass / (4.0 / 3.0 * math.pi * rk ** 3)
    return _gather(comm, rho, n)


def measure(h, e0=None, comm=None, threads=None, core=True):
    """A dict of the FIELDS (wall and interaction rate are filled by the caller)."""
    x, v, m = h.x, h.v, h.m
    pot = potential(x, v, m, h.eps2, comm, threads)
    kin = 0.5 * float(np.sum(m * np.einsum("ij,ij->i", v, v)))
    w = 0.5 * float(np.sum(m * pot))
    e = kin + w
    p = np.sum(m[:, None] * v, axis=0)
    lmom = np.sum(m[:, None] * np.cross(x, v), axis=0)
    if core and len(m) > 7:
        rho = neighbour_density(x, m, comm)
        centre = np.sum(rho[:, None] * x, axis=0) / np.sum(rho)
        r = np.linalg.norm(x - centre, axis=1)
        rc = math.sqrt(float(np.sum(rho * rho * r * r) / np.sum(rho * rho)))
    else:
        centre = np.sum(m[:, None] * x, axis=0) / np.sum(m)
        r = np.linalg.norm(x - centre, axis=1)
        rc = float("nan")
    order = np.argsort(r, kind="stable")
    cm = np.cumsum(m[order]) / np.sum(m)
    lag = np.array([r[order][min(len(m) - 1, int(np.searchsorted(cm, f)))] for f in LAGRANGE])
    return dict(time=h.time, energy=e, kinetic=kin, potential=w,
                de_rel=0.0 if e0 is None else abs((e - e0) / e0),
                virial=kin / abs(w) if w else float("nan"), momentum=p, angular_momentum=lmom,
                density_centre=centre, core_radius=rc, lagrangian_radii=lag,
                wall=0.0, interactions_per_s=0.0, steps=h.steps, body_steps=h.body_steps, _potential=pot)


def as_arrays(history):
    """A list of measure() dicts as a dict of stacked arrays (for HDF5)."""
    out = {}
    for k in FIELDS:
        out[k] = np.array([np.asarray(d[k], np.float64) if k not in ("steps", "body_steps") else d[k]
                           for d in history])
    return out


def from_arrays(arrays):
    n = len(arrays["time"])
    return [{k: (arrays[k][i] if np.ndim(arrays[k][i]) else arrays[k][i].item()) for k in FIELDS}
            for i in range(n)]


def progress_line(d):
    lag = d["lagrangian_radii"]
    return (f"t={d['time']:.4f} E={d['energy']:.9f} dE/E={d['de_rel']:.2e} Q={d['virial']:.4f} "
            f"r10/50/90={lag[0]:.3f}/{lag[1]:.3f}/{lag[2]:.3f} rc={d['core_radius']:.3f} "
            f"steps={d['steps']} {d['interactions_per_s']:.3g} int/s wall={d['wall']:.1f}s")

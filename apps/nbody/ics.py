"""Initial conditions for the N-body app, in Hénon units (G = M = 1, E = -1/4).

    plummer(n, seed)          Aarseth, Hénon & Wielen (1974) sampling of a Plummer sphere
    kepler(e, q)              a two-body orbit (semi-major axis 1, total mass 1)
    from_snapshot(path)       positions, velocities, masses and ids from an HDF5 snapshot

Every function returns a dict with x (n, 3), v (n, 3), m (n,), ids (n,) int64,
time, and the parameters that made it (for the output files' provenance).
Run as a script it writes a snapshot: python apps/nbody/ics.py plummer --n 1024 -o ic.h5
"""
import math

import numpy as np

# Plummer model with scale radius a = 1 (G = M = 1) has E = -3 pi / 64. In
# Hénon units (E = -1/4) lengths scale by 16 / (3 pi) and velocities by its
# inverse square root.
_PLUMMER_LENGTH = 16.0 / (3.0 * math.pi)


def _isotropic(rng, n):
    """n unit vectors, uniform on the sphere."""
    z = 1.0 - 2.0 * rng.random(n)
    phi = 2.0 * math.pi * rng.random(n)
    s = np.sqrt(1.0 - z * z)
    return np.stack([s * np.cos(phi), s * np.sin(phi), z], axis=1)


def sample_masses(rng, n, imf=None, mmin=0.1, mmax=100.0, alpha=2.35):
    """Equal masses (imf None) or a power law dN/dm ~ m^-alpha on [mmin, mmax]
    (Salpeter: alpha = 2.35), normalised to a total mass of 1."""
    if imf in (None, "equal"):
        m = np.full(n, 1.0 / n)
    elif imf == "salpeter" or imf == "powerlaw":
        if not 0 < mmin < mmax:
            raise ValueError(f"mass range needs 0 < mmin < mmax, got {mmin}, {mmax}")
        u = rng.random(n)
        if abs(alpha - 1.0) < 1e-12:
            m = mmin * (mmax / mmin) ** u
        else:
            k = 1.0 - alpha
            m = (mmin ** k + u * (mmax ** k - mmin ** k)) ** (1.0 / k)
        m = m / m.sum()
    else:
        raise ValueError(f"unknown mass function {imf!r} (equal, salpeter, powerlaw)")
    return m


def energies(x, v, m, eps=0.0):
    """(kinetic, potential) energy by direct summation (O(n^2), blocked)."""
    kin = 0.5 * float(np.sum(m * np.einsum("ij,ij->i", v, v)))
    pot = 0.0
    n = len(m)
    for i0 in range(0, n, 512):
        d = x[i0:i0 + 512, None, :] - x[None, :, :]
        r = np.sqrt(np.einsum("ijk,ijk->ij", d, d) + eps * eps)
        idx = np.arange(i0, min(n, i0 + 512))
        r[idx - i0, idx] = np.inf
        pot -= 0.5 * float(np.sum(m[i0:i0 + 512, None] * m[None, :] / r))
    return kin, pot


def plummer(n, seed=1, imf=None, mmin=0.1, mmax=100.0, alpha=2.35, cutoff=0.999, scale=True, eps=0.0):
    """A Plummer sphere of n bodies: radii from the cumulative mass (mass
    fractions above `cutoff` redrawn), speeds by von Neumann rejection from
    q^2 (1 - q^2)^(7/2) (Aarseth, Hénon & Wielen 1974), centre of mass at rest at
    the origin. scale=True rescales positions and velocities so that the
    sample has exactly E = -1/4 and virial ratio T/|W| = 1/2."""
    if n < 2:
        raise ValueError(f"a Plummer sphere needs at least 2 bodies, got n={n}")
    rng = np.random.default_rng(seed)
    m = sample_masses(rng, n, imf, mmin, mmax, alpha)
    frac = rng.random(n)
    while True:
        bad = frac > cutoff
        if not bad.any():
            break
        frac[bad] = rng.random(int(bad.sum()))
    r = 1.0 / np.sqrt(frac ** (-2.0 / 3.0) - 1.0)
    x = r[:, None] * _isotropic(rng, n)
    q = np.empty(n)
    todo = np.arange(n)
    while todo.size:
        a, b = rng.random(todo.size), rng.random(todo.size)
        ok = 0.1 * b < a * a * (1.0 - a * a) ** 3.5
        q[todo[ok]] = a[ok]
        todo = todo[~ok]
    vesc = math.sqrt(2.0) * (1.0 + r * r) ** -0.25
    v = (q * vesc)[:, None] * _isotropic(rng, n)
    x *= 1.0 / _PLUMMER_LENGTH
    v *= math.sqrt(_PLUMMER_LENGTH)
    x -= np.sum(m[:, None] * x, axis=0)
    v -= np.sum(m[:, None] * v, axis=0)
    if scale:  # W = -1/2 and T = 1/4: E = -1/4, T/|W| = 1/2 (twice: softening does not scale)
        for _ in range(2):
            kin, pot = energies(x, v, m, eps)
            x *= pot / -0.5
        kin, pot = energies(x, v, m, eps)
        v *= math.sqrt(0.25 / kin)
    return dict(x=x, v=v, m=m, ids=np.arange(n, dtype=np.int64), time=0.0,
                params=dict(ic="plummer", n=n, seed=seed, imf=imf or "equal", mmin=mmin, mmax=mmax, alpha=alpha,
                            cutoff=cutoff, scale=scale))


def kepler(e=0.5, q=1.0, a=1.0):
    """Two bodies of total mass 1 and mass ratio q = m2/m1 on an orbit of
    semi-major axis a and eccentricity e, starting at apocentre; period
    2 pi a^(3/2)."""
    if not 0.0 <= e < 1.0:
        raise ValueError(f"eccentricity must be in [0, 1), got {e}")
    if q <= 0:
        raise ValueError(f"mass ratio must be positive, got {q}")
    m = np.array([1.0 / (1.0 + q), q / (1.0 + q)])
    rel_x = np.array([a * (1.0 + e), 0.0, 0.0])
    rel_v = np.array([0.0, math.sqrt((1.0 - e) / (a * (1.0 + e))), 0.0])
    x = np.stack([-m[1] * rel_x, m[0] * rel_x])
    v = np.stack([-m[1] * rel_v, m[0] * rel_v])
    return dict(x=x, v=v, m=m, ids=np.arange(2, dtype=np.int64), time=0.0,
                params=dict(ic="kepler", e=e, q=q, a=a, period=2.0 * math.pi * a ** 1.5))


def from_snapshot(path):
    """Bodies of an HDF5 snapshot in the GADGET/SWIFT layout (PartType1)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            g = f["PartType1"]
            x = np.asarray(g["Coordinates"], np.float64)
            v = np.asarray(g["Velocities"], np.float64)
            m = np.asarray(g["Masses"], np.float64)
            ids = np.asarray(g["ParticleIDs"], np.int64)
            time = float(f["Header"].attrs.get("Time", 0.0))
    except (OSError, KeyError) as e:
        raise ValueError(f"cannot read initial conditions from {path}: {e}") from None
    order = np.argsort(ids, kind="stable")
    return dict(x=x[order], v=v[order], m=m[order], ids=ids[order], time=time,
                params=dict(ic="snapshot", source=str(path), n=len(m)))


def main(argv=None):
    import argparse
    p = argparse.ArgumentParser(description="write N-body initial conditions as an HDF5 snapshot")
    p.add_argument("kind", choices=["plummer", "kepler"])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--imf", default=None)
    p.add_argument("--e", type=float, default=0.5)
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    ic = plummer(a.n, a.seed, a.imf) if a.kind == "plummer" else kepler(a.e)
    from snapshot import write_snapshot
    write_snapshot(a.output, ic["x"], ic["v"], ic["m"], ic["ids"], ic["time"], None, comm=None,
                   params=ic["params"])


if __name__ == "__main__":
    main()

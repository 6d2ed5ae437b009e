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


class ParameterError(ValueError):
    """A bad parameter of the initial conditions; .param names it (n, eps, imf, e, ...)."""

    def __init__(self, param, message):
        super().__init__(message)
        self.param = param


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
            raise ParameterError("mmin", f"mass range needs 0 < mmin < mmax, got {mmin}, {mmax}")
        if not math.isfinite(alpha):
            raise ParameterError("alpha", f"power-law exponent alpha must be finite, got {alpha}")
        u = rng.random(n)
        lo, hi = np.float64(mmin), np.float64(mmax)  # numpy powers overflow to inf (checked below)
        with np.errstate(all="ignore"):
            if abs(alpha - 1.0) < 1e-12:
                m = lo * (hi / lo) ** u
            else:
                k = 1.0 - alpha
                m = (lo ** k + u * (hi ** k - lo ** k)) ** (1.0 / k)
            m = m / m.sum()
        if not (np.all(np.isfinite(m)) and np.all(m > 0)):
            raise ParameterError("imf", f"the power law with alpha={alpha} on [{mmin}, {mmax}] overflows double "
                                        f"precision (masses that are not finite and positive): narrow the range or "
                                        f"change alpha")
    else:
        raise ParameterError("imf", f"unknown mass function {imf!r} (equal, salpeter, powerlaw)")
    return m


def _rows_per_block(n):
    """Rows of the (rows, n, 3) pair blocks below: about 4 M pairs (100 MB of temporaries) each."""
    return max(1, min(512, (1 << 22) // max(1, n)))


def energies(x, v, m, eps=0.0):
    """(kinetic, potential) energy by direct summation (O(n^2), blocked)."""
    kin = 0.5 * float(np.sum(m * np.einsum("ij,ij->i", v, v)))
    pot = 0.0
    n = len(m)
    b = _rows_per_block(n)
    for i0 in range(0, n, b):
        d = x[i0:i0 + b, None, :] - x[None, :, :]
        r = np.sqrt(np.einsum("ijk,ijk->ij", d, d) + eps * eps)
        idx = np.arange(i0, min(n, i0 + b))
        r[idx - i0, idx] = np.inf
        pot -= 0.5 * float(np.sum(m[i0:i0 + b, None] * m[None, :] / r))
    return kin, pot


def _scaled_potential(x, m, eps, lam):
    """W(lam), the softened potential energy of the positions lam * x, and dW/dlam
    (one O(n^2) pass): W = -sum_{i<j} m_i m_j / sqrt(lam^2 r_ij^2 + eps^2)."""
    n = len(m)
    b = _rows_per_block(n)
    w = dw = 0.0
    for i0 in range(0, n, b):
        d = x[i0:i0 + b, None, :] - x[None, :, :]
        r2 = np.einsum("ijk,ijk->ij", d, d)
        s2 = lam * lam * r2 + eps * eps
        idx = np.arange(i0, min(n, i0 + b))
        s2[idx - i0, idx] = np.inf
        inv = 1.0 / np.sqrt(s2)
        mi = m[i0:i0 + b]
        w -= 0.5 * float(mi @ (inv @ m))
        inv *= inv * inv
        inv *= r2
        dw += 0.5 * lam * float(mi @ (inv @ m))
    return w, dw


def _scale_to_potential(x, m, eps, target=-0.5):
    """The factor lam > 0 for which the positions lam * x have the softened
    potential energy `target`. Without softening W scales as 1/lam (one pass);
    with it, Newton's method on W(lam) (increasing in lam, from -sum m_i m_j / eps
    at lam = 0 to 0), started at the unsoftened answer, to round-off."""
    pairs = 0.5 * (float(np.sum(m)) ** 2 - float(np.sum(m * m)))  # sum_{i<j} m_i m_j
    if eps > 0 and not pairs / eps > -target:
        raise ParameterError("eps", f"softening eps={eps} is too large: the potential energy cannot reach {target} "
                         f"(it is at least -sum m_i m_j / eps = {-pairs / eps:.6g}); eps must be below "
                         f"{pairs / -target:.6g} for these masses")
    w, _ = _scaled_potential(x, m, 0.0, 1.0)
    lam = w / target
    if eps == 0:
        return lam
    lo, hi = 0.0, math.inf  # a bracket of the root, kept for a Newton step that leaves it
    for _ in range(100):
        w, dw = _scaled_potential(x, m, eps, lam)
        if w < target:
            lo = lam
        else:
            hi = lam
        new = lam - (w - target) / dw if dw > 0 else math.nan
        if abs(new - lam) <= 1e-9 * lam:  # quadratic convergence: the next step would be below round-off
            return new
        if not lo < new < hi:  # (also nan) bisect, or widen an open bracket
            new = 0.5 * (lo + hi) if math.isfinite(hi) else 2.0 * lam
        lam = new
    raise ParameterError("eps", f"cannot scale the Plummer sphere to W = {target} with eps={eps} (no convergence)")


def plummer(n, seed=1, imf=None, mmin=0.1, mmax=100.0, alpha=2.35, cutoff=0.999, scale=True, eps=0.0):
    """A Plummer sphere of n bodies: radii from the cumulative mass (mass
    fractions above `cutoff` redrawn), speeds by von Neumann rejection from
    q^2 (1 - q^2)^(7/2) (Aarseth, Hénon & Wielen 1974), centre of mass at rest at
    the origin. scale=True rescales positions and velocities so that the
    sample has E = -1/4 and virial ratio T/|W| = 1/2 to round-off, W being the
    potential energy softened with eps (the one the run integrates)."""
    if n < 2:
        raise ParameterError("n", f"a Plummer sphere needs at least 2 bodies, got n={n}")
    if not (math.isfinite(eps) and eps >= 0):
        raise ParameterError("eps", f"softening eps must be finite and non-negative, got {eps}")
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
    if scale:  # W = -1/2 (softened) and T = 1/4: E = -1/4, T/|W| = 1/2
        x *= _scale_to_potential(x, m, eps, -0.5)
        kin = 0.5 * float(np.sum(m * np.einsum("ij,ij->i", v, v)))
        v *= math.sqrt(0.25 / kin)
    return dict(x=x, v=v, m=m, ids=np.arange(n, dtype=np.int64), time=0.0,
                params=dict(ic="plummer", n=n, seed=seed, imf=imf or "equal", mmin=mmin, mmax=mmax, alpha=alpha,
                            cutoff=cutoff, scale=scale))


def kepler(e=0.5, q=1.0, a=1.0):
    """Two bodies of total mass 1 and mass ratio q = m2/m1 on an orbit of
    semi-major axis a and eccentricity e, starting at apocentre; period
    2 pi a^(3/2)."""
    if not 0.0 <= e < 1.0:  # (nan too)
        raise ParameterError("e", f"eccentricity must be in [0, 1), got {e}")
    if not (math.isfinite(q) and q > 0):
        raise ParameterError("q", f"mass ratio must be finite and positive, got {q}")
    m = np.array([1.0 / (1.0 + q), q / (1.0 + q)])
    rel_x = np.array([a * (1.0 + e), 0.0, 0.0])
    rel_v = np.array([0.0, math.sqrt((1.0 - e) / (a * (1.0 + e))), 0.0])
    x = np.stack([-m[1] * rel_x, m[0] * rel_x])
    v = np.stack([-m[1] * rel_v, m[0] * rel_v])
    return dict(x=x, v=v, m=m, ids=np.arange(2, dtype=np.int64), time=0.0,
                params=dict(ic="kepler", e=e, q=q, a=a, period=2.0 * math.pi * a ** 1.5))


def from_snapshot(path):
    """Bodies of an HDF5 snapshot in the GADGET/SWIFT layout (PartType1), checked:
    at least 2 bodies, matching shapes, finite positions, velocities and time,
    positive finite masses (the Masses dataset, or MassTable[1] when every body
    has that mass), unique ParticleIDs. Coordinates are stored shifted into the
    box [0, BoxSize): Header/Shift (the vector that was added, as SWIFT writes it)
    is subtracted again. Raises ValueError naming the file and what is wrong."""
    import h5py
    path = str(path)

    def bad(why):
        return ValueError(f"cannot read initial conditions from {path}: {why}")

    try:
        with h5py.File(path, "r") as f:
            if "PartType1" not in f:
                raise bad("no PartType1 group (a GADGET/SWIFT snapshot of N-body particles)")
            g = f["PartType1"]
            hd = f["Header"].attrs if "Header" in f else {}
            for k in ("Coordinates", "Velocities", "ParticleIDs"):
                if k not in g:
                    raise bad(f"no PartType1/{k}")
            x = np.asarray(g["Coordinates"], np.float64)
            v = np.asarray(g["Velocities"], np.float64)
            raw_ids = np.asarray(g["ParticleIDs"])
            n = len(raw_ids)
            if "Masses" in g:
                m = np.asarray(g["Masses"], np.float64)
            elif "MassTable" in hd and len(hd["MassTable"]) > 1 and float(hd["MassTable"][1]) > 0:
                m = np.full(n, float(hd["MassTable"][1]))
            else:
                raise bad("no PartType1/Masses and no MassTable[1]")
            time = float(np.asarray(hd.get("Time", 0.0)).reshape(-1)[0])
            shift = np.asarray(hd.get("Shift", np.zeros(3)), np.float64).reshape(-1)
    except ValueError as e:
        if str(e).startswith("cannot read initial conditions"):
            raise
        raise bad(e) from None
    except (OSError, KeyError, TypeError, IndexError) as e:
        raise bad(e) from None
    if n < 2:
        raise bad(f"{n} bodies; at least 2 are needed")
    if x.shape != (n, 3) or v.shape != (n, 3) or m.shape != (n,) or raw_ids.ndim != 1:
        raise bad(f"shapes disagree: Coordinates {x.shape}, Velocities {v.shape}, Masses {m.shape}, "
                  f"ParticleIDs {raw_ids.shape} (expected ({n}, 3), ({n}, 3), ({n},), ({n},))")
    for name, a in (("Coordinates", x), ("Velocities", v), ("Masses", m)):
        if not np.all(np.isfinite(a)):
            raise bad(f"PartType1/{name} holds non-finite values ({int(np.sum(~np.isfinite(a)))} of {a.size})")
    if not np.all(m > 0):
        raise bad(f"PartType1/Masses holds {int(np.sum(m <= 0))} masses that are not positive")
    if not math.isfinite(time):
        raise bad(f"Header/Time is {time}")
    if shift.shape != (3,) or not np.all(np.isfinite(shift)):
        raise bad(f"Header/Shift must be 3 finite numbers, got {shift}")
    if raw_ids.dtype.kind not in "iu" or (raw_ids.size and (raw_ids.min() < 0 or raw_ids.max() > 2**63 - 1)):
        raise bad("PartType1/ParticleIDs must be integers in [0, 2^63)")
    ids = raw_ids.astype(np.int64)
    if len(np.unique(ids)) != n:
        raise bad(f"PartType1/ParticleIDs holds {n - len(np.unique(ids))} duplicates")
    if np.any(shift):
        x = x - shift
    order = np.argsort(ids, kind="stable")
    return dict(x=x[order], v=v[order], m=m[order], ids=ids[order], time=time,
                params=dict(ic="snapshot", source=str(path), n=n))


def main(argv=None):
    import argparse
    import sys
    p = argparse.ArgumentParser(description="write N-body initial conditions as an HDF5 snapshot")
    p.add_argument("kind", choices=["plummer", "kepler"])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--imf", default=None)
    p.add_argument("--e", type=float, default=0.5)
    p.add_argument("--eps", type=float, default=0.0, help="softening the Plummer sphere is scaled with")
    p.add_argument("-o", "--output", required=True)
    a = p.parse_args(argv)
    from baobab import Error
    try:
        if a.seed < 0:
            raise ValueError(f"--seed must be non-negative, got {a.seed}")
        ic = plummer(a.n, a.seed, a.imf, eps=a.eps) if a.kind == "plummer" else kepler(a.e)
        from snapshot import write_snapshot
        write_snapshot(a.output, ic["x"], ic["v"], ic["m"], ic["ids"], ic["time"], None, comm=None,
                       params=ic["params"])
    except (ValueError, OSError, Error) as e:
        print(f"ics: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""(placeholder until the core kernel lands) numpy Hermite forces."""
import numpy as np


def forces_numpy(xi, vi, idi, x, v, m, first_id=0, eps2=0.0, threads=None):
    ni = len(xi)
    acc, jerk, pot = np.zeros((ni, 3)), np.zeros((ni, 3)), np.zeros(ni)
    jid = first_id + np.arange(len(m))
    for i0 in range(0, ni, 256):
        sl = slice(i0, i0 + 256)
        r = x[None, :, :] - xi[sl, None, :]
        u = v[None, :, :] - vi[sl, None, :]
        r2 = np.einsum("ijk,ijk->ij", r, r) + eps2
        self_ = jid[None, :] == idi[sl, None]
        r2 = np.where(self_, 1.0, r2)
        rinv = 1.0 / np.sqrt(r2)
        mr = np.where(self_, 0.0, m[None, :] * rinv)
        mr3 = mr * rinv * rinv
        ru = np.einsum("ijk,ijk->ij", r, u) * rinv * rinv
        acc[sl] = np.einsum("ij,ijk->ik", mr3, r)
        jerk[sl] = np.einsum("ij,ijk->ik", mr3, u) - 3.0 * np.einsum("ij,ijk->ik", mr3 * ru, r)
        pot[sl] = -mr.sum(axis=1)
    return acc, jerk, pot


forces = forces_numpy

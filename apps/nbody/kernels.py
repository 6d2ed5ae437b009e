"""Direct-summation N-body forces: acceleration, jerk and potential.

forces() runs the app's compiled kernel (apps/nbody/src, the extension module
baobab_apps._nbody that baobab's build installs; native() returns it): numpy
arrays on the host (forces, SIMD and threads), cupy arrays on the device
(forces_device). forces_numpy() is a plain numpy implementation of the same
formulas, the reference and the benchmark baseline.

Sources (j): positions x (n, 3), velocities v (n, 3), masses m (n,); source j
has the global id first_id + j. Targets (i): xi (ni, 3), vi (ni, 3), ids idi
(ni,). For each target, over the sources whose id differs from its own, with
r = x_j - x_i, u = v_j - v_i, r2 = |r|^2 + eps2:
    acc  = sum m_j r / r2^{3/2}
    jerk = sum m_j (u / r2^{3/2} - 3 (r.u) r / r2^{5/2})
    pot  = sum -m_j / sqrt(r2)
This module imports nothing heavy at import time (the extension module, baobab
and cupy are loaded on first use).
"""
import numpy as np

__all__ = ["forces", "forces_numpy", "forces_isa", "native", "check_environment"]

_native = None


def native():
    """The app's extension module, baobab_apps._nbody (the compiled kernels)."""
    global _native
    if _native is None:
        try:
            from baobab_apps import _nbody
        except ImportError as e:
            raise ImportError("the N-body kernels (baobab_apps._nbody) are not installed: build baobab from this "
                              "repository (make build, or pip install .) in the environment that runs the app") from e
        _native = _nbody
    return _native


def check_environment():
    """Checks BAOBAB_NBODY_ISA and BAOBAB_NBODY_SPLIT (baobab.InvalidArgument naming the first bad one)."""
    native().check_environment()


def _is_cupy(a):
    return type(a).__module__.split(".")[0] == "cupy"


def forces_isa():
    """The instruction-set tier of the host kernel: 'avx512', 'avx2' or 'baseline'."""
    return native().forces_isa()


def forces(xi, vi, idi, x, v, m, first_id=0, eps2=0.0, threads=None, split=None):
    """(acc, jerk, pot) of the targets (xi, vi, idi) due to the sources (x, v, m).

    numpy inputs run on the host (threads: None or 0 = all cores), cupy inputs
    on the current device and stream (returns without synchronising; split:
    "auto", "on" (the j-split kernel), "off" (one thread per target) or None,
    BAOBAB_NBODY_SPLIT). Inputs are made C-contiguous float64 (ids int64) if
    they are not; shapes are checked by the kernel (baobab.InvalidArgument)."""
    arrays = (xi, vi, idi, x, v, m)
    if any(_is_cupy(a) for a in arrays):
        return _forces_device(*arrays, first_id=first_id, eps2=eps2, split=split)
    f8 = [np.ascontiguousarray(a, dtype=np.float64) for a in (xi, vi, x, v, m)]
    xi, vi, x, v, m = f8
    idi = np.ascontiguousarray(idi, dtype=np.int64)
    ni = xi.shape[0] if xi.ndim else 0
    acc = np.empty((ni, 3))
    jerk = np.empty((ni, 3))
    pot = np.empty(ni)
    native().forces(xi, vi, idi, x, v, m, int(first_id), float(eps2), acc, jerk, pot, threads=int(threads or 0))
    return acc, jerk, pot


def _forces_device(xi, vi, idi, x, v, m, first_id, eps2, split=None):
    import cupy
    from baobab import InvalidArgument
    if not all(_is_cupy(a) for a in (xi, vi, idi, x, v, m)):
        raise InvalidArgument("nbody forces: mix of cupy and host arrays; pass all six on the device")
    xi, vi, x, v, m = (cupy.ascontiguousarray(a, dtype=cupy.float64) for a in (xi, vi, x, v, m))
    idi = cupy.ascontiguousarray(idi, dtype=cupy.int64)
    ni, n = (xi.shape[0] if xi.ndim else 0), (x.shape[0] if x.ndim else 0)
    for a, name, rows, shape in ((xi, "xi", ni, (ni, 3)), (vi, "vi", ni, (ni, 3)), (idi, "idi", ni, (ni,)),
                                 (x, "x", n, (n, 3)), (v, "v", n, (n, 3)), (m, "m", n, (n,))):
        if a.shape != shape:
            raise InvalidArgument(f"nbody forces: {name} has shape {a.shape}, expected {shape}")
    acc = cupy.empty((ni, 3), dtype=cupy.float64)
    jerk = cupy.empty((ni, 3), dtype=cupy.float64)
    pot = cupy.empty(ni, dtype=cupy.float64)
    if ni:
        ext = native()
        need = ext.device_plan(ni, n, split)["work_bytes"]
        work = cupy.empty(max(need, 1), dtype=cupy.uint8)  # scratch of the j-split, from cupy's pool
        ext.forces_device(xi.data.ptr, vi.data.ptr, idi.data.ptr, ni, x.data.ptr, v.data.ptr, m.data.ptr, n,
                          int(first_id), float(eps2), acc.data.ptr, jerk.data.ptr, pot.data.ptr,
                          cupy.cuda.get_current_stream().ptr, split, work.data.ptr, work.nbytes)
    return acc, jerk, pot


def forces_numpy(xi, vi, idi, x, v, m, first_id=0, eps2=0.0, block=None):
    """The same kernel in vectorised numpy, blocked over targets (block targets x
    n sources per step; default about 2^18 pairs per step, at most 256 targets)."""
    xi, vi, x, v, m = (np.asarray(a, dtype=np.float64) for a in (xi, vi, x, v, m))
    idi = np.asarray(idi, dtype=np.int64)
    ni, n = xi.shape[0], x.shape[0]
    acc = np.zeros((ni, 3))
    jerk = np.zeros((ni, 3))
    pot = np.zeros(ni)
    if n == 0 or ni == 0:
        return acc, jerk, pot
    if block is None:
        block = max(1, min(256, (1 << 18) // n))
    sx, sy, sz = (np.ascontiguousarray(x[:, c]) for c in range(3))
    su, sv, sw = (np.ascontiguousarray(v[:, c]) for c in range(3))
    ids = first_id + np.arange(n, dtype=np.int64)
    for i0 in range(0, ni, block):
        i1 = min(ni, i0 + block)
        t, q = xi[i0:i1], vi[i0:i1]
        dx = sx - t[:, 0:1]
        dy = sy - t[:, 1:2]
        dz = sz - t[:, 2:3]
        du = su - q[:, 0:1]
        dv = sv - q[:, 1:2]
        dw = sw - q[:, 2:3]
        r2 = dx * dx + dy * dy + dz * dz + eps2
        self_pair = ids == idi[i0:i1, None]
        r2[self_pair] = 1.0
        mm = np.broadcast_to(m, r2.shape).copy()
        mm[self_pair] = 0.0
        ri = 1.0 / np.sqrt(r2)
        ri2 = ri * ri
        mr = mm * ri
        mr3 = mr * ri2
        al = 3.0 * (dx * du + dy * dv + dz * dw) * ri2
        pot[i0:i1] = -mr.sum(axis=1)
        for c, (d, e) in enumerate(((dx, du), (dy, dv), (dz, dw))):
            acc[i0:i1, c] = np.einsum("ij,ij->i", mr3, d)
            jerk[i0:i1, c] = np.einsum("ij,ij->i", mr3, e - al * d)
    return acc, jerk, pot

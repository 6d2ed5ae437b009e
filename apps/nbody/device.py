"""Forces on a GPU for the Hermite integrator (hermite.py with device=, nbody.py
--device), in the NBODY6++GPU style: the integrator's O(N) work (predictor,
corrector, active set) stays on the host (src/hermite.cpp); the direct force
sum, O(N) per active body, runs on the device.

Device memory, allocated once (the target, result and scratch buffers grow
when a larger set arrives):
  m        every body's mass (uploaded at the start and after a restore)
  x, v     predicted positions and velocities of the j-particles, rows at their
           body index; each block step uploads the rows it predicted
  block    a ring block [x | v | m] of another rank (parallel="ring")
  targets  [xi | vi | ids] of the bodies whose forces are summed
  out      [acc | jerk | pot] of those targets
  work     the j-split kernel's partial sums (src/forces.cu)
Copies and kernels run in order on one stream; host staging buffers are
pinned (page-locked), so the copies are DMA transfers. MPI collectives stay on
host arrays (the MPI library need not be CUDA-aware).

cupy is imported once, when a DeviceForces is made (probe() says why it
cannot be).
"""
import numpy as np

from baobab import _core
from kernels import native

H2D, D2H = 1, 2  # cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost
F8 = 8           # bytes per float64 / int64


class DeviceUnavailable(Exception):
    """No GPU for the forces; the message says why (no CUDA device, no cupy)."""


def probe():
    """(cupy, number of devices) when the forces can run on a GPU, else
    DeviceUnavailable naming what is missing."""
    if not _core.cuda_available():
        raise DeviceUnavailable(f"no usable CUDA device (baobab: {_core.cuda_status()})")
    try:
        import cupy
    except ImportError as e:
        raise DeviceUnavailable(f"cupy is missing ({e}); install the cupy wheel for your CUDA, "
                                "e.g. pip install cupy-cuda12x") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - cupy's runtime errors: no driver, no device
        raise DeviceUnavailable(f"no usable CUDA device (cupy: {e})") from None
    if count < 1:
        raise DeviceUnavailable("no usable CUDA device (cupy sees none)")
    return cupy, count


class DeviceForces:
    """The j-particles of n bodies on one GPU and the force sums over them.

    sources(xp, vp, lo, hi) or block(buf, nb, first) choose the sources the next
    sums read; targets(xp, vp, idx) stages the targets; sum() runs the kernel and
    returns (acc, jerk, pot) of the targets as host arrays, views of a pinned
    buffer that the next sum() overwrites."""

    def __init__(self, m, eps2, device=None, split=None):
        cupy, count = probe()
        self.cp = cupy
        self._rt = cupy.cuda.runtime
        if device is not None:
            cupy.cuda.Device(int(device) % count).use()
        self.device = cupy.cuda.Device()
        props = self._rt.getDeviceProperties(self.device.id)
        name = props["name"]
        self.name = name.decode() if isinstance(name, bytes) else str(name)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.n = len(m)
        self.eps2 = float(eps2)
        self.split = split
        self._bufs = {}  # name: cupy array (pointers below stay valid while it is held here)
        self._m = self._device("m", self.n)
        self._x = self._device("x", 3 * self.n)
        self._v = self._device("v", 3 * self.n)
        self._blk, self._blk_cap = 0, 0
        self._tgt, self._out, self._cap = 0, 0, 0
        self._h_tgt = self._h_out = None
        self._work, self._work_bytes = 0, 0
        self._k = 0
        self._src = (self._x, self._v, self._m, 0, 0)  # x, v, m pointers, count, id of the first
        self.set_masses(m)

    # ---- memory ---------------------------------------------------------------------

    def _device(self, name, words):
        """A device buffer of `words` float64 under `name` (replacing the one before:
        callers synchronise the stream first); its address."""
        self._bufs[name] = a = self.cp.empty(max(int(words), 1), dtype=self.cp.float64)
        return a.data.ptr

    def pinned(self, shape, dtype=np.float64):
        """A host array in page-locked memory (copies from it are DMA transfers)."""
        mem = self.cp.cuda.alloc_pinned_memory(max(int(np.prod(shape)), 1) * np.dtype(dtype).itemsize)
        return np.ndarray(shape, dtype, buffer=mem)  # as cupyx.empty_pinned; the array holds mem alive

    def _copy(self, dst, src, nbytes, kind):
        if nbytes:
            self._rt.memcpyAsync(dst, src, nbytes, kind, self.stream.ptr)

    def _grow_targets(self, k):
        if k <= self._cap:
            return
        cap = max(k, 2 * self._cap, 64)
        self.stream.synchronize()  # the old buffers may still be in use
        self._tgt, self._out = self._device("targets", 7 * cap), self._device("out", 7 * cap)
        self._h_tgt, self._h_out = self.pinned(7 * cap), self.pinned(7 * cap)
        self._cap = cap

    # ---- sources ------------------------------------------------------------------------

    def set_masses(self, m):
        m = np.ascontiguousarray(m, dtype=np.float64)
        assert m.shape == (self.n,)
        self._copy(self._m, m.ctypes.data, m.nbytes, H2D)
        self.stream.synchronize()  # m may be pageable and short-lived

    def sources(self, xp, vp, lo, hi):
        """Upload the predicted rows lo..hi of xp, vp ((n, 3) host arrays, C order)
        as the j-particles of the next sums (bodies lo..hi-1, their masses)."""
        assert xp.flags.c_contiguous and vp.flags.c_contiguous and xp.shape == vp.shape == (self.n, 3)
        off = 3 * F8 * lo
        nbytes = 3 * F8 * (hi - lo)
        self._copy(self._x + off, xp.ctypes.data + off, nbytes, H2D)
        self._copy(self._v + off, vp.ctypes.data + off, nbytes, H2D)
        self._src = (self._x + off, self._v + off, self._m + F8 * lo, hi - lo, lo)

    def block(self, buf, nb, first):
        """Upload a ring block buf = [x (nb, 3) | v (nb, 3) | m (nb)] (flat float64)
        of bodies first..first+nb-1 as the j-particles of the next sums."""
        if 7 * nb > self._blk_cap:
            self.stream.synchronize()
            self._blk_cap = max(7 * nb, 2 * self._blk_cap)
            self._blk = self._device("block", self._blk_cap)
        self._copy(self._blk, buf.ctypes.data, 7 * F8 * nb, H2D)
        self._src = (self._blk, self._blk + 3 * F8 * nb, self._blk + 6 * F8 * nb, nb, first)

    # ---- targets and sums -------------------------------------------------------------

    def targets(self, xp, vp, idx):
        """Stage the bodies idx (int64 indices into xp, vp) as the targets of the next sums."""
        k = self._k = len(idx)
        if k == 0:
            return
        self._grow_targets(k)
        h = self._h_tgt
        np.take(xp, idx, axis=0, out=h[:3 * k].reshape(k, 3))
        np.take(vp, idx, axis=0, out=h[3 * k:6 * k].reshape(k, 3))
        h.view(np.int64)[6 * k:7 * k] = idx
        self._copy(self._tgt, h.ctypes.data, 7 * F8 * k, H2D)

    def sum(self):
        """(acc, jerk, pot) of the staged targets due to the current sources."""
        k = self._k
        h = self._h_out
        if k == 0:
            return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0)
        x, v, m, nj, first = self._src
        need = native().device_plan(k, nj, self.split)["work_bytes"]
        if need > self._work_bytes:
            self.stream.synchronize()
            self._work_bytes = max(need, 2 * self._work_bytes)
            self._work = self._device("work", (self._work_bytes + F8 - 1) // F8)
        t, o = self._tgt, self._out
        native().forces_device(t, t + 3 * F8 * k, t + 6 * F8 * k, k, x, v, m, nj, first, self.eps2,
                               o, o + 3 * F8 * k, o + 6 * F8 * k, self.stream.ptr, self.split,
                               self._work, self._work_bytes)
        self._copy(h.ctypes.data, o, 7 * F8 * k, D2H)
        self.stream.synchronize()
        return h[:3 * k].reshape(k, 3), h[3 * k:6 * k].reshape(k, 3), h[6 * k:7 * k]

    def forces(self, xp, vp, idx):
        """targets(xp, vp, idx), then sum()."""
        self.targets(xp, vp, idx)
        return self.sum()

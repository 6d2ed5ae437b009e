"""Fourth-order Hermite predictor-corrector with hierarchical block time steps
(Makino & Aarseth 1992; as in NBODY6), parallel over MPI ranks with baobab.

State per body: position x, velocity v, acceleration a, jerk j, second
derivative a2 (from the last correction), time t_i and step dt_i, a power of
two. Each block step advances the bodies whose t_i + dt_i is the smallest
(the active set): every body is predicted to that time, forces on the active
bodies are summed directly, and the active bodies are corrected. Their next
step follows Aarseth's criterion

    dt = sqrt(eta (|a| |a2| + |j|^2) / (|j| |a3| + |a2|^2))

rounded down to a power of two, at most twice the old step, at most dt_max,
and commensurate with the new time (t / dt an integer), so that bodies meet
again on common block times. Output times are multiples of dt_max, where
every body is synchronised. The shared-step mode gives every body the
smallest such step.

Parallel force evaluation (`parallel=`):
  "igather"  every rank holds every body; the active set is split evenly, each
             rank sums the forces on its share over all bodies, and an
             allgather assembles them. A body's force is summed in the same
             order whatever the number of ranks, so runs on any number of
             ranks give identical bits.
  "jreduce"  each rank sums the forces on all active bodies over its share of
             the bodies (the j-particles), and an allreduce adds the partial
             forces; only that share needs predicting. Results depend on the
             number of ranks at round-off level.
  "ring"     each rank sums the forces on its share of the active bodies over
             blocks of predicted bodies that travel around the ring of ranks,
             each transfer overlapping the previous block's sum (non-blocking
             point-to-point), then an allgather. Moves N/p bodies per rank per
             step where jreduce moves the active set's forces.

Forces on a GPU (`device=`, device.py): the force sums run on the device in
every mode, everything else stays as above on the host. Per block step a rank
uploads the predicted rows its sum reads (jreduce: its share of the bodies;
igather: all of them; ring: each block as it arrives) and its targets, and
downloads their forces; the collectives carry host arrays. The GPU's sums agree
with the host kernel's to about 1e-15 relative, so a device run follows a host
run to round-off (igather's identical bits across rank counts hold on the
device too only while the kernel choice, which depends on the number of
targets, is forced: BAOBAB_NBODY_SPLIT).
"""
import math

import numpy as np

from kernels import forces as _kernel_forces
from kernels import native
from snapshot import rows_of, share as _split


class IntegrationError(ArithmeticError):
    """The integration cannot go on: non-finite forces or energy, or a block time
    that no longer advances (a step below the resolution of the time)."""


def _pow2_floor(x):
    """The largest power of two <= x (x > 0, finite)."""
    m, e = math.frexp(x)  # x = m 2^e, 0.5 <= m < 1
    return math.ldexp(1.0, e - 1)


class Hermite:
    def __init__(self, x, v, m, ids=None, *, comm=None, eta=0.02, eta_s=0.01, eps=0.0, dt_max=0.125,
                 dt_min=2.0 ** -40, shared=False, parallel="igather", threads=None, time=0.0, device=False):
        n = len(m)
        if n < 2:
            raise ValueError("need at least 2 bodies")
        if not (dt_max > 0 and _pow2_floor(dt_max) == dt_max):
            raise ValueError(f"dt_max must be a power of two, got {dt_max}")
        if parallel not in ("igather", "jreduce", "ring"):
            raise ValueError(f"unknown parallel mode {parallel!r} (jreduce, igather, ring)")
        for name, val in (("eta", eta), ("eta_s", eta_s), ("dt_min", dt_min)):
            if not (math.isfinite(val) and val > 0):
                raise ValueError(f"{name} must be finite and positive, got {val}")
        if not (math.isfinite(eps) and eps >= 0 and math.isfinite(float(eps) ** 2)):
            raise ValueError(f"eps must be finite and non-negative, got {eps}")
        if not math.isfinite(time):  # (the compiled step rounding needs a finite time)
            raise ValueError(f"time must be finite, got {time}")
        self.n = n
        self.x = np.array(x, np.float64, order="C")
        self.v = np.array(v, np.float64, order="C")
        self.m = np.array(m, np.float64, order="C")
        self.ids = np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64)
        self.comm = comm if comm is not None and comm.size > 1 else None
        self.rank = 0 if comm is None else comm.rank
        self.size = 1 if comm is None else comm.size
        self.eta, self.eta_s, self.eps2 = float(eta), float(eta_s), float(eps) ** 2
        self.dt_max, self.dt_min = float(dt_max), float(dt_min)
        self.shared = bool(shared)
        self.parallel = parallel
        self.threads = threads
        self.time = float(time)
        self.a = np.zeros((n, 3))
        self.j = np.zeros((n, 3))
        self.a2 = np.zeros((n, 3))
        self.pot = np.zeros(n)
        self.t = np.full(n, self.time)
        self.dt = np.zeros(n)
        self.steps = 0            # block steps taken
        self.body_steps = 0       # individual body steps (force evaluations on bodies)
        self.interactions = 0     # pairwise interactions summed by all ranks together
        self.finite = True        # False once a force sum gave a non-finite value (it stays so)
        self._ar = np.arange(n, dtype=np.int64)
        # device=: True (the current GPU) or a device number; the j-particles live there
        self.gpu = None
        if device is not False and device is not None:
            from device import DeviceForces
            self.gpu = DeviceForces(self.m, self.eps2, device=None if device is True else device)
        # per-step buffers, kept across steps (fresh ones would page-fault every step); pinned
        # with a device, so that the uploads of predicted bodies and ring blocks are DMA transfers
        alloc = np.empty if self.gpu is None else self.gpu.pinned
        self._act = np.empty(n, np.int64)
        self._xp, self._vp = alloc((n, 3)), alloc((n, 3))
        nb = -(-n // self.size)  # the largest share: ring blocks
        self._ring_bufs = (alloc(7 * nb), alloc(7 * nb)) if parallel == "ring" and self.comm is not None else None

    # ---- forces -----------------------------------------------------------------

    def _sum(self, targets, xp, vp, j0, j1):
        """(acc, jerk, pot) on the bodies `targets` (indices) from the bodies
        j0..j1-1, all at the predicted xp, vp: on this rank, host or device."""
        if self.gpu is not None:
            self.gpu.sources(xp, vp, j0, j1)
            return self.gpu.forces(xp, vp, targets)
        return _kernel_forces(xp[targets], vp[targets], targets, xp[j0:j1], vp[j0:j1], self.m[j0:j1], j0,
                              self.eps2, self.threads)

    def _forces(self, act, xp, vp):
        """(acc, jerk, pot) on bodies `act` (sorted indices) from every body at
        the predicted positions xp, vp. Collective over the ranks."""
        k = len(act)
        self.interactions += k * (self.n - 1)
        if self.comm is None:
            return self._sum(act, xp, vp, 0, self.n)
        if self.parallel == "igather":
            lo, hi = _split(k, self.size, self.rank)
            acc, jerk, pot = self._sum(act[lo:hi], xp, vp, 0, self.n)
            mine = np.empty((hi - lo, 7))
            mine[:, :3], mine[:, 3:6], mine[:, 6] = acc, jerk, pot
            rows = rows_of(k, self.size)
            full = self.comm.allgatherv(mine, rows=rows)[0]
        elif self.parallel == "ring":
            full = self._ring_forces(act, xp, vp)
        else:
            j0, j1 = _split(self.n, self.size, self.rank)
            acc, jerk, pot = self._sum(act, xp, vp, j0, j1)
            mine = np.empty((k, 7))
            mine[:, :3], mine[:, 3:6], mine[:, 6] = acc, jerk, pot
            full = self.comm.allreduce(mine)
        return full[:, :3], full[:, 3:6], full[:, 6]

    def _ring_forces(self, act, xp, vp):
        """Each rank sums the forces on its share of the active bodies while the
        ranks' blocks of predicted bodies travel around the ring, the next
        block's transfer overlapping this block's sum; an allgather assembles
        the forces. A block is flat, [x (nb, 3) | v (nb, 3) | m (nb)], so that its
        parts are arrays the kernels read in place (and one upload to a GPU)."""
        p, r, k = self.size, self.rank, len(act)
        lo, hi = _split(k, p, r)
        mine_act = act[lo:hi]
        dev = self.gpu
        if dev is not None:
            dev.targets(xp, vp, mine_act)
        else:
            xi, vi = np.ascontiguousarray(xp[mine_act]), np.ascontiguousarray(vp[mine_act])
        j0, j1 = _split(self.n, p, r)
        nb = j1 - j0
        block = self._ring_bufs[0][:7 * nb]
        block[:3 * nb] = xp[j0:j1].ravel()
        block[3 * nb:6 * nb] = vp[j0:j1].ravel()
        block[6 * nb:] = self.m[j0:j1]
        total = np.zeros((hi - lo, 7))
        right, left = (r + 1) % p, (r - 1) % p
        for s in range(p):
            owner = (r - s) % p
            o0, o1 = _split(self.n, p, owner)
            nb = o1 - o0
            reqs = []
            if s < p - 1:  # the next block arrives while this one is summed (two buffers in turn)
                b0, b1 = _split(self.n, p, (owner - 1) % p)
                nxt = self._ring_bufs[(s + 1) % 2][:7 * (b1 - b0)]
                reqs = [self.comm.irecv(nxt, left, tag=900 + s), self.comm.isend(block, right, tag=900 + s)]
            if dev is not None:
                dev.block(block, nb, o0)
                acc, jerk, pot = dev.sum()
            else:
                acc, jerk, pot = _kernel_forces(xi, vi, mine_act, block[:3 * nb].reshape(nb, 3),
                                                block[3 * nb:6 * nb].reshape(nb, 3), block[6 * nb:], o0,
                                                self.eps2, self.threads)
            total[:, :3] += acc
            total[:, 3:6] += jerk
            total[:, 6] += pot
            for q in reqs:
                q.wait()
            if reqs:
                block = nxt
        rows = rows_of(k, p)
        return self.comm.allgatherv(total, rows=rows)[0]

    # ---- steps ------------------------------------------------------------------------

    def initialize(self):
        """Forces on every body at the start, and starting steps eta_s |a| / |j|."""
        act = self._ar
        self.a, self.j, self.pot = (np.array(q) for q in self._forces(act, self.x, self.v))
        an = np.linalg.norm(self.a, axis=1)
        jn = np.linalg.norm(self.j, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            crit = self.eta_s * an / jn
        native().block_steps(np.ascontiguousarray(crit), self.time, self.dt_max, self.dt_min, self.dt)
        if self.shared:
            self.dt[:] = self.dt.min()
        self.t[:] = self.time
        self.a2[:] = 0.0

    def _predict(self, idx, t, out=None):
        """Taylor predictor of positions and velocities at t, for the bodies idx
        (None: all of them; a slice: a range of them, both without gathering
        copies), by the app's compiled kernels: this runs on every body every block step, a serial
        cost next to the parallel force sum."""
        if idx is None:
            lo, hi, ids = 0, self.n, None
        elif isinstance(idx, slice):
            lo, hi, ids = idx.start, idx.stop, None
        else:
            ids = np.ascontiguousarray(idx, np.int64)
            lo, hi = 0, len(ids)
        if out is None:
            xp, vp = np.empty((hi - lo, 3)), np.empty((hi - lo, 3))
        else:
            xp, vp = out
        # ((j dt/3 + a) dt/2 + v) dt + x and (j dt/2 + a) dt + v, dt = t - t_i
        native().predict(self.x, self.v, self.a, self.j, self.t, ids, lo, hi, float(t), xp, vp)
        return xp, vp

    def step(self):
        """One block step; returns the new time."""
        t1, k = native().active(self.t, self.dt, self._act)
        if not t1 > self.time:  # t + dt rounded back to t: no step would ever advance
            raise IntegrationError(f"the block time no longer advances at t={self.time} (a step of "
                                   f"{float(self.dt.min()):g} is below its resolution)")
        act = self._act[:k].copy()
        xp, vp = self._xp, self._vp
        if self.parallel == "igather" or self.comm is None:
            self._predict(None, t1, (xp, vp))
        else:  # only this rank's j-share and the active bodies are read
            j0, j1 = _split(self.n, self.size, self.rank)
            self._predict(slice(j0, j1), t1, (xp[j0:j1], vp[j0:j1]))
            xp[act], vp[act] = self._predict(act, t1)
        a1, j1, pot = self._forces(act, xp, vp)
        if self.finite:  # (a NaN or an infinity in any term makes the sum non-finite)
            self.finite = math.isfinite(float(pot.sum()) + float(a1.sum()) + float(j1.sum()))
        # corrector, new derivatives and Aarseth steps, compiled (src/nbody.hpp)
        c = np.ascontiguousarray
        native().correct(act, c(xp[act]), c(vp[act]), c(a1), c(j1), c(pot), t1, self.eta, self.dt_max,
                         self.dt_min, self.x, self.v, self.a, self.j, self.a2, self.pot, self.t, self.dt)
        if self.shared:  # every body was active: one step for all, the smallest
            self.dt[:] = self.dt.min()
        self.time = t1
        self.steps += 1
        self.body_steps += len(act)
        return t1

    def evolve(self, t_end, after_step=None):
        """Block steps until every body reached t_end (a multiple of dt_max).
        after_step() is called after each step; if it returns True, evolve
        stops there (the caller checkpoints) and returns False."""
        while self.time < t_end:
            self.step()
            if after_step is not None and after_step():
                return False
        return True

    def synchronized(self):
        return bool(np.all(self.t == self.time))

    # ---- state (checkpoints) -----------------------------------------------------------

    _ARRAYS = ("x", "v", "m", "ids", "a", "j", "a2", "pot", "t", "dt")

    def state(self):
        s = {k: getattr(self, k) for k in self._ARRAYS}
        s.update(time=self.time, steps=self.steps, body_steps=self.body_steps, interactions=self.interactions,
                 eta=self.eta, eta_s=self.eta_s, eps2=self.eps2, dt_max=self.dt_max, dt_min=self.dt_min,
                 shared=int(self.shared), parallel=self.parallel)
        return s

    def restore(self, s):
        for k in self._ARRAYS:
            setattr(self, k, np.array(s[k], dtype=np.int64 if k == "ids" else np.float64, order="C"))
        if self.gpu is not None:
            self.gpu.set_masses(self.m)
        self.time = float(s["time"])
        self.steps, self.body_steps, self.interactions = int(s["steps"]), int(s["body_steps"]), int(s["interactions"])

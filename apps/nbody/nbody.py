"""Direct N-body star-cluster simulation: Hermite 4th order, block time steps,
forces summed by baobab's kernel, parallel over MPI ranks; HDF5 snapshots and
diagnostics, checkpoints, and a clean stop on Slurm's signals.

    mpiexec -n 4 python apps/nbody/nbody.py --ic plummer --n 4096 --t-end 2 --dt-out 0.125 --out run1
    python apps/nbody/nbody.py --n 16384 --device --out run-gpu      # force sums on a GPU (device.py)
    sbatch slurm/nbody.sbatch

Outputs in --out: snapshot_NNNN.h5 (GADGET/SWIFT layout) at every multiple of
--dt-out, diagnostics.h5 (time series), checkpoints/ (the newest --keep).
A run whose --out holds a valid checkpoint continues from it (--restart no
starts afresh). Exit status: 0 done, 2 bad configuration, 3 stopped on a signal
after writing a checkpoint (resubmit to continue).
"""
import argparse
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import numpy as np  # noqa: E402

EXIT_BAD_CONFIG = 2
CHECK_EVERY = 8  # block steps between the ranks' agreement on a stop signal


class ConfigError(Exception):
    pass


def _power_of_two(x):
    return x > 0 and math.frexp(x)[0] == 0.5


def parse(argv):
    p = argparse.ArgumentParser(prog="nbody", description=__doc__.split("\n\n")[0])
    p.add_argument("--ic", default="plummer",
                   help="plummer, kepler, or an HDF5 snapshot to start from (default plummer)")
    p.add_argument("--n", type=int, default=1024, help="bodies (plummer)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--imf", default="equal", help="equal, salpeter, powerlaw (plummer masses)")
    p.add_argument("--mmin", type=float, default=0.1)
    p.add_argument("--mmax", type=float, default=100.0)
    p.add_argument("--alpha", type=float, default=2.35)
    p.add_argument("--e", type=float, default=0.5, help="eccentricity (kepler)")
    p.add_argument("--t-end", type=float, default=1.0)
    p.add_argument("--dt-out", type=float, default=0.125, help="output interval: a power of two")
    p.add_argument("--eta", type=float, default=0.02, help="Aarseth time-step parameter")
    p.add_argument("--eta-s", type=float, default=0.01, help="starting-step parameter (eta_s |a|/|j|)")
    p.add_argument("--eps", type=float, default=0.0, help="Plummer softening length")
    p.add_argument("--shared", action="store_true", help="one shared time step for every body")
    p.add_argument("--parallel", default="jreduce", choices=["jreduce", "igather", "ring"],
                   help="jreduce (default, fastest here): partial forces over each rank's share of the bodies, "
                        "allreduced; igather: forces on each rank's share of the active bodies, allgathered "
                        "(identical bits on any number of ranks); ring: blocks of bodies passed around the ring "
                        "of ranks, transfers overlapping the force sums")
    p.add_argument("--threads", type=int, default=None, help="kernel threads per rank (default: cores / ranks)")
    p.add_argument("--device", action="store_true",
                   help="sum the forces on a GPU (cupy; the GPU of local rank r is r mod the visible GPUs); "
                        "the rest of the integration stays on the host")
    p.add_argument("--out", default="nbody-out")
    p.add_argument("--restart", default="auto", choices=["auto", "no"])
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept")
    p.add_argument("--checkpoint-wall", type=float, default=0.0,
                   help="also checkpoint every this many wall-clock seconds (0: at outputs only)")
    p.add_argument("--async-checkpoint", action="store_true", help="write checkpoints in a background thread")
    p.add_argument("--stop-after-steps", type=int, default=0,
                   help="checkpoint and stop (exit 3) after this many block steps of this run (testing)")
    p.add_argument("--no-core", action="store_true", help="skip the O(N^2) density and core radius")
    p.add_argument("--quiet", action="store_true")
    a = p.parse_args(argv)
    if a.ic in ("plummer",) and a.n < 2:
        raise ConfigError(f"--n must be at least 2, got {a.n}")
    if not _power_of_two(a.dt_out):
        raise ConfigError(f"--dt-out must be a power of two (0.125, 0.25, 1, ...), got {a.dt_out}")
    if a.t_end < 0 or abs(a.t_end / a.dt_out - round(a.t_end / a.dt_out)) > 1e-12:
        raise ConfigError(f"--t-end must be a non-negative multiple of --dt-out ({a.dt_out}), got {a.t_end}")
    if a.eta <= 0 or a.eta_s <= 0:
        raise ConfigError("--eta and --eta-s must be positive")
    if a.eps < 0:
        raise ConfigError(f"--eps must be non-negative, got {a.eps}")
    if a.keep < 1:
        raise ConfigError("--keep must be at least 1")
    if a.ic not in ("plummer", "kepler") and not os.path.isfile(a.ic):
        raise ConfigError(f"--ic {a.ic!r}: not plummer or kepler, and no such file")
    return a


def params_of(a):
    keys = ("ic", "n", "seed", "imf", "mmin", "mmax", "alpha", "e", "t_end", "dt_out", "eta", "eta_s", "eps",
            "shared", "parallel", "device")
    return {k: getattr(a, k) for k in keys}


def initial_conditions(a):
    import ics
    if a.ic == "plummer":
        return ics.plummer(a.n, a.seed, None if a.imf == "equal" else a.imf, a.mmin, a.mmax, a.alpha, eps=a.eps)
    if a.ic == "kepler":
        return ics.kepler(a.e)
    try:
        return ics.from_snapshot(a.ic)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def default_threads(comm):
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count() or 1
    local = comm.topology.local_size(comm.rank) if comm is not None else 1
    return max(1, ncpu // max(1, local))


def run(a, comm):
    import baobab
    from baobab.checkpoint import Checkpointer

    import diagnostics
    from hermite import Hermite
    from snapshot import write_snapshot

    rank = comm.rank
    log = (lambda *s: print(*s, file=sys.stderr, flush=True)) if rank == 0 and not a.quiet else (lambda *s: None)
    os.makedirs(a.out, exist_ok=True) if rank == 0 else None
    comm.barrier()
    threads = a.threads or default_threads(comm)
    gpu = device_for(comm) if a.device else None
    ck = Checkpointer(os.path.join(a.out, "checkpoints"), comm.mpi_comm, keep=a.keep, prefix="nbody",
                      asynchronous=a.async_checkpoint)
    params = params_of(a)
    latest = ck.latest() if a.restart == "auto" else None
    state = ck.load(latest) if latest is not None else None

    if state is None:
        ic = initial_conditions(a)
        h = Hermite(ic["x"], ic["v"], ic["m"], ic["ids"], comm=comm, eta=a.eta, eta_s=a.eta_s, eps=a.eps,
                    dt_max=a.dt_out, shared=a.shared, parallel=a.parallel, threads=threads, time=ic["time"],
                    device=gpu)
        h.initialize()
        t_first = ic["time"]
        out_index = int(round(t_first / a.dt_out))
        if abs(out_index * a.dt_out - t_first) > 1e-12 * max(1.0, abs(t_first)):
            raise ConfigError(f"the initial conditions are at t={t_first}, not a multiple of --dt-out {a.dt_out}")
        history, e0 = [], None
        log(f"nbody: {h.n} bodies ({params['ic']}), {comm.size} rank(s) x {threads} thread(s), "
            f"{a.parallel}, eta={a.eta}, eps={a.eps}, t_end={a.t_end}{where(h)}")
    else:
        saved = state["params"]
        for k in ("n", "eta", "eps", "dt_out", "shared", "parallel"):
            if k in saved and saved[k] != params[k] and not (k == "n" and saved["ic"] != "plummer"):
                raise ConfigError(f"the checkpoint in {a.out} was made with --{k.replace('_', '-')} {saved[k]}, "
                                  f"not {params[k]}: use the same settings or --restart no")
        s = state["hermite"]
        h = Hermite(s["x"], s["v"], s["m"], s["ids"], comm=comm, eta=a.eta, eta_s=a.eta_s, eps=a.eps,
                    dt_max=a.dt_out, shared=a.shared, parallel=a.parallel, threads=threads, time=float(s["time"]),
                    device=gpu)
        h.restore(s)
        history = diagnostics.from_arrays(state["diagnostics"]) if len(state["diagnostics"]["time"]) else []
        e0 = float(state["e0"])
        out_index = int(state["out_index"])
        t_first = None
        log(f"nbody: resumed from {latest} at t={h.time} (step {h.steps}), {comm.size} rank(s){where(h)}")

    stop = baobab.slurm.on_preempt()
    wall0 = time.perf_counter()
    last = dict(wall=wall0, inter=h.interactions)
    run_steps = 0
    last_ck = time.perf_counter()

    def checkpoint(reason):
        st = dict(hermite=h.state(), params=params, e0=e0 if e0 is not None else float("nan"),
                  out_index=out_index, diagnostics=diagnostics.as_arrays(history) if history else
                  {k: np.zeros(0) for k in diagnostics.FIELDS}, reason=reason,
                  rng_seed=a.seed)
        return ck.save(h.steps, st)

    def output():
        nonlocal e0, out_index
        now = time.perf_counter()  # the rate covers the integration since the last output, not diagnostics
        rate = (h.interactions - last["inter"]) / max(now - last["wall"], 1e-9)
        d = diagnostics.measure(h, e0, comm, threads, core=not a.no_core)
        if e0 is None:
            e0 = d["energy"]
            d["de_rel"] = 0.0
        d["wall"] = now - wall0
        d["interactions_per_s"] = rate
        pot = d.pop("_potential")  # of the corrected positions (h.pot is of the predicted ones)
        history.append(d)
        write_snapshot(os.path.join(a.out, f"snapshot_{out_index:04d}.h5"), h.x, h.v, h.m, h.ids, h.time,
                       pot, comm=comm, params=params, index=out_index)
        write_diagnostics(os.path.join(a.out, "diagnostics.h5"), history, params, comm)
        log("nbody: " + diagnostics.progress_line(d))
        out_index += 1
        last.update(wall=time.perf_counter(), inter=h.interactions)  # after diagnostics and I/O

    if t_first is not None:
        output()  # the initial state
        checkpoint("output")

    stopped = False
    while h.time < a.t_end - 1e-15:
        t_next_out = out_index * a.dt_out
        while h.time < t_next_out:
            h.step()
            run_steps += 1
            # one small allreduce per step: a signal on any rank, or rank 0's clock
            # saying a wall-clock checkpoint is due, reaches every rank at once
            if run_steps % CHECK_EVERY and not a.stop_after_steps:
                continue  # agree on signals every CHECK_EVERY steps: a collective per step costs ~2 %
            wall_due = bool(a.checkpoint_wall) and rank == 0 and time.perf_counter() - last_ck > a.checkpoint_wall
            signalled, wall_due = _any(comm, stop.requested, wall_due)
            if signalled or (a.stop_after_steps and run_steps >= a.stop_after_steps):
                stopped = True
                break
            if wall_due:
                checkpoint("wall")
                last_ck = time.perf_counter()
        if stopped:
            break
        output()
        checkpoint("output")
        last_ck = time.perf_counter()
    if stopped:
        path = checkpoint("signal" if stop.requested else "stop-after-steps")
        ck.wait()
        log(f"nbody: stopped at t={h.time} after step {h.steps} ({stop.signal_name or 'step limit'}); "
            f"checkpoint {path}; run again to continue")
        return 3
    ck.wait()
    log(f"nbody: done, t={h.time}, {h.steps} block steps, {h.body_steps} body steps")
    return 0


def device_for(comm):
    """The GPU this rank sums its forces on (local rank mod the visible GPUs), once
    every rank found one; else ConfigError naming what is missing."""
    from device import DeviceUnavailable, probe
    why, count = "", 0
    try:
        count = probe()[1]
    except DeviceUnavailable as e:
        why = str(e)
    if _any(comm, bool(why))[0]:
        raise ConfigError(f"--device: {why or 'another rank has no usable GPU'}")
    return comm.topology.local_rank(comm.rank) % count


def where(h):
    """', forces on <GPU>' for the log line of a device run."""
    return "" if h.gpu is None else f", forces on {h.gpu.name} (device {h.gpu.device.id})"


def _any(comm, *flags):
    """Each flag OR-ed over the ranks (one allreduce)."""
    mine = np.array([1 if f else 0 for f in flags], np.int32)
    if comm.size > 1:
        mine = comm.allreduce(mine, op="max")
    return [bool(f) for f in mine]


def write_diagnostics(path, history, params, comm):
    """The time series so far (rank 0 writes, atomically)."""
    import diagnostics
    if comm.rank != 0:
        return
    from baobab import io
    arrays = diagnostics.as_arrays(history)
    with io.File(path, "w", None, attrs={"run_parameters": params}) as f:
        for k, v in arrays.items():
            f.write_global(k, np.ascontiguousarray(v))
        f.set_attrs("/", {"columns": "time energy kinetic potential de_rel virial momentum[3] angular_momentum[3] "
                                     "density_centre[3] core_radius lagrangian_radii[10,50,90%] wall "
                                     "interactions_per_s steps body_steps"})


def main(argv=None):
    try:
        a = parse(argv)
    except ConfigError as e:
        print(f"nbody: error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    import baobab
    comm = baobab.init()
    try:
        return run(a, comm)
    except ConfigError as e:
        if comm.rank == 0:
            print(f"nbody: error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG


if __name__ == "__main__":
    sys.exit(main())

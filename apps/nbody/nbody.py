"""Direct N-body star-cluster simulation: Hermite 4th order, block time steps,
forces summed by baobab's kernel, parallel over MPI ranks; HDF5 snapshots and
diagnostics, checkpoints, and a clean stop on Slurm's signals.

    mpiexec -n 4 python apps/nbody/nbody.py --ic plummer --n 4096 --t-end 2 --dt-out 0.125 --out run1
    python apps/nbody/nbody.py --n 16384 --device --out run-gpu      # force sums on a GPU (device.py)
    sbatch slurm/nbody.sbatch

Outputs in --out: snapshot_NNNN.h5 (GADGET/SWIFT layout) at every multiple of
--dt-out, diagnostics.h5 (time series), checkpoints/ (the newest --keep).
A run whose --out holds a valid checkpoint continues from it (--restart no
starts afresh). Every option is checked before the run starts (finite, in
range, consistent; --out usable, --ic readable, --n fitting the memory).
Exit status: 0 done, 2 bad configuration (one line on stderr), 3 stopped on a
signal after writing a checkpoint (resubmit to continue), 4 the integration
broke down (the energy or the forces became non-finite; nothing is written
for that time).
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
EXIT_DIVERGED = 4
EXIT_RUNTIME = 1  # an error while running (a full disk, a timeout), one line on rank 0
CHECK_EVERY = 8  # block steps between the ranks' agreement on a stop signal
DT_OUT_MIN = 2.0 ** -30  # output interval: 10 levels above the smallest block step, Hermite's dt_min 2^-40
MAX_THREADS = 1024
BYTES_PER_BODY = 1024  # memory a rank needs per body, about (state, buffers, diagnostics, checkpoint copies)
IMFS = ("equal", "salpeter", "powerlaw")
BROKE_DOWN = ("the integration cannot go on (bodies at one place without --eps, or an overflow); "
              "nothing was written for this time")


class ConfigError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line (main prints it), not the usage block
        raise ConfigError(message)


def _power_of_two(x):
    return x > 0 and math.isfinite(x) and math.frexp(x)[0] == 0.5


def parse(argv):
    p = _Parser(prog="nbody", description=__doc__.split("\n\n")[0])
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
    check(a)
    return a


def _finite(name, value, low=None, *, above=None, below=None):
    """ConfigError unless value is finite, >= low, > above and < below."""
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    if low is not None and value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")
    if above is not None and not value > above:
        raise ConfigError(f"{name} must be greater than {above}, got {value}")
    if below is not None and not value < below:
        raise ConfigError(f"{name} must be less than {below}, got {value}")


def check(a):
    """Every option on its own and against the others (what the command line alone
    decides, the same on every rank; the file system and memory are checked in
    preflight())."""
    if a.n < 2:
        raise ConfigError(f"--n must be at least 2, got {a.n}")
    if a.seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {a.seed}")
    if a.imf not in IMFS:
        raise ConfigError(f"--imf must be one of {', '.join(IMFS)}, got {a.imf!r}")
    _finite("--mmin", a.mmin, above=0.0)
    _finite("--mmax", a.mmax)
    if not a.mmax > a.mmin:
        raise ConfigError(f"--mmax must be greater than --mmin ({a.mmin}), got {a.mmax}")
    _finite("--alpha", a.alpha)
    _finite("--e", a.e, 0.0, below=1.0)
    if not _power_of_two(a.dt_out) or a.dt_out < DT_OUT_MIN:
        raise ConfigError(f"--dt-out must be a power of two (0.125, 0.25, 1, ...) of at least 2^-30, got {a.dt_out}")
    _finite("--t-end", a.t_end, 0.0)
    if not a.t_end / a.dt_out < 2.0 ** 53:
        raise ConfigError(f"--t-end must be fewer than 2^53 output intervals (--dt-out {a.dt_out}), got {a.t_end}")
    if a.t_end / a.dt_out != round(a.t_end / a.dt_out):
        raise ConfigError(f"--t-end must be a non-negative multiple of --dt-out ({a.dt_out}), got {a.t_end}")
    _finite("--eta", a.eta, above=0.0)
    _finite("--eta-s", a.eta_s, above=0.0)
    _finite("--eps", a.eps, 0.0)
    if not math.isfinite(a.eps * a.eps):
        raise ConfigError(f"--eps must be below 1e154 (its square is used), got {a.eps}")
    if a.threads is not None and not 1 <= a.threads <= MAX_THREADS:
        raise ConfigError(f"--threads must be between 1 and {MAX_THREADS}, got {a.threads}")
    if a.out == "":
        raise ConfigError("--out must name a directory, got ''")
    if a.keep < 1:
        raise ConfigError(f"--keep must be at least 1, got {a.keep}")
    _finite("--checkpoint-wall", a.checkpoint_wall, 0.0)
    if a.stop_after_steps < 0:
        raise ConfigError(f"--stop-after-steps must be non-negative, got {a.stop_after_steps}")


def params_of(a):
    keys = ("ic", "n", "seed", "imf", "mmin", "mmax", "alpha", "e", "t_end", "dt_out", "eta", "eta_s", "eps",
            "shared", "parallel", "device")
    return {k: getattr(a, k) for k in keys}


def initial_conditions(a):
    import ics
    try:
        if a.ic == "plummer":
            return ics.plummer(a.n, a.seed, None if a.imf == "equal" else a.imf, a.mmin, a.mmax, a.alpha,
                               eps=a.eps)
        if a.ic == "kepler":
            return ics.kepler(a.e)
        return ics.from_snapshot(a.ic)
    except ics.ParameterError as e:
        raise ConfigError(f"--{e.param.replace('_', '-')}: {e}") from None
    except ValueError as e:
        raise ConfigError(f"--ic: {e}") from None


def _out_problem(out):
    """Why the directory `out` cannot take the run's files, or None: it and
    out/checkpoints are created when missing, and a file is made and removed in each."""
    for d in (out, os.path.join(out, "checkpoints")):
        try:
            os.makedirs(d, exist_ok=True)
        except FileExistsError:
            return f"{d!r} exists and is not a directory"
        except OSError as e:
            return f"cannot create the directory {d!r}: {e.strerror or e}"
        probe = os.path.join(d, f".nbody-probe-{os.getpid()}")
        try:
            with open(probe, "wb") as f:
                f.write(b"probe\n")
            os.unlink(probe)
        except OSError as e:
            return f"cannot write in {d!r}: {e.strerror or e}"
    return None


def _memory_bytes():
    """Physical memory of this node, or the cgroup's limit if lower (None: unknown)."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        total = None
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit.isdigit():
            total = int(limit) if total is None else min(total, int(limit))
    except OSError:
        pass
    return total


def _size(b):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if b < 1024 or unit == "PiB":
            return f"{b:.3g} {unit}"
        b /= 1024


def _agree(comm, err):
    """Collective: every rank raises ConfigError with the message of the lowest
    rank that has one (err: this rank's message, or None); returns if none has."""
    if comm.size == 1:
        if err:
            raise ConfigError(err)
        return
    first = int(comm.allreduce(np.array([comm.rank if err else comm.size], np.int64), op="min")[0])
    if first == comm.size:
        return
    buf = np.zeros(2048, np.uint8)
    if comm.rank == first:
        b = err.encode("utf-8", "replace")[:buf.size]
        buf[:len(b)] = np.frombuffer(b, np.uint8)
    comm.bcast(buf, root=first)
    raise ConfigError(bytes(buf).rstrip(b"\0").decode("utf-8", "replace"))


def preflight(a, comm):
    """Collective, before anything is written: rank 0 checks that --out can take the
    run's files, every rank reads an --ic snapshot (checked: ics.from_snapshot) and
    checks that the bodies fit its node's memory; then every rank learns the first
    problem and raises ConfigError with it. Returns the snapshot's bodies or None."""
    err, ic = None, None
    if comm.rank == 0:
        why = _out_problem(a.out)
        if why:
            err = f"--out {a.out!r}: {why}"
    if not err and a.ic not in ("plummer", "kepler"):
        if not os.path.exists(a.ic):
            err = f"--ic {a.ic!r}: not plummer or kepler, and no such file"
        elif os.path.isdir(a.ic):
            err = f"--ic {a.ic!r}: a directory, not a snapshot file"
        else:
            try:
                ic = initial_conditions(a)
                t0 = ic["time"]
                if t0 / a.dt_out != round(t0 / a.dt_out):
                    err = (f"--dt-out {a.dt_out}: the initial conditions in {a.ic} are at t={t0}, "
                           f"not a multiple of it")
                elif t0 > a.t_end:
                    err = f"--t-end {a.t_end} is before the time of the initial conditions in {a.ic} (t={t0})"
            except ConfigError as e:
                err = str(e)
    if not err:
        n = {"plummer": a.n, "kepler": 2}.get(a.ic, len(ic["m"]) if ic else 0)
        local = comm.topology.local_size(comm.rank)
        need, have = n * BYTES_PER_BODY * local, _memory_bytes()
        if have is not None and need > have:
            what = "--n" if a.ic == "plummer" else f"--ic {a.ic}:"
            err = (f"{what} {n} bodies need about {_size(need)} of memory on this node ({BYTES_PER_BODY} bytes "
                   f"per body on each of its {local} rank(s)), more than its {_size(have)}")
    _agree(comm, err)
    return ic


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
    from hermite import Hermite, IntegrationError
    from snapshot import write_snapshot

    rank = comm.rank
    log = (lambda *s: print(*s, file=sys.stderr, flush=True)) if rank == 0 and not a.quiet else (lambda *s: None)
    check_app_environment(comm)  # BAOBAB_NBODY_ISA, BAOBAB_NBODY_SPLIT: or ConfigError on every rank
    ic_file = preflight(a, comm)  # --out made and writable, --ic read: or ConfigError on every rank
    threads = a.threads or default_threads(comm)
    gpu = device_for(comm) if a.device else None
    ck = Checkpointer(os.path.join(a.out, "checkpoints"), comm.mpi_comm, keep=a.keep, prefix="nbody",
                      asynchronous=a.async_checkpoint)
    params = params_of(a)
    latest = ck.latest() if a.restart == "auto" else None
    state = ck.load(latest) if latest is not None else None

    if state is None:
        ic, err = ic_file, None
        if ic is None:
            try:
                ic = initial_conditions(a)  # the same on every rank (seeded), so is an error
            except ConfigError as e:
                err = str(e)
            _agree(comm, err)
        h = Hermite(ic["x"], ic["v"], ic["m"], ic["ids"], comm=comm, eta=a.eta, eta_s=a.eta_s, eps=a.eps,
                    dt_max=a.dt_out, shared=a.shared, parallel=a.parallel, threads=threads, time=ic["time"],
                    device=gpu)
        h.initialize()
        t_first = ic["time"]  # a multiple of --dt-out, at most --t-end (preflight)
        out_index = int(round(t_first / a.dt_out))
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
        # the energy is a global sum every rank holds (the potential is allgathered): every rank
        # stops here together, before this state is written anywhere
        if not math.isfinite(d["energy"]):
            raise IntegrationError(f"the total energy is non-finite ({d['energy']}) at t={h.time} "
                                   f"(block step {h.steps}): {BROKE_DOWN}")
        if not (np.all(np.isfinite(h.x)) and np.all(np.isfinite(h.v))):  # (an overflow the energy missed)
            raise IntegrationError(f"positions or velocities are non-finite at t={h.time} (block step {h.steps}, "
                                   f"the energy is {d['energy']}): {BROKE_DOWN}")
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
            signalled, wall_due, broken = _any(comm, stop.requested, wall_due, not h.finite)
            if broken:
                raise IntegrationError(f"the forces became non-finite by t={h.time} (block step {h.steps}): "
                                       f"{BROKE_DOWN}")
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


def check_app_environment(comm):
    """The app's variables (BAOBAB_NBODY_ISA, BAOBAB_NBODY_SPLIT; the runtime
    does not know them) checked on every rank, before anything runs: a bad one
    is a ConfigError on every rank, naming it."""
    import baobab
    import kernels
    why = ""
    try:
        kernels.check_environment()
    except baobab.InvalidArgument as e:
        why = str(e)
    if _any(comm, bool(why))[0]:
        raise ConfigError(why or "another rank has a bad BAOBAB_NBODY_ISA or BAOBAB_NBODY_SPLIT")


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
    """The time series so far (every rank holds it; written collectively, rank 0's
    copy, atomically), so that a failure on rank 0 reaches every rank at once."""
    import diagnostics
    from baobab import io
    arrays = diagnostics.as_arrays(history)
    with io.File(path, "w", comm, attrs={"run_parameters": params}) as f:
        for k, v in arrays.items():
            f.write_global(k, np.ascontiguousarray(v))
        f.set_attrs("/", {"columns": "time energy kinetic potential de_rel virial momentum[3] angular_momentum[3] "
                                     "density_centre[3] core_radius lagrangian_radii[10,50,90%] wall "
                                     "interactions_per_s steps body_steps"})


def _launcher_rank():
    """This process's rank as the launcher tells it (before MPI starts), or 0."""
    for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        v = os.environ.get(k, "")
        if v.isdigit():
            return int(v)
    return 0


def main(argv=None):
    try:
        a = parse(argv)
    except ConfigError as e:  # the same on every rank (only the command line decides): rank 0 says it
        if _launcher_rank() == 0:
            print(f"nbody: error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    import baobab
    from hermite import IntegrationError
    try:
        comm = baobab.init()
    except baobab.InvalidArgument as e:  # a bad BAOBAB_* variable, refused on every rank before MPI is used
        if _launcher_rank() == 0:
            print(f"nbody: error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        return run(a, comm)
    except ConfigError as e:
        if comm.rank == 0:
            print(f"nbody: error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except IntegrationError as e:  # raised on every rank at the same step (replicated state)
        if comm.rank == 0:
            print(f"nbody: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except baobab.Error as e:  # a failed write, a timeout: baobab raises it on every rank
        if comm.rank == 0:
            print(f"nbody: error: {e}", file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())

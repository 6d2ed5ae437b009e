"""Slurm: the job as the environment describes it, and the launch check.

    env = baobab.slurm.environment()   # job id, nodes (expanded), tasks per node, ids, topology address
    env.nodes, env.tasks_per_node, env.topology_addr

A wrong PMI plugin (srun --mpi=... not matching the MPI library) does not fail:
every task starts as a rank 0 of a world of 1. `check_world` (run when a
baobab communicator over MPI.COMM_WORLD is created) compares the world size
with what the launcher announced and raises an error naming the fix.
"""
import itertools
import os
import re
from dataclasses import dataclass, field

from ._errors import Error, InvalidArgument


_SEPARATORS = ", \t"
_MAX_RANGE = 65536  # Slurm's limit on the hosts of one range ("Too many hosts in range")


def expand_hostlist(spec):
    """Slurm's compressed host list -> names, in the order `scontrol show
    hostnames` gives them: "n[1-3,7],gpu[08-10] login" -> n1 n2 n3 n7 gpu08
    gpu09 gpu10 login.

    Names are separated by commas, spaces or tabs outside brackets.
    A range's numbers are zero-padded to the width of its first number
    (n[001-3], n[099-101]). A name with several bracket groups gives their
    product in Slurm's order: the last group varies fastest, then the first,
    the second, ..., the second-to-last slowest (x[1-2]y[1-2]z[1-2] -> x1y1z1
    x1y1z2 x2y1z1 x2y1z2 x1y2z1 ...). Like Slurm, a name must end with its last
    bracket group, and a range holds at most 65536 hosts. InvalidArgument for
    what Slurm refuses, and for lists it would turn into names holding a
    bracket, a newline or a space ("n[1", "n1\\nn2", "n[ 1-2]")."""
    spec = spec or ""
    bad = next((ch for ch in spec if (ord(ch) < 32 and ch != "\t") or ord(ch) == 127), None)
    if bad is not None:  # Slurm keeps a newline inside a name
        raise InvalidArgument(f"host list {spec!r}: control character {bad!r} (names are separated by commas, "
                              "spaces or tabs)")
    tokens, depth, cur = [], 0, ""
    for ch in spec:  # split on separators outside brackets
        if ch == "[":
            depth += 1
            if depth > 1:
                raise InvalidArgument(f"host list {spec!r}: nested '['")
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise InvalidArgument(f"host list {spec!r}: unbalanced ']'")
        if ch in _SEPARATORS and depth == 0:
            tokens.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise InvalidArgument(f"host list {spec!r}: unbalanced '['")
    tokens.append(cur)
    out = []
    for name in tokens:
        if name:
            out.extend(_expand_one(name, spec))
    return out


def _expand_one(name, spec):
    """One name with zero or more bracket groups, in Slurm's order (see expand_hostlist)."""
    parts = re.split(r"\[([^\]]*)\]", name)  # text, group, text, group, ..., text
    texts, groups = parts[0::2], parts[1::2]
    if not groups:
        return [name]
    if texts[-1]:
        raise InvalidArgument(f"host list {spec!r}: {name!r} goes on after its last ']' (Slurm allows nothing "
                              "there)")
    values = [_range_values(g, spec) for g in groups]
    # Slurm's order, outermost loop first: groups n-2, n-3, ..., 0, then n-1 innermost
    n = len(groups)
    order = list(range(n - 2, -1, -1)) + [n - 1]
    out = []
    for combo in itertools.product(*(values[i] for i in order)):
        picked = dict(zip(order, combo))
        out.append("".join(texts[i] + picked[i] for i in range(n)))
    return out


def _range_values(group, spec):
    """"1-3,07" -> ["1", "2", "3", "07"] (each range padded to its first number's width)."""
    values = []
    for part in group.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise InvalidArgument(f"host list {spec!r}: bad range {part!r} in [{group}] (expected N or N-M, digits "
                                  "only)")
        a, b = m.group(1), m.group(2) if m.group(2) is not None else m.group(1)
        lo, hi = int(a), int(b)
        if hi < lo:
            raise InvalidArgument(f"host list {spec!r}: bad range {part!r} (its end is below its start)")
        if hi - lo + 1 > _MAX_RANGE:
            raise InvalidArgument(f"host list {spec!r}: range {part!r} holds {hi - lo + 1} hosts, more than "
                                  f"Slurm's limit of {_MAX_RANGE}")
        values += [str(i).zfill(len(a)) for i in range(lo, hi + 1)]
    return values


def expand_tasks_per_node(spec):
    """SLURM_TASKS_PER_NODE "2(x3),1" -> [2, 2, 2, 1]."""
    out = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part)
        if not m:
            raise InvalidArgument(f"SLURM_TASKS_PER_NODE {spec!r}: bad element {part!r}")
        out += [int(m.group(1))] * int(m.group(2) or 1)
    return out


@dataclass
class SlurmEnvironment:
    in_job: bool = False
    job_id: str = None
    job_name: str = None
    step_id: str = None
    nodes: list = field(default_factory=list)          # every node of the job (or of the step, inside srun)
    tasks_per_node: list = field(default_factory=list)
    ntasks: int = None                                  # tasks of the step (srun), else of the job
    procid: int = None                                  # this task's rank in the step
    localid: int = None                                 # its rank on its node
    nodeid: int = None                                  # its node's index in `nodes`
    node_name: str = None
    cpus_per_task: int = None
    topology_addr: str = None
    topology_addr_pattern: str = None
    submit_dir: str = None
    partition: str = None


def environment(env=None):
    """The Slurm job and step this process belongs to, from SLURM_* variables."""
    env = os.environ if env is None else env

    def num(name):
        v = env.get(name)
        try:
            return int(v) if v not in (None, "") else None
        except ValueError:
            return None
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    tpn = env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE")
    return SlurmEnvironment(
        in_job="SLURM_JOB_ID" in env or "SLURM_JOBID" in env,
        job_id=env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID"),
        job_name=env.get("SLURM_JOB_NAME"),
        step_id=env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID"),
        nodes=expand_hostlist(nodelist),
        tasks_per_node=expand_tasks_per_node(tpn),
        ntasks=num("SLURM_STEP_NUM_TASKS") or num("SLURM_NTASKS") or num("SLURM_NPROCS"),
        procid=num("SLURM_PROCID"),
        localid=num("SLURM_LOCALID"),
        nodeid=num("SLURM_NODEID"),
        node_name=env.get("SLURMD_NODENAME"),
        cpus_per_task=num("SLURM_CPUS_PER_TASK"),
        topology_addr=env.get("SLURM_TOPOLOGY_ADDR"),
        topology_addr_pattern=env.get("SLURM_TOPOLOGY_ADDR_PATTERN"),
        submit_dir=env.get("SLURM_SUBMIT_DIR"),
        partition=env.get("SLURM_JOB_PARTITION"),
    )


def expected_world_size(env=None):
    """How many ranks the launcher started, or None when it does not say.

    mpiexec/mpirun (also inside an allocation) announce it (PMI_SIZE,
    OMPI_COMM_WORLD_SIZE); a task started by srun (SLURM_PROCID in a step) is one
    of SLURM_STEP_NUM_TASKS."""
    env = os.environ if env is None else env
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if env.get(name, "").isdigit():
            return int(env[name]), name
    if "SLURM_PROCID" in env and (env.get("SLURM_STEP_ID") or env.get("SLURM_STEPID")):
        n = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS")
        if n and n.isdigit():
            return int(n), "SLURM_STEP_NUM_TASKS"
    return None, None


class LaunchError(Error):
    """The MPI world does not match the job step Slurm started."""


def check_world(world_size, env=None):
    n, source = expected_world_size(env)
    if n is None or n == world_size:
        return
    raise LaunchError(
        f"MPI started a world of {world_size} rank(s), but {source} says this job step has {n} tasks: the MPI "
        "library did not connect to Slurm's process manager, so every task is a separate world. Launch with the "
        "PMI plugin of your MPI: `srun --mpi=pmi2` for MPICH-family MPIs (the PyPI mpich wheel included), "
        "`srun --mpi=pmix` for Open MPI (see `srun --mpi=list`), or run `mpiexec` inside the allocation.")


class Preemption:
    """What `on_preempt` installed: whether a stop was asked for, and by which signal.

    The signal handler only records (an MPI call inside a signal handler is not
    safe); the application polls at a safe point, typically after each step:

        stop = baobab.slurm.on_preempt()
        while running:
            step()
            if stop.agreed(comm):        # collective: True on every rank if any rank got the signal
                checkpoint(); sys.exit(stop.exit_code)
    """

    exit_code = 3  # "stopped early on a signal, state checkpointed": a batch script can requeue on it

    def __init__(self, signals, callback):
        self.signals = tuple(signals)
        self.callback = callback
        self.signum = None
        self.previous = {}

    @property
    def requested(self):
        return self.signum is not None

    @property
    def signal_name(self):
        import signal
        return None if self.signum is None else signal.Signals(self.signum).name

    def _handle(self, signum, frame):  # noqa: ARG002 - signal handler signature
        if self.signum is None:
            self.signum = signum
        if self.callback is not None:
            self.callback(signum)

    def agreed(self, comm=None):
        """Collective over comm (a baobab or mpi4py communicator; None: this
        process alone): True on every rank when any rank was signalled, so all
        ranks stop after the same step."""
        mine = 1 if self.requested else 0
        if comm is None or comm.size == 1:
            return bool(mine)
        import numpy as np
        if hasattr(comm, "allreduce") and hasattr(comm, "_c"):  # baobab.Communicator
            return bool(comm.allreduce(np.array([mine], np.int32), op="max")[0])
        from mpi4py import MPI
        return bool(comm.allreduce(mine, op=MPI.MAX))

    def restore(self):
        """Puts back the handlers that were there before."""
        import signal
        for s, h in self.previous.items():
            signal.signal(s, h)
        self.previous.clear()


def on_preempt(callback=None, signals=None):
    """Catches the signals Slurm sends before it stops a job (SIGTERM at the end
    of the time limit or on preemption; SIGUSR1 with `#SBATCH --signal=USR1@60`
    or `scancel --signal=USR1`) so the application can finish its step, write a
    checkpoint and exit. Returns a Preemption to poll. `callback(signum)`, if
    given, runs inside the handler (Python code only: no MPI there)."""
    import signal
    if signals is None:
        signals = (signal.SIGTERM, signal.SIGUSR1)
    p = Preemption(signals, callback)
    for s in p.signals:
        p.previous[s] = signal.signal(s, p._handle)
    return p

"""What every `baobab` command shares: the one-line usage error, argument
types (sizes with units, bounded numbers, dtype and collective names), and the
checks that need the job (a root, memory, an output path), agreed over the
communicator so that no rank is left waiting for another."""
import argparse
import math
import os
import re

from .. import _args
from .._core import coll_from_name
from .._errors import InvalidArgument
from ..dtypes import SUPPORTED, dtype_from_name


class UsageError(Exception):
    """A bad command line: printed as one line, exit status 2."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block) and goes through UsageError."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
SIZE_HELP = "a number of bytes with an optional K, M, G or T suffix (powers of 1024), e.g. 8, 64K, 1.5M"


def parse_size(s):
    """'8', '64K', '1.5M', '4G' (also '64KB', '64KiB') -> bytes, an int.
    InvalidArgument (a ValueError) for anything else: other suffixes, negative
    sizes, fractions of a byte, infinities."""
    text = str(s).strip()
    m = re.fullmatch(r"([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([KMGTkmgt]?)(?:i?[Bb])?", text)
    if not m:
        raise InvalidArgument(f"{s!r} is not a size: expected {SIZE_HELP}")
    value = float(m.group(1)) * _UNITS[m.group(2).upper()]
    if value < 0:
        raise InvalidArgument(f"{s!r}: a size cannot be negative")
    if not math.isfinite(value) or not value.is_integer():
        raise InvalidArgument(f"{s!r} is not a whole number of bytes")
    return int(value)


# ---- argument types (argparse turns their ArgumentTypeError into "argument -X: message") -------------

def size_type(minimum=1):
    """A byte size such as 8, 64K, 4M (see parse_size), at least `minimum`."""
    def parse(text):
        try:
            n = parse_size(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        if n < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be at least {minimum} byte{'s' * (minimum != 1)}")
        return n
    return parse


def size_list_type(minimum=1):
    """Comma-separated byte sizes: "8,64K,1M"."""
    one = size_type(minimum)

    def parse(text):
        parts = [p.strip() for p in str(text).split(",")]
        if not any(parts):
            raise argparse.ArgumentTypeError(f"{text!r}: expected one or more comma-separated sizes")
        return [one(p) for p in parts if p]
    return parse


def int_type(minimum, maximum=None):
    def parse(text):
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < minimum or (maximum is not None and n > maximum):
            hi = f" and at most {maximum}" if maximum is not None else ""
            raise argparse.ArgumentTypeError(f"{text!r}: must be at least {minimum}{hi}")
        return n
    return parse


def float_type(above):
    def parse(text):
        try:
            x = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(x) or x <= above:
            raise argparse.ArgumentTypeError(f"{text!r}: must be a finite number above {above:g}")
        return x
    return parse


def dtype_type(allowed=None):
    """A dtype name baobab reduces and moves (or one of `allowed`)."""
    def parse(text):
        if allowed is not None and text not in allowed:
            raise argparse.ArgumentTypeError(f"unsupported dtype {text!r}; supported: {', '.join(allowed)}")
        try:
            return dtype_from_name(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"unsupported dtype {text!r}; supported: {', '.join(SUPPORTED)}") \
                from None
    return parse


def collective_type(text):
    """A collective's name as the core knows it (its own names and aliases)."""
    try:
        coll_from_name(text)
    except InvalidArgument as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


# ---- checks that need the job -----------------------------------------------------------------

def world_size():
    """The number of ranks, known to each rank without communicating."""
    from mpi4py import MPI
    return MPI.COMM_WORLD.Get_size()


def check_root(root, what="--root"):
    """A root rank of this job (the rule of every root: baobab._args.rank)."""
    try:
        _args.rank(root, world_size(), what)
    except InvalidArgument as e:
        raise UsageError(str(e)) from None


def write_csv(path, rows):
    """A table of row dicts (the first row's keys as the header) as CSV."""
    import csv
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)


def agree(mpi_comm, problem):
    """Collective over mpi_comm: each rank brings its own problem (a message, or
    None); if any rank has one, every rank raises UsageError with the first."""
    problems = mpi_comm.allgather(problem)
    for r, msg in enumerate(problems):
        if msg:
            raise UsageError(msg if mpi_comm.Get_size() == 1 else f"{msg} (found on rank {r})")


def writable_problem(path, option, make_dirs=False, replace=False):
    """Why `path` cannot be written (None if it can): tried by opening it, so
    root's permissions, missing directories and special files all count. A file
    made by the trial is removed again. replace: the file will be written as a
    temporary file in its directory, then renamed (so that is what is tried)."""
    if os.path.isdir(path):
        return f"cannot write {option} {path}: it is a directory"
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        if not make_dirs:
            return f"cannot write {option} {path}: the directory {parent} does not exist"
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            return f"cannot write {option} {path}: {e.strerror or e}"
    trial = f"{path}.tmp{os.getpid()}" if replace else path
    existed = os.path.exists(trial)
    try:
        with open(trial, "a"):
            pass
    except OSError as e:
        return f"cannot write {option} {path}: {e.strerror or e}"
    if not existed:
        try:
            os.unlink(trial)
        except OSError:
            pass
    return None


def mem_available():
    """Bytes of memory available on this host (MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def memory_problem(need_per_rank, ranks_here, what):
    """Why `ranks_here` ranks needing `need_per_rank` bytes each do not fit this host (or None)."""
    avail = mem_available()
    if avail is None or need_per_rank * ranks_here <= 0.9 * avail:
        return None
    share = f" ({_gib(need_per_rank * ranks_here)} for the {ranks_here} ranks on this host)" if ranks_here > 1 else ""
    return f"{what} needs about {_gib(need_per_rank)} per rank{share}, more than the {_gib(avail)} this host has free"


def _gib(n):
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.1f} MiB"


def ranks_on_my_node(comm):
    t = comm.topology
    return next((len(node) for node in t.nodes if comm.rank in node), 1)

"""Argument checks shared by the Python layer: each value is checked once, and
a bad one raises InvalidArgument naming it (never a TypeError from the binding
layer, an OverflowError, or a silent truncation such as root=0.7 -> 0)."""
import math
import numbers
import operator

from ._errors import InvalidArgument


def integer(value, what):
    """An exact integer (int, numpy integer; not bool, not float, not str)."""
    if isinstance(value, bool):
        raise InvalidArgument(f"{what} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise InvalidArgument(f"{what} must be an integer, got {value!r}") from None


def rank(value, size, what="rank"):
    """A rank of a communicator of `size` ranks."""
    v = integer(value, what)
    if not 0 <= v < size:
        raise InvalidArgument(f"{what} {v} is not a rank of this communicator (0..{size - 1})")
    return v


def tag(value, tag_ub, what="tag"):
    v = integer(value, what)
    if not 0 <= v <= tag_ub:
        raise InvalidArgument(f"{what} {v} is outside 0..{tag_ub} (MPI_TAG_UB of this MPI library)")
    return v


def count(value, what):
    """A non-negative integer (a size in bytes, a number of elements)."""
    v = integer(value, what)
    if v < 0:
        raise InvalidArgument(f"{what} must not be negative, got {v}")
    return v


def timeout(value, what="timeout", *, zero_ok=False):
    """Seconds to wait: a real number > 0 (>= 0 with zero_ok), or math.inf for
    no deadline; None stays None (the communicator's BAOBAB_TIMEOUT)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(f"{what} must be a number of seconds (math.inf: no deadline), got {value!r}")
    t = float(value)
    if math.isnan(t):
        raise InvalidArgument(f"{what} is NaN: give seconds, or math.inf for no deadline")
    if t < 0 or (t == 0 and not zero_ok):
        raise InvalidArgument(f"{what}={t} must be {'0 or more' if zero_ok else 'positive'} seconds "
                              "(math.inf: no deadline)")
    return t

"""Argument checks shared by the Python layer: each value is checked once, here,
before it reaches the core, and a bad one raises InvalidArgument naming it
(never a TypeError from the binding layer, an OverflowError, or a silent
truncation such as root=0.7 -> 0). Where the core has the rule (timeouts),
these checks take the Python types and leave the values to the core's.

The binding layer keeps its own guards (shapes, counts, roots at the C++
boundary) for callers of baobab._core; the messages users see come from here."""
import numbers
import operator
import sys

from . import _core
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
    no deadline; None stays None (the communicator's BAOBAB_TIMEOUT). The
    values allowed are the core's rule (baobab::check_timeout), the same as
    BAOBAB_TIMEOUT's."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgument(f"{what} must be a number of seconds (math.inf: no deadline), got {value!r}")
    try:
        t = float(value)
    except OverflowError:  # an integer beyond any float: the core refuses it as too long
        t = sys.float_info.max if value > 0 else -sys.float_info.max
    return _core.check_timeout(what, t, zero_ok)

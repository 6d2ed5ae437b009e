"""Element types and reduction operators: the core's enumerations (baobab::DType
and baobab::RedOp, exported by the extension as ``_core.DType`` and
``_core.RedOp`` with the core's own names) matched to numpy dtypes."""
import numpy as np

try:
    from ml_dtypes import bfloat16
except ImportError:  # pragma: no cover - ml_dtypes is a dependency
    bfloat16 = None

from ._core import DType, RedOp
from ._errors import InvalidArgument


def _numpy_dtype(t):
    """The numpy dtype of a core element type (its name is numpy's), or None."""
    if t is DType.byte:  # opaque bytes: moved, never reduced; no numpy element type
        return None
    if t is DType.bfloat16:
        return None if bfloat16 is None else np.dtype(bfloat16)
    return np.dtype(t.name)


_CODES = {dt: t for t in DType if (dt := _numpy_dtype(t)) is not None}

OPS = {op.name: op for op in RedOp}

SUPPORTED = sorted(str(d) for d in _CODES)


def code_of(dtype):
    """The core's DType of a numpy dtype; InvalidArgument if unsupported."""
    try:
        return _CODES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unsupported dtype {dtype!r}; supported: {', '.join(SUPPORTED)}") from None


def op_code(op):
    """The core's RedOp of an operator name ('sum', 'prod', 'min', 'max')."""
    try:
        return OPS[op]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unknown reduction op {op!r}; known: {', '.join(OPS)}") from None


def dtype_from_name(name):
    """The numpy dtype of a supported dtype name; InvalidArgument otherwise."""
    if name == "bfloat16" and bfloat16 is not None:
        return np.dtype(bfloat16)
    try:
        dt = np.dtype(name)
    except TypeError:
        raise InvalidArgument(f"unknown dtype name {name!r}") from None
    code_of(dt)
    return dt

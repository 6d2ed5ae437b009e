"""Element types and reduction operators, as numpy dtypes and names."""
import numpy as np

try:
    from ml_dtypes import bfloat16
except ImportError:  # pragma: no cover - ml_dtypes is a dependency
    bfloat16 = None

from ._errors import InvalidArgument

# Codes shared with the core (baobab::DType).
F16, BF16, F32, F64, I8, I16, I32, I64, U8, U16, U32, U64, BYTE = range(13)

_CODES = {
    np.dtype(np.float16): F16, np.dtype(np.float32): F32, np.dtype(np.float64): F64,
    np.dtype(np.int8): I8, np.dtype(np.int16): I16, np.dtype(np.int32): I32, np.dtype(np.int64): I64,
    np.dtype(np.uint8): U8, np.dtype(np.uint16): U16, np.dtype(np.uint32): U32, np.dtype(np.uint64): U64,
}
if bfloat16 is not None:
    _CODES[np.dtype(bfloat16)] = BF16

OPS = {"sum": 0, "prod": 1, "min": 2, "max": 3}

SUPPORTED = sorted(str(d) for d in _CODES)


def code_of(dtype):
    """The core's code of a numpy dtype; InvalidArgument if unsupported."""
    try:
        return _CODES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unsupported dtype {dtype!r}; supported: {', '.join(SUPPORTED)}") from None


def op_code(op):
    try:
        return OPS[op]
    except (KeyError, TypeError):
        raise InvalidArgument(f"unknown reduction op {op!r}; known: {', '.join(OPS)}") from None


def dtype_from_name(name):
    if name == "bfloat16":
        return np.dtype(bfloat16)
    try:
        dt = np.dtype(name)
    except TypeError:
        raise InvalidArgument(f"unknown dtype name {name!r}") from None
    code_of(dt)
    return dt

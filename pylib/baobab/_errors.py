"""The exception family. Every error the core raises arrives as one of these."""
import builtins


class Error(Exception):
    """Base class of every baobab error."""


class InvalidArgument(Error, ValueError):
    """Wrong dtype, shape, layout, op, root or algorithm name."""


class MismatchError(Error):
    """Ranks disagree on a collective: which one, its count, dtype, op, root or algorithm."""


class TimeoutError(Error, builtins.TimeoutError):
    """A collective did not complete before its deadline.

    Attributes: ``op`` (the collective), ``seq`` (its sequence number on this
    communicator) and ``missing`` (ranks that had not arrived).
    """

    op = None
    seq = None
    missing = ()


class MPIError(Error):
    """The MPI library reported an error."""


class CUDAError(Error):
    """A CUDA call failed."""


class CheckpointError(Error):
    """No valid checkpoint to load, or a checkpoint failed validation or writing."""

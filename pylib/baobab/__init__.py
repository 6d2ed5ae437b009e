"""baobab: topology-aware collectives over MPI for numpy (and, on GPU builds, CUDA) arrays.

    import baobab
    comm = baobab.init()                  # or baobab.Communicator(mpi4py_comm)
    y = comm.allreduce(x, op="sum")
    comm.explain("allreduce", 1 << 20)    # candidates, predicted times, the choice
"""
from ._errors import CheckpointError, CUDAError, Error, InvalidArgument, MismatchError, MPIError, TimeoutError
from . import _loader  # noqa: F401  (refuses to import with a mismatched MPI)
from .comm import Communicator, Work, init
from .topology import Topology
from .datatype import Datatype, pack, unpack
from . import attention, slurm
from ._core import cuda_status, mpi_library_version
from ._simulate import simulate

__version__ = "0.1.0"


def algorithms():
    """Every algorithm of every collective: a list of dicts (collective, name, summary, ...)."""
    from ._core import algorithms as _a
    return _a()


def __getattr__(name):
    # baobab.io and baobab.checkpoint import h5py: loaded on first use only
    if name in ("io", "checkpoint"):
        import importlib
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'baobab' has no attribute {name!r}")


__all__ = [
    "Communicator", "Work", "init", "Topology", "algorithms", "cuda_status", "mpi_library_version", "simulate",
    "Datatype", "pack", "unpack",
    "Error", "InvalidArgument", "CheckpointError", "MismatchError", "TimeoutError", "MPIError", "CUDAError", "__version__",
]

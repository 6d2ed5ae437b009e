"""Loads the compiled core after mpi4py and checks that both use one MPI library."""
from mpi4py import MPI

from . import _errors
from . import _core

_core._set_exception_types(_errors.Error, _errors.InvalidArgument, _errors.MismatchError,
                           _errors.TimeoutError, _errors.MPIError, _errors.CUDAError)


def _first_line(s):
    return s.strip().splitlines()[0] if s.strip() else "(empty)"


def _check_same_mpi():
    core = _core.mpi_library_version()
    mpi4py_v = MPI.Get_library_version()
    if core.strip() != mpi4py_v.strip():
        raise ImportError(
            "baobab was built against a different MPI library than the one mpi4py loaded:\n"
            f"  baobab core : {_first_line(core)}\n"
            f"  mpi4py      : {_first_line(mpi4py_v)}\n"
            "Rebuild baobab in this environment (pip install --no-build-isolation --force-reinstall .) with "
            "MPICC pointing at the mpicc of the MPI that mpi4py uses, or set MPI4PY_LIBMPI to the library "
            "baobab was built with.")


_check_same_mpi()

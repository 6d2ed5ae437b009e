"""Loads the compiled core after mpi4py and checks that both use one MPI library.

(The core maps its exception classes onto baobab._errors' by itself, at import.)"""
from mpi4py import MPI

from . import _core


def _first_line(s):
    s = s.strip()
    return s.splitlines()[0].strip() if s else "(empty)"


def mpi_mismatch(build_family, build_version, runtime):
    """Why the MPI library `runtime` (MPI_Get_library_version of the library
    mpi4py loaded) cannot serve a core compiled against (build_family,
    build_version); None if it can."""
    is_ompi = "Open MPI" in runtime
    if build_family == "openmpi":
        if not is_ompi:
            return "the core was compiled against Open MPI"
        if f"v{build_version}" not in runtime:
            return f"the core was compiled against Open MPI {build_version}"
    elif build_family == "mpich":
        if is_ompi:
            return f"the core was compiled against an MPICH-family MPI ({build_version})"
        if "MPICH Version:" in runtime and build_version not in runtime:
            return f"the core was compiled against MPICH {build_version}"
    return None


def _check_same_mpi():
    family, version = _core.mpi_build()
    runtime = MPI.Get_library_version()
    why = mpi_mismatch(family, version, runtime)
    if why:
        raise ImportError(
            f"baobab cannot use the MPI library that mpi4py loaded: {why}, but mpi4py loaded "
            f"'{_first_line(runtime)}'. Rebuild baobab in this environment with the mpicc of the MPI that "
            "mpi4py uses (MPICC=/path/to/mpicc pip install --no-build-isolation --force-reinstall .), "
            "or make mpi4py load the MPI baobab was built with (MPI4PY_LIBMPI).")


_check_same_mpi()

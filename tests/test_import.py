"""The package refuses to import, with a clear message, when mpi4py loaded an MPI
library other than the one the core was compiled against."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from baobab import _core
from baobab._loader import mpi_mismatch

MPICH = "MPICH Version:      5.0.2\nMPICH Release date: Fri Sep 25 2026\n"
OMPI = "Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4, repo rev: v4.1.4, May 26, 2022"


def test_mismatch_rules():
    assert mpi_mismatch("mpich", "5.0.2", MPICH) is None
    assert mpi_mismatch("openmpi", "4.1.4", OMPI) is None
    assert "Open MPI" in mpi_mismatch("openmpi", "4.1.4", MPICH)
    assert "MPICH-family" in mpi_mismatch("mpich", "5.0.2", OMPI)
    assert "4.1.6" in mpi_mismatch("openmpi", "4.1.6", OMPI)
    assert "5.0.1" in mpi_mismatch("mpich", "5.0.1", MPICH)
    # MPICH derivatives report their own names; the ABI family is what matters
    assert mpi_mismatch("mpich", "3.4a2", "MPI VERSION    : CRAY MPICH version 8.1.28 (ANL base 3.4a2)") is None


def _other_mpi_library():
    """A libmpi of the other family than the core's, if this machine has one."""
    family, _ = _core.mpi_build()
    if family == "mpich":
        cands = ["/usr/lib/x86_64-linux-gnu/libmpi.so.40", "/usr/lib/aarch64-linux-gnu/libmpi.so.40"]
    else:
        cands = [str(p) for p in Path(sys.prefix).glob("lib/libmpi.so.12")] + \
                [str(p) for p in Path("/work").glob("*/.venv/lib/libmpi.so.12")]
        import glob
        cands += glob.glob(os.path.join(os.path.dirname(os.path.dirname(sys.executable)), "..", "*", "lib",
                                        "libmpi.so.12"))
    return next((c for c in cands if os.path.exists(c)), None)


def test_import_refuses_a_different_mpi_library():
    lib = _other_mpi_library()
    if lib is None:
        if os.environ.get("CI"):
            pytest.fail("CI installs a second MPI (Debian Open MPI); it was not found")
        pytest.skip("no second MPI library installed (apt-get install libopenmpi-dev) to load instead")
    env = dict(os.environ, MPI4PY_LIBMPI=lib, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env = {k: v for k, v in env.items() if not k.startswith(("PMI_", "PMIX_", "HYDRA_"))}
    out = subprocess.run([sys.executable, "-c", "import baobab"], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode != 0
    assert "ImportError: baobab cannot use the MPI library that mpi4py loaded" in out.stderr, out.stderr

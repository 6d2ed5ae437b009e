"""Test harness: multi-rank tests spawn mpiexec themselves, with a hard timeout
that kills the whole process group, and a clean environment (no PMI/PMIx
variables inherited from a singleton MPI_Init in the pytest process)."""
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent
MPI_DIR = HERE / "mpi"


def mpiexec_path():
    env = os.environ.get("BAOBAB_TEST_MPIEXEC")
    if env:
        return env
    venv = Path(sys.prefix) / "bin" / "mpiexec"
    if venv.exists():
        return str(venv)
    found = shutil.which("mpiexec")
    if not found:
        raise RuntimeError("no mpiexec found: set BAOBAB_TEST_MPIEXEC")
    return found


_FLAVOR = None


def mpi_flavor():
    global _FLAVOR
    if _FLAVOR is None:
        out = subprocess.run([mpiexec_path(), "--version"], capture_output=True, text=True, timeout=30)
        text = out.stdout + out.stderr
        _FLAVOR = "openmpi" if ("Open MPI" in text or "OpenRTE" in text or "open-mpi" in text) else "mpich"
    return _FLAVOR


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PMI_", "PMIX_", "OMPI_", "PRTE_", "HYDRA_", "MPIR_", "BAOBAB_"))}
    if mpi_flavor() == "openmpi":
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_mpi_yield_when_idle="1",
                   PRTE_MCA_rmaps_default_mapping_policy=":oversubscribe")
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def run_mpi(n, script, *args, env=None, timeout=120, expect_rc=0):
    """Runs `script` (a path, or Python source) on n ranks; returns the CompletedProcess.

    On timeout the process group is killed and the test fails with the output so far."""
    if isinstance(script, str) and "\n" in script:
        path = Path(os.environ.get("PYTEST_TMPDIR", "/tmp")) / f"baobab_test_{os.getpid()}_{abs(hash(script))}.py"
        path.write_text(textwrap.dedent(script))
        script = path
    cmd = [mpiexec_path(), "-n", str(n)]
    if mpi_flavor() == "openmpi":
        cmd += ["--oversubscribe"]
    cmd += [sys.executable, str(script), *map(str, args)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=clean_env(env), start_new_session=True, cwd=str(HERE))
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"mpiexec -n {n} {script} {' '.join(map(str, args))} hung for {timeout} s; output:\n{out}")
    if expect_rc is not None and proc.returncode != expect_rc:
        pytest.fail(f"mpiexec -n {n} {script} {' '.join(map(str, args))} exited with {proc.returncode} "
                    f"(expected {expect_rc}); output:\n{out}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, "")


@pytest.fixture
def mpirun():
    return run_mpi


def _app_lines(text):
    """The application's own lines: Open MPI's mpiexec adds a notice framed by
    dashed lines when a rank exits with a non-zero status; that is the
    launcher speaking, not the app."""
    out, inside = [], False
    for ln in text.strip().splitlines():
        if len(ln.strip()) >= 20 and set(ln.strip()) == {"-"}:
            inside = not inside
            continue
        if not inside and ln.strip():
            out.append(ln)
    return out


def one_error_line(text):
    """The single line of an error exit, after checking that it is the only one."""
    lines = _app_lines(text)
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]

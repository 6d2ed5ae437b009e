"""Errors across ranks: disagreements raise MismatchError on every rank naming
what differs; a rank that skips a collective produces a TimeoutError naming it
within the timeout, never a hang."""
import re

import pytest

from conftest import MPI_DIR

MISMATCH = {
    "count": "count differs",
    "count_large": "count differs",
    "dtype": "dtype differs",
    "op": "op differs",
    "root": "root differs",
    "algo": "algorithm differs",
    "collective": "collective",
}


@pytest.mark.parametrize("scenario", list(MISMATCH))
@pytest.mark.parametrize("n", [2, 3])
def test_mismatch_raises_on_every_rank(mpirun, scenario, n):
    out = mpirun(n, MPI_DIR / "errors.py", scenario, timeout=120).stdout
    for r in range(n):
        assert f"RANK {r}: PASS" in out, out
        line = next(l for l in out.splitlines() if l.startswith(f"RANK {r}: MismatchError"))
        assert MISMATCH[scenario] in line, line


@pytest.mark.parametrize("n", [2, 4])
def test_skipped_collective_times_out_naming_the_rank(mpirun, n):
    out = mpirun(n, MPI_DIR / "errors.py", "skip", env={"SCENARIO_TIMEOUT": 2}, timeout=120).stdout
    late = n - 1
    for r in range(n):
        assert f"RANK {r}: PASS" in out, out
    for r in range(late):
        lines = [l for l in out.splitlines() if l.startswith(f"RANK {r}: TimeoutError")]
        assert lines, out
        assert f"ranks that did not arrive: [{late}]" in lines[0]
        assert re.search(r"allreduce #2 did not complete within 2\.\d\d s", lines[0]), lines[0]
        assert f"missing=[{late}]" in lines[0] and "op=allreduce seq=2" in lines[0]
    # the late rank learns that the communicator failed instead of hanging
    assert any(l.startswith(f"RANK {late}: TimeoutError") for l in out.splitlines()), out


def test_nonblocking_wait_timeout(mpirun):
    out = mpirun(3, MPI_DIR / "errors.py", "skip_nonblocking", env={"SCENARIO_TIMEOUT": 2}, timeout=120).stdout
    for r in range(2):
        assert f"RANK {r}: PASS" in out
        line = next(l for l in out.splitlines() if l.startswith(f"RANK {r}: TimeoutError"))
        assert "ranks that did not arrive: [2]" in line and "within 1.0" in line, line

"""Faults of the LLM training app (apps/llm/train.py): ranks started with
different configurations (another model size, another process grid) stop at
the first collective with a MismatchError on every rank, one line and exit 2,
instead of hanging in a collective the others never join."""
import time

import pytest

from conftest import HERE

APP = HERE.parent / "apps" / "llm"
TINY = ["--layers", "2", "--width", "24", "--heads", "6", "--context", "16", "--batch", "2", "--steps", "2",
        "--dtype", "float64", "--threads", "1", "--no-ckpt"]

SCRIPT = """
import os, sys
sys.path.insert(0, {app!r})
import train
rank = int(os.environ.get("PMI_RANK", os.environ.get("OMPI_COMM_WORLD_RANK", "0")))
argv = {base!r} + ["--out", {out!r}] + ({odd!r} if rank == 1 else {even!r})
rc = train.main(argv)
sys.stdout.write(f"RC {{rank}} {{rc}}\\n")  # one write: lines of two ranks may interleave
sys.stdout.flush()
sys.exit(rc)
"""


@pytest.mark.parametrize("even, odd, what", [
    (["--dp", "2"], ["--dp", "2", "--width", "48"], "--width is 24 on rank 0 but 48 on rank(s) 1"),
    (["--dp", "2"], ["--tp", "2"], "--dp is 2 on rank 0 but 1 on rank(s) 1"),
    (["--dp", "2", "--zero", "1"], ["--dp", "2"], "--zero is 1 on rank 0 but 0 on rank(s) 1"),
])
def test_ranks_with_different_configurations_get_a_mismatch_error(mpirun, tmp_path, even, odd, what):
    t0 = time.monotonic()
    r = mpirun(2, SCRIPT.format(app=str(APP), base=TINY, out=str(tmp_path / "run"), even=even, odd=odd),
               env={"BAOBAB_TIMEOUT": "20"}, expect_rc=2, timeout=120)
    assert time.monotonic() - t0 < 15, "a rank waited for its deadline instead of seeing the mismatch"
    assert r.stdout.count("RC 0 2") == 1 and r.stdout.count("RC 1 2") == 1, r.stdout
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("llm-train")]
    assert len(lines) == 1 and what in lines[0], r.stdout

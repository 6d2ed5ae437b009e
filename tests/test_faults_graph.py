"""Faults of the graph application (apps/graph): an error found on one rank
reaches every rank as the same one-line error; a rank that stops answering
in the middle of a search is named by the others within BAOBAB_TIMEOUT; an
unusable results path fails on every rank."""
import time

from conftest import HERE, one_error_line, run_mpi

APP = HERE.parent / "apps" / "graph"


def test_bad_line_on_one_rank_is_one_error_on_every_rank(tmp_path):
    """A malformed line in the part of the file rank 2 reads: every rank stops with
    rank 0 printing one line that names rank 2, the file and the line; exit 2."""
    good = "".join(f"{i} {i + 1}\n" for i in range(40))
    (tmp_path / "E").write_text(good + "40 forty-one\n" + "".join(f"{i} {i + 2}\n" for i in range(10)))
    p = run_mpi(3, APP / "graph500.py", "--edges", tmp_path / "E", "--nbfs", 2, "--out", "-", expect_rc=2,
                timeout=120)
    line = one_error_line(p.stdout)
    assert line.startswith("graph500: rank 2: ") and "E:41" in line and "not an edge" in line, p.stdout


def test_a_stuck_rank_is_named_within_the_deadline(tmp_path):
    """Rank 1 stops answering after kernel 1; rank 0's BFS raises TimeoutError naming
    rank 1 within BAOBAB_TIMEOUT (5 s), not a hang. Rank 0 writes what it saw to a
    file before MPI_Abort ends the sleeping rank: the launcher may kill the job
    before it forwards rank 0's last stdout line, and the caller of MPI_Abort
    may run on for a moment before it is killed."""
    res = tmp_path / "result"
    code = f"""
import sys, time
sys.path.insert(0, {str(APP)!r})
from mpi4py import MPI
import baobab, bfs, dgraph, kronecker
comm = baobab.Communicator(MPI.COMM_WORLD)
n, s, d, w = kronecker.kronecker(comm, 10, 16, 2)
g = dgraph.build(comm, n, s, d, w)
if comm.rank == 1:
    time.sleep(60)
    sys.exit(0)
t = time.perf_counter()
try:
    bfs.bfs(g, 0 if g.deg[0] else int(kronecker.search_keys(3, g.deg, 1)[0]))
except baobab.TimeoutError as e:
    with open({str(res)!r}, "w") as f:
        f.write(f"TIMEOUT after {{time.perf_counter() - t:.1f}} s missing={{e.missing}}")
    MPI.COMM_WORLD.Abort(3)
else:
    with open({str(res)!r}, "w") as f:
        f.write("NO TIMEOUT")
"""
    t = time.time()
    p = run_mpi(2, code, env={"BAOBAB_TIMEOUT": "5"}, expect_rc=None, timeout=60)
    seen = res.read_text() if res.exists() else "(rank 0 wrote nothing)"
    assert "TIMEOUT after" in seen and "missing=[1]" in seen, (seen, p.stdout)
    assert time.time() - t < 45


def test_unusable_results_path_fails_on_every_rank(tmp_path):
    bad = tmp_path / "no" / "such" / "dir" / "g.h5"
    p = run_mpi(2, APP / "graph500.py", "--scale", 8, "--nbfs", 2, "--no-sssp", "--out", bad, expect_rc=None,
                timeout=120)
    assert p.returncode != 0, p.stdout
    assert "Traceback" not in p.stdout, p.stdout
    assert str(bad.parent) in p.stdout or "g.h5" in p.stdout, p.stdout

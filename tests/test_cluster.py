"""A real cluster on this machine (slurm/testbed/cluster.sh): Slurm daemons with
virtual nodes, hosts in network namespaces joined by shaped links, MPI across
them. These need root and the packages `cluster.sh install` brings; CI runs
them (there a missing prerequisite is a failure, not a skip)."""
import csv
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

from baobab import _core
from conftest import HERE, MPI_DIR, clean_env, mpiexec_path

REPO = HERE.parent
CLUSTER = REPO / "slurm" / "testbed" / "cluster.sh"
BASE = Path(os.environ.get("BAOBAB_TESTBED", "/tmp/baobab-testbed-tests"))
PY = sys.executable
BIN = Path(sys.prefix) / "bin"
FAMILY = _core.mpi_build()[0]  # which MPI this baobab is built with


def _prerequisites():
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces, daemons)")
    for tool in ("slurmctld", "slurmd", "munged", "sbatch", "ip", "tc", "nsenter"):
        if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists():
            missing.append(tool)
    return missing


MISSING = _prerequisites()
if MISSING and os.environ.get("CI"):
    raise RuntimeError(f"the cluster tests need {', '.join(MISSING)}: .ci/run installs them (cluster.sh install)")
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs root and Slurm/netns tools: missing {MISSING}")


def sh(*args, env=None, timeout=120, check=True):
    e = dict(os.environ, BASE=str(BASE))
    e.update(env or {})
    out = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=e, timeout=timeout)
    if check and out.returncode != 0:
        raise AssertionError(f"{args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def mpi_env(extra=None):
    env = clean_env(extra)
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def slurm():
    sh(CLUSTER, "down", check=False)
    out = sh(CLUSTER, "slurm-up", "2", timeout=120)
    conf = re.search(r"SLURM_CONF=(\S+)", out.stdout).group(1)
    yield {"SLURM_CONF": conf}
    sh(CLUSTER, "down", check=False)


@pytest.fixture
def hosts(request):
    n, rate = request.param
    sh(CLUSTER, "down", check=False)
    sh(CLUSTER, "ns-up", n, *( [rate] if rate else [] ), timeout=60)
    yield BASE / "ns" / "nsrsh"
    sh(CLUSTER, "down", check=False)


# The states of a job not yet ended (scontrol's JobState).
_LIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
         "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"}


def sbatch_wait(*args, env=None, timeout=300, run=None):
    """What `sbatch --wait ARGS` does, without its delay: sbatch --wait looks
    at the job at growing intervals (2 s, then 8 s, then 32 s), so a job of
    10 s returned after about 40. Submits, then reads the job's state every
    0.2 s until it ends. Returns sbatch's output; fails unless the job
    completed with exit code 0 (as sbatch --wait does). `run(argv)` runs a
    command (default: here, with `env`)."""
    run = run or (lambda argv: sh(*argv, env=env, check=False, timeout=60))
    out = run(["sbatch", *[str(a) for a in args]])
    assert out.returncode == 0, f"sbatch {args} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}"
    job = re.search(r"Submitted batch job (\d+)", out.stdout).group(1)
    deadline = time.time() + timeout
    while True:
        info = run(["scontrol", "-o", "show", "job", job]).stdout
        state = re.search(r"JobState=(\w+)", info)
        if state and state.group(1) not in _LIVE:
            break
        assert time.time() < deadline, f"job {job} not ended after {timeout} s: {info}"
        time.sleep(0.2)
    code = re.search(r"ExitCode=(\d+:\d+)", info)
    if state.group(1) != "COMPLETED" or not code or code.group(1) != "0:0":
        raise AssertionError(f"job {job} ended {state.group(1)}, exit code {code.group(1) if code else '?'}:\n{info}")
    return out


def srun_flag():
    return "--mpi=pmi2" if FAMILY == "mpich" else "--mpi=pmix"


def test_sbatch_runs_info_and_an_allreduce_across_two_nodes(slurm, tmp_path):
    script = tmp_path / "job.sbatch"
    script.write_text(f"""#!/bin/bash
#SBATCH --job-name=bbt
#SBATCH --nodes=2
#SBATCH --ntasks=4
#SBATCH --output={tmp_path}/%x-%j.out
srun {srun_flag()} {BIN}/baobab info
srun {srun_flag()} {PY} -c "
import numpy as np, baobab
c = baobab.init(timeout=60)
y = c.allreduce(np.full(1 << 16, c.rank + 1.0))
assert (y == sum(range(1, c.size + 1))).all()
if c.rank == 0: print('ALLREDUCE OK', c.size, 'ranks', c.topology.num_nodes, 'nodes')
"
""")
    out = sbatch_wait(script, env={**mpi_env(), **slurm}, timeout=300)
    job = re.search(r"Submitted batch job (\d+)", out.stdout).group(1)
    text = (tmp_path / f"bbt-{job}.out").read_text()
    assert "topology: 4 ranks, 2 nodes" in text, text
    assert "ALLREDUCE OK 4 ranks 2 nodes" in text, text


def test_srun_collectives_on_virtual_nodes(slurm):
    out = sh("srun", "-N", "2", "-n", "4", srun_flag(), PY, MPI_DIR / "collectives.py", "quick",
             env={**mpi_env(), **slurm}, timeout=600)
    assert "OK collectives p=4" in out.stdout, out.stdout + out.stderr


def test_wrong_pmi_plugin_is_detected(slurm):
    """MPICH under a wrong plugin starts every task as a world of 1 without
    complaint: baobab refuses it. Open MPI fails in MPI_Init by itself."""
    out = sh("srun", "-N", "2", "-n", "2", "--mpi=none", PY, "-c",
             "import baobab\ntry:\n    baobab.init()\nexcept baobab.slurm.LaunchError as e:\n    print('REFUSED', e)\n",
             env={**mpi_env(), **slurm}, timeout=120, check=False)
    if FAMILY == "mpich":
        assert out.stdout.count("REFUSED") == 2, out.stdout + out.stderr
        assert "--mpi=pmi2" in out.stdout
    else:
        assert out.returncode != 0 and "MPI_Init" in out.stdout + out.stderr, out.stdout + out.stderr


def _job_done(job, env):
    out = sh("squeue", "-h", "-j", job, "-o", "%T", env=env, check=False)
    return out.stdout.strip() == ""


def test_nbody_job_preempted_by_signal_checkpoints_and_resumes(slurm, tmp_path):
    """slurm/nbody.sbatch on 2 ranks: `scancel --signal=USR1` mid-run makes the
    ranks finish the block step, write a checkpoint and exit with status 3; a
    resubmitted job continues from it and ends with the same final snapshot,
    bit for bit, as an uninterrupted job."""
    import h5py
    import numpy as np
    env = {**mpi_env({"BAOBAB_VENV": sys.prefix, "BAOBAB_APPS": str(REPO / "apps"), "NBODY_REQUEUE": "0",
                      "BAOBAB_SRUN_MPI": srun_flag().split("=")[1]}), **slurm}
    script = REPO / "slurm" / "nbody.sbatch"
    args = ["--n", "2048", "--t-end", "1", "--dt-out", "0.125", "--threads", "1", "--no-core"]
    sb = ["sbatch", "-N", "1", "-n", "2", f"--output={tmp_path}/%x-%j.out", "--chdir", str(tmp_path)]

    run = tmp_path / "run"
    out = sh(*sb, script, *args, "--out", run, env=env)
    job = re.search(r"Submitted batch job (\d+)", out.stdout).group(1)
    deadline = time.time() + 300
    while not (run / "snapshot_0001.h5").exists():
        assert time.time() < deadline and not _job_done(job, env), \
            (tmp_path / f"baobab-nbody-{job}.out").read_text() if (tmp_path / f"baobab-nbody-{job}.out").exists() else job
        time.sleep(0.2)
    sh("scancel", "--signal=USR1", job, env=env)
    while not _job_done(job, env):
        assert time.time() < deadline
        time.sleep(0.5)
    first = (tmp_path / f"baobab-nbody-{job}.out").read_text()
    assert "nbody: exit status 3" in first and "checkpoint" in first and "SIGUSR1" in first, first
    assert not (run / "snapshot_0008.h5").exists(), "the job finished before the signal: make it longer"
    assert list((run / "checkpoints").glob("nbody-*.h5"))

    out = sbatch_wait(*sb[1:], script, *args, "--out", run, env=env, timeout=600)
    job2 = re.search(r"Submitted batch job (\d+)", out.stdout).group(1)
    second = (tmp_path / f"baobab-nbody-{job2}.out").read_text()
    assert "resumed from" in second and "nbody: exit status 0" in second, second

    ref = tmp_path / "ref"
    sbatch_wait(*sb[1:], script, *args, "--out", ref, env=env, timeout=600)
    with h5py.File(run / "snapshot_0008.h5", "r") as a, h5py.File(ref / "snapshot_0008.h5", "r") as b:
        for k in ("Coordinates", "Velocities", "Potential", "ParticleIDs"):
            assert np.array_equal(a["PartType1"][k][:], b["PartType1"][k][:]), k
        assert a["Header"].attrs["Time"] == 1.0


def test_llm_job_preempted_by_signal_checkpoints_and_resumes(slurm, tmp_path):
    """slurm/llm.sbatch on 2 ranks (--dp 2 --zero 1): `scancel --signal=USR1`
    mid-run makes the ranks finish the step, write a checkpoint and exit with
    status 3; a resubmitted job resumes from it and ends with the same losses and
    the same final parameters and optimizer state, bit for bit, as an
    uninterrupted job."""
    import h5py
    import numpy as np
    env = {**mpi_env({"BAOBAB_VENV": sys.prefix, "BAOBAB_APPS": str(REPO / "apps"), "LLM_REQUEUE": "0",
                      "BAOBAB_SRUN_MPI": srun_flag().split("=")[1]}), **slurm}
    script = REPO / "slurm" / "llm.sbatch"
    args = ["--dp", "2", "--zero", "1", "--layers", "2", "--width", "24", "--heads", "3", "--context", "16",
            "--batch", "2", "--dtype", "float64", "--threads", "1", "--steps", "400", "--eval-every", "5",
            "--eval-batches", "1", "--warmup", "5"]
    sb = ["sbatch", "-N", "1", "-n", "2", f"--output={tmp_path}/%x-%j.out", "--chdir", str(tmp_path)]

    run = tmp_path / "run"
    out = sh(*sb, script, *args, "--out", run, env=env)
    job = re.search(r"Submitted batch job (\d+)", out.stdout).group(1)
    log = tmp_path / f"baobab-llm-{job}.out"
    deadline = time.time() + 300
    while not (run / "metrics.h5").exists():  # written at the first validation (step 5)
        assert time.time() < deadline and not _job_done(job, env), log.read_text() if log.exists() else job
        time.sleep(0.2)
    sh("scancel", "--signal=USR1", job, env=env)
    while not _job_done(job, env):
        assert time.time() < deadline
        time.sleep(0.5)
    first = log.read_text()
    assert "llm: exit status 3" in first and "SIGUSR1 received: checkpoint at step" in first, first
    assert "step 400/400" not in first, "the job finished before the signal: make it longer"
    assert list((run / "ckpt").glob("llm-*.h5"))

    out = sbatch_wait(*sb[1:], script, *args, "--out", run, env=env, timeout=600)
    job2 = re.search(r"Submitted batch job (\d+)", out.stdout).group(1)
    second = (tmp_path / f"baobab-llm-{job2}.out").read_text()
    assert "resumed at step" in second and "llm: exit status 0" in second, second

    ref = tmp_path / "ref"
    sbatch_wait(*sb[1:], script, *args, "--out", ref, env=env, timeout=600)
    with h5py.File(run / "metrics.h5", "r") as a, h5py.File(ref / "metrics.h5", "r") as b:
        assert np.array_equal(a["train/step"][()], np.arange(400))
        assert np.array_equal(a["train/loss"][()], b["train/loss"][()])
    (fa,), (fb,) = sorted((run / "ckpt").glob("llm-*.h5"))[-1:], sorted((ref / "ckpt").glob("llm-*.h5"))[-1:]
    with h5py.File(fa, "r") as a, h5py.File(fb, "r") as b:
        assert a.attrs["step"] == b.attrs["step"] == 400
        names = list(b["distributed"])
        assert any(n.startswith("v.") for n in names)
        for n in names:
            assert np.array_equal(a["distributed"][n][()], b["distributed"][n][()]), n


def test_graph500_job_on_two_nodes_prints_the_block_and_writes_results(slurm, tmp_path):
    """slurm/graph.sbatch on 2 virtual nodes x 2 ranks: the Graph500 statistics
    block in the job's output (validated searches), the results file, and levels
    equal to scipy's for every key."""
    import h5py
    import numpy as np
    import scipy.sparse as sp
    from scipy.sparse.csgraph import shortest_path
    sys.path.insert(0, str(REPO / "apps" / "graph"))
    import graph500
    import kronecker
    env = {**mpi_env({"BAOBAB_VENV": sys.prefix, "BAOBAB_APPS": str(REPO / "apps"),
                      "BAOBAB_SRUN_MPI": srun_flag().split("=")[1]}), **slurm}
    out = sbatch_wait("-N", "2", "--ntasks-per-node=2", f"--output={tmp_path}/%x-%j.out", "--chdir",
                      str(tmp_path), REPO / "slurm" / "graph.sbatch", "--scale", "11", "--nbfs", "4", "--no-sssp",
                      env=env, timeout=300)
    job = re.search(r"Submitted batch job (\d+)", out.stdout).group(1)
    text = (tmp_path / f"baobab-graph-{job}.out").read_text()
    assert "graph: exit status 0" in text, text
    st = graph500.parse_block(text)
    assert st["SCALE"] == 11 and st["NBFS"] == 4 and st["num_mpi_processes"] == 4, text
    assert st["bfs harmonic_mean_TEPS"] > 0 and st["bfs max_validate"] > 0, text
    with h5py.File(tmp_path / f"graph500-{job}.h5") as f:
        keys, parents = f["keys"][()], f["bfs/parent"][()]
    s, d, _ = kronecker.kronecker_slice(11, 16, 2, 0, 16 << 11, weights=False)
    A = sp.coo_matrix((np.ones(s.size), (s, d)), shape=(2048, 2048)).tocsr()
    for i, k in enumerate(keys):
        ref = shortest_path(A + A.T, indices=int(k), unweighted=True)
        lv = np.full(2048, -1, np.int64)
        assert kronecker.K.bfs_levels(np.ascontiguousarray(parents[:, i]), int(k), lv) == ""
        assert np.array_equal(lv, np.where(np.isinf(ref), -1, ref).astype(np.int64))


def launch(nsrsh, hostspec, n, *cmd, timeout=300, env=None):
    """mpiexec from host1's namespace over the given hosts, as a real multi-host run."""
    envs = " ".join(f"{k}={v}" for k, v in (env or {}).items())
    launcher = mpiexec_path()  # the launcher of the MPI this baobab is built with
    if FAMILY == "mpich":
        line = f"{envs} {launcher} -launcher ssh -launcher-exec {nsrsh} -hosts {hostspec} -n {n} " + " ".join(map(str, cmd))
    else:
        hosts = hostspec
        line = (f"{envs} OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 {launcher} --host {hosts} -n {n} "
                f"--mca plm_rsh_agent {nsrsh} --mca btl self,vader,tcp --mca btl_tcp_if_include eth0 "
                f"--mca oob_tcp_if_include eth0 --mca mpi_yield_when_idle 1 " + " ".join(map(str, cmd)))
    return subprocess.run([str(nsrsh), "host1", f"cd {HERE} && PATH={BIN}:$PATH PYTHONPATH={HERE} {line}"],
                          capture_output=True, text=True, timeout=timeout, env=mpi_env())


@pytest.mark.parametrize("hosts, spec, n", [((2, None), "host1:2,host2:2", 4), ((4, None), "host1:1,host2:1,host3:1,host4:1", 4)],
                         indirect=["hosts"], ids=["2x2", "4x1"])
def test_collectives_across_namespace_hosts(hosts, spec, n):
    out = launch(hosts, spec, n, PY, MPI_DIR / "collectives.py", "quick")
    assert f"OK collectives p={n}" in out.stdout, out.stdout + out.stderr
    info = launch(hosts, spec, n, BIN / "baobab", "info")
    nodes = len(spec.split(","))
    assert f"topology: {n} ranks, {nodes} nodes (detected" in info.stdout, info.stdout + info.stderr
    assert "host2" in info.stdout


@pytest.mark.parametrize("hosts", [(2, "200mbit")], indirect=True, ids=["200mbit"])
def test_shaped_link_limits_mpi_traffic(hosts):
    code = """
import time, numpy as np
from mpi4py import MPI
c = MPI.COMM_WORLD
buf = np.zeros(8 << 20, np.uint8)
c.Barrier()
t0 = time.perf_counter()
for _ in range(3):
    if c.rank == 0:
        c.Send(buf, 1)
        c.Recv(buf[:1], 1)
    else:
        c.Recv(buf, 0)
        c.Send(buf[:1], 0)
el = time.perf_counter() - t0
if c.rank == 0:
    print("MBITS", 3 * buf.nbytes * 8 / el / 1e6)
"""
    path = Path("/tmp") / "baobab_shaped_link.py"
    path.write_text(code)
    out = launch(hosts, "host1:1,host2:1", 2, PY, path)
    m = re.search(r"MBITS ([\d.]+)", out.stdout)
    assert m, out.stdout + out.stderr
    rate = float(m.group(1))
    assert 50 < rate < 200 * 1.05, rate  # below the cap (and clearly flowing)


@pytest.mark.parametrize("hosts", [(4, "1gbit,1gbit,1gbit,250mbit")], indirect=True, ids=["3x1gbit+250mbit"])
def test_uneven_host_links_are_measured_and_traffic_follows_them(hosts, tmp_path):
    """Four hosts, one whose link is 4x slower. `baobab tune` must find each
    host's own rate (a pair runs at its slower end's rate: the tournament of
    node leaders tells them apart); the model then sizes blocks to the rates
    (the slow host owns none and exchanges the vector once each way with one
    partner), and the allreduce across the real hosts is exact."""
    spec = "host1:1,host2:1,host3:1,host4:1"
    tuning = tmp_path / "tuning.conf"
    out = launch(hosts, spec, 4, BIN / "baobab", "tune", "-o", tuning, "--reps", "8", "--pack-bytes", "0")
    assert out.returncode == 0 and tuning.exists(), out.stdout + out.stderr
    text = tuning.read_text()
    rate = {h: float(v) for h, v in re.findall(r"host\.(host\d)\.bw_GBps\s*=\s*([\d.eE+-]+)", text)}
    assert sorted(rate) == ["host1", "host2", "host3", "host4"], text
    fast = [rate[f"host{i}"] for i in (1, 2, 3)]
    assert all(0.08 < r < 0.2 for r in fast), text  # 1 Gbit/s = 0.125 GB/s (+ burst)
    assert rate["host4"] < 0.5 * min(fast), text     # 250 Mbit/s = 0.031 GB/s
    env = {"BAOBAB_TUNING": tuning}
    explain = launch(hosts, spec, 4, BIN / "baobab", "explain", "allreduce", "16M", env=env)
    assert explain.returncode == 0, explain.stdout + explain.stderr
    pred = {m.group(1): m.group(2) for m in re.finditer(r"^[ *] (\w+)\s+([\d.]+ m?s)", explain.stdout, re.M)}
    assert "weighted" in pred, explain.stdout  # considered: the links differ
    bench = launch(hosts, spec, 4, BIN / "baobab", "bench", "allreduce", "-b", "4M", "-e", "4M", "-n", "2", "-w", "1",
                   "--algo", "weighted", "--csv", tmp_path / "w.csv", env=env)
    assert "# out of bounds values : 0 OK" in bench.stdout, bench.stdout + bench.stderr
    rows = list(csv.DictReader(open(tmp_path / "w.csv")))
    assert rows and all(int(r["wrong"]) == 0 for r in rows)


def _model_check(sweep, least_rows, sweeps=2, most_sweeps=3):
    """The model's relative errors against `bench --algo all` sweeps; `sweep(i)`
    runs sweep i and returns (completed process, CSV path). Each row's time is
    the best of the sweeps (noise on a shared machine only ever adds time).
    When the bounds fail after `sweeps` sweeps, one more is run (up to
    `most_sweeps`): a row slowed by a neighbour's burst gets another sample,
    while a row the model really mispredicts stays wrong in every sweep. Fails
    with the table when the validation or the error bounds fail (median under
    10 %, worst under 25 %: the issue's targets)."""
    best = {}

    def add(out, path):
        assert "# out of bounds values : 0 OK" in out.stdout, out.stdout + out.stderr
        for r in csv.DictReader(open(path)):
            assert int(r["wrong"]) == 0, r
            key = (r["size"], r["requested"])
            if key not in best or float(r["time_us"]) < float(best[key]["time_us"]):
                best[key] = r

    done = 0
    while True:
        while done < sweeps:
            add(*sweep(done))
            done += 1
        rows = list(best.values())
        errs = [abs(float(r["model_us"]) - float(r["time_us"])) / float(r["time_us"]) for r in rows]
        median = statistics.median(errs)
        if (median < 0.10 and max(errs) < 0.25) or done >= most_sweeps:
            break
        sweeps += 1
    table = "\n".join(f"{r['size']:>9} {r['algo']:>34} measured {float(r['time_us']) / 1e3:9.2f} ms model "
                      f"{float(r['model_us']) / 1e3:9.2f} ms error {e * 100:5.1f} %" for r, e in zip(rows, errs))
    assert len(rows) >= least_rows, table
    assert median < 0.10 and max(errs) < 0.25, \
        f"median {median * 100:.1f} %, worst {max(errs) * 100:.1f} % (best of {done} sweeps)\n{table}"
    return rows, errs


@pytest.mark.parametrize("hosts", [(2, "1gbit")], indirect=True, ids=["2x2-1gbit"])
def test_model_predicts_every_allreduce_across_shaped_hosts(hosts, tmp_path):
    """The cost model against the real thing: two hosts of two ranks joined by
    1 Gbit/s links. `baobab tune` measures the job; every allreduce algorithm
    then runs at 4 and 16 MiB (best of two sweeps, a third when a bound
    fails) and its measured time is
    compared with the model's prediction for it (replayed in full, as explain
    prints it)."""
    spec = "host1:2,host2:2"
    tuning = tmp_path / "tuning.conf"
    out = launch(hosts, spec, 4, BIN / "baobab", "tune", "-o", tuning, "--pack-bytes", "0")
    assert out.returncode == 0 and tuning.exists(), out.stdout + out.stderr
    text = tuning.read_text()
    bw = float(re.search(r"link\.1\.bw_GBps\s*=\s*([\d.eE+-]+)", text).group(1))
    # a stream's rate: the link's 0.125 GB/s, not the token bucket's burst on top
    assert 0.09 < bw < 0.135, text

    def sweep(i):
        path = tmp_path / f"all{i}.csv"
        return launch(hosts, spec, 4, BIN / "baobab", "bench", "allreduce", "-b", "4M", "-e", "16M", "-f", "4",
                      "--algo", "all", "-n", "2", "-w", "1", "--no-mpi", "--csv", path,
                      env={"BAOBAB_TUNING": tuning}), path

    _model_check(sweep, least_rows=12)


@pytest.fixture
def racks():
    sh(CLUSTER, "down", check=False)
    sh(CLUSTER, "racks-up", "2", "2", "", "1gbit", timeout=60)
    yield BASE / "ns" / "nsrsh"
    sh(CLUSTER, "down", check=False)


def test_racks_give_three_levels_and_collectives_run_on_them(racks):
    """Two racks joined by one shaped link, declared as a level over the real
    hosts: node, rack, top. The collective suite runs every algorithm on it."""
    spec = "host1:2,host2:2,host3:2,host4:2"
    env = {"BAOBAB_TOPOLOGY": "rack=2"}
    info = launch(racks, spec, 8, BIN / "baobab", "info", env=env)
    assert "topology: 8 ranks, 4 nodes, 2 rack groups" in info.stdout, info.stdout + info.stderr
    out = launch(racks, spec, 8, PY, MPI_DIR / "collectives.py", "quick", env=env, timeout=900)
    assert "OK collectives p=8" in out.stdout, out.stdout + out.stderr



@pytest.fixture
def ns_slurm():
    """Slurm across namespace hosts joined by 1 Gbit/s links (ns-up + ns-slurm-up)."""
    sh(CLUSTER, "down", check=False)
    sh(CLUSTER, "ns-up", 2, "1gbit", timeout=60)
    out = sh(CLUSTER, "ns-slurm-up", timeout=120)
    conf = re.search(r"SLURM_CONF=(\S+)", out.stdout).group(1)
    yield BASE / "ns" / "nsrsh", conf
    sh(CLUSTER, "down", check=False)


def test_tune_and_bench_sbatch_on_slurm_across_namespace_hosts(ns_slurm, tmp_path):
    """The product's own scripts on a Slurm cluster whose nodes are real hosts
    (namespaces, shaped links): srun runs `baobab tune` across them, and
    slurm/bench.sbatch reads that tuning file, benchmarks and writes its CSV."""
    nsrsh, conf = ns_slurm
    flag = srun_flag()
    tuning = tmp_path / "tuning.conf"
    env = (f"SLURM_CONF={conf} PATH={BIN}:$PATH BAOBAB_VENV={sys.prefix} BAOBAB_SRUN_MPI={flag.split('=')[1]} "
           f"BAOBAB_TUNING={tuning}")
    out = subprocess.run([str(nsrsh), "ctl", f"cd {tmp_path} && {env} srun -N 2 -n 4 {flag} {BIN}/baobab tune "
                          f"-o {tuning}"], capture_output=True, text=True, timeout=300, env=mpi_env())
    assert out.returncode == 0 and tuning.exists(), out.stdout + out.stderr
    text = tuning.read_text()
    assert "link.1.bw_GBps" in text, text
    bw = float(re.search(r"link\.1\.bw_GBps\s*=\s*([\d.eE+-]+)", text).group(1))
    assert bw < 0.2, f"between hosts the 1 Gbit/s link caps bandwidth at 0.125 GB/s (+ burst), tuned {bw}"
    def in_ctl(argv):  # a command on the cluster's control host
        return subprocess.run([str(nsrsh), "ctl", f"cd {tmp_path} && {env} {shlex.join(argv)}"],
                              capture_output=True, text=True, timeout=60, env=mpi_env())
    out = sbatch_wait("-N", "2", "-n", "4", f"--output={tmp_path}/%x-%j.out", REPO / "slurm" / "bench.sbatch",
                      "allreduce", "-b", "64K", "-e", "1M", "-n", "2", "-w", "1", timeout=600, run=in_ctl)
    job = re.search(r"Submitted batch job (\d+)", out.stdout).group(1)
    table = (tmp_path / f"baobab-bench-{job}.out").read_text()
    assert "4 ranks, 2 nodes" in table and "# out of bounds values : 0 OK" in table, table
    rows = list(csv.DictReader(open(tmp_path / f"bench-allreduce-{job}.csv")))
    assert len(rows) >= 3 and all(int(r["wrong"]) == 0 for r in rows)

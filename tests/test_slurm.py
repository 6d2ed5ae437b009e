"""Slurm environment parsing and the launch check (real srun/sbatch runs are in
the cluster testbed tests)."""
import subprocess
import sys

import pytest

import baobab
from baobab.slurm import environment, expand_hostlist, expand_tasks_per_node, expected_world_size


@pytest.mark.parametrize("spec, names", [
    ("n[1-3,7]", ["n1", "n2", "n3", "n7"]),
    ("gpu[08-10],login", ["gpu08", "gpu09", "gpu10", "login"]),
    ("rack[1-2]-node[01-02]", ["rack1-node01", "rack1-node02", "rack2-node01", "rack2-node02"]),
    ("host1", ["host1"]),
    ("", []),
])
def test_expand_hostlist(spec, names):
    assert expand_hostlist(spec) == names


@pytest.mark.parametrize("bad", ["n[1-3", "n1-3]", "n[3-1]", "n[a-b]"])
def test_bad_hostlists(bad):
    with pytest.raises(baobab.InvalidArgument):
        expand_hostlist(bad)


def test_tasks_per_node():
    assert expand_tasks_per_node("2(x3),1") == [2, 2, 2, 1]
    assert expand_tasks_per_node("4") == [4]
    with pytest.raises(baobab.InvalidArgument):
        expand_tasks_per_node("2(y3)")


def test_environment_of_a_step():
    env = {"SLURM_JOB_ID": "77", "SLURM_JOB_NODELIST": "n[1-2]", "SLURM_STEP_NODELIST": "n[1-2]",
           "SLURM_TASKS_PER_NODE": "3,1", "SLURM_STEP_NUM_TASKS": "4", "SLURM_NTASKS": "4", "SLURM_PROCID": "3",
           "SLURM_LOCALID": "0", "SLURM_NODEID": "1", "SLURM_STEP_ID": "0", "SLURM_TOPOLOGY_ADDR": "s0.n2",
           "SLURMD_NODENAME": "n2"}
    e = environment(env)
    assert e.in_job and e.job_id == "77" and e.nodes == ["n1", "n2"] and e.tasks_per_node == [3, 1]
    assert (e.ntasks, e.procid, e.localid, e.nodeid, e.node_name) == (4, 3, 0, 1, "n2")
    assert e.topology_addr == "s0.n2"
    assert not environment({}).in_job


def test_expected_world_size():
    assert expected_world_size({"PMI_SIZE": "4", "SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": "0",
                                "SLURM_STEP_ID": "0"}) == (4, "PMI_SIZE")  # mpiexec inside an allocation
    assert expected_world_size({"SLURM_STEP_NUM_TASKS": "4", "SLURM_PROCID": "1", "SLURM_STEP_ID": "3"}) == \
        (4, "SLURM_STEP_NUM_TASKS")
    assert expected_world_size({"SLURM_NTASKS": "4"}) == (None, None)  # the batch script itself, not a task


def test_singleton_started_by_srun_is_refused():
    """What a wrong `srun --mpi=` plugin produces: a task of a 4-task step alone in a world of 1."""
    env = {"SLURM_JOB_ID": "1", "SLURM_STEP_ID": "0", "SLURM_PROCID": "2", "SLURM_STEP_NUM_TASKS": "4"}
    code = ("import baobab\ntry:\n    baobab.init()\nexcept baobab.slurm.LaunchError as e:\n    print('REFUSED', e)\n")
    import os
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**{k: v for k, v in os.environ.items() if not k.startswith(("PMI", "OMPI_", "SLURM"))},
                              **env})
    assert "REFUSED" in out.stdout, out.stdout + out.stderr
    assert "srun --mpi=pmi2" in out.stdout and "world of 1 rank" in out.stdout


# ---- host lists against Slurm's own expansion (`scontrol show hostnames`) --------------------

SLURM_ORDER_CASES = [
    # several bracket groups: Slurm loops over the second-to-last group outermost, then the
    # groups before it towards the first, and the last group innermost
    ("x[1-2]y[1-2]z[1-2]", "x1y1z1 x1y1z2 x2y1z1 x2y1z2 x1y2z1 x1y2z2 x2y2z1 x2y2z2"),
    ("x[1-2]y[3,5-6]z[7-8]", "x1y3z7 x1y3z8 x2y3z7 x2y3z8 x1y5z7 x1y5z8 x2y5z7 x2y5z8 "
                             "x1y6z7 x1y6z8 x2y6z7 x2y6z8"),
    ("n[1-2]-a[1-2]-b[1-2]-c[1-2]", "n1-a1-b1-c1 n1-a1-b1-c2 n2-a1-b1-c1 n2-a1-b1-c2 n1-a2-b1-c1 n1-a2-b1-c2 "
                                    "n2-a2-b1-c1 n2-a2-b1-c2 n1-a1-b2-c1 n1-a1-b2-c2 n2-a1-b2-c1 n2-a1-b2-c2 "
                                    "n1-a2-b2-c1 n1-a2-b2-c2 n2-a2-b2-c1 n2-a2-b2-c2"),
    ("n[1-2][3-4]", "n13 n14 n23 n24"),
    # spaces and tabs separate names as commas do; empty names vanish
    ("n1 n2\tn3", "n1 n2 n3"),
    (" n[1-2] , m[5,7],,", "n1 n2 m5 m7"),
    # padding is the width of a range's first number; order inside brackets is kept; no dedup
    ("n[001-3],n[1-003],n[9-11],n[099-101]", "n001 n002 n003 n1 n2 n3 n9 n10 n11 n099 n100 n101"),
    ("n[3,1-2],n1,n1", "n3 n1 n2 n1 n1"),
]


@pytest.mark.parametrize("spec, names", SLURM_ORDER_CASES)
def test_expand_hostlist_in_slurms_order(spec, names):
    """The orders recorded from `scontrol show hostnames` (Slurm 22.05); the test below
    compares against scontrol itself where it is installed."""
    assert expand_hostlist(spec) == names.split()


@pytest.mark.parametrize("bad", ["gpu[08-10]-a", "a[1-2]b[1-2]c", "n[]", "n[-2]", "n[1-2-3]", "n[1,,2]",
                                 "n[[1-2]]", "n[1-2]]", "n[1x]", "n[1-65537]", "n[ 1-2]", "n[+1-2]", "n[1",
                                 "n1\nn2", "n1]"])
def test_host_lists_slurm_refuses_or_mangles_are_refused(bad):
    """Slurm refuses these, or makes names holding a bracket, a space or a newline
    (n[ 1-2] -> "n01 n02", n[1 -> "n]", n1\\nn2 -> one name with a newline)."""
    with pytest.raises(baobab.InvalidArgument, match="host list"):
        expand_hostlist(bad)


def _generated_host_lists():
    """A broad fixed set: 1-4 bracket groups, padded and unpadded ranges, lists inside
    and outside brackets, every separator Slurm knows."""
    import random
    rng = random.Random(11)
    out = [spec for spec, _ in SLURM_ORDER_CASES]

    def group():
        parts = []
        for _ in range(rng.randint(1, 3)):
            lo = rng.randint(0, 120)
            width = rng.choice([0, 0, 2, 3])
            a = str(lo).zfill(width)
            if rng.random() < 0.6:
                parts.append(f"{a}-{lo + rng.randint(0, 4)}")
            else:
                parts.append(a)
        return "[" + ",".join(parts) + "]"
    for _ in range(150):
        names = []
        for _ in range(rng.randint(1, 3)):
            k = rng.choice([0, 1, 1, 2, 3, 4])
            name = rng.choice(["n", "gpu", "rack", "cn-", "a.b", ""])
            for i in range(k):
                name += group()
                if i < k - 1:
                    name += rng.choice(["", "-", "x", "_s"])
            if not k:
                name += str(rng.randint(0, 999))
            names.append(name)
        seps = [rng.choice([",", " ", "\t", ", ", " ,\t", "  "]) for _ in names[1:]]
        out.append(names[0] + "".join(s + n for s, n in zip(seps, names[1:])))
    return out


def test_expand_hostlist_matches_scontrol(tmp_path):
    """Every generated host list expands to exactly what `scontrol show hostnames`
    prints (Debian's slurm-client, or the testbed's slurm-wlm; scontrol only
    needs a slurm.conf it can parse to expand a host list)."""
    import os
    import shutil
    scontrol = shutil.which("scontrol")
    if scontrol is None:
        pytest.skip("scontrol is not installed (apt-get install slurm-client)")
    conf = tmp_path / "slurm.conf"
    conf.write_text("ClusterName=baobabtest\nSlurmctldHost=localhost\n"
                    "NodeName=localhost CPUs=1 State=UNKNOWN\nPartitionName=debug Nodes=localhost Default=YES\n")
    env = {**os.environ, "SLURM_CONF": str(conf)}
    specs = _generated_host_lists()
    # one scontrol per list (it takes one list); a few hundred short runs
    mismatches = []
    for spec in specs:
        r = subprocess.run([scontrol, "show", "hostnames", spec], capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 0, (spec, r.stderr)
        if expand_hostlist(spec) != r.stdout.splitlines():
            mismatches.append((spec, r.stdout.splitlines(), expand_hostlist(spec)))
    assert not mismatches, mismatches[:3]
    # and what scontrol refuses, baobab refuses
    for bad in ["gpu[08-10]-a", "n[]", "n[1-2-3]", "n[1,,2]", "n[1-65537]", "n[3-1]"]:
        r = subprocess.run([scontrol, "show", "hostnames", bad], capture_output=True, text=True, env=env,
                           timeout=60)
        assert "Invalid hostlist" in r.stdout + r.stderr, (bad, r.stdout, r.stderr)
        with pytest.raises(baobab.InvalidArgument):
            expand_hostlist(bad)

"""Slurm environment parsing and the launch check (real srun/sbatch runs are in
the cluster testbed tests)."""
import subprocess
import sys

import pytest

import baobab
from baobab.slurm import environment, expand_hostlist, expand_tasks_per_node, expected_world_size


@pytest.mark.parametrize("spec, names", [
    ("n[1-3,7]", ["n1", "n2", "n3", "n7"]),
    ("gpu[08-10]-a,login", ["gpu08-a", "gpu09-a", "gpu10-a", "login"]),
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

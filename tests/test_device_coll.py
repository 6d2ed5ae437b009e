"""Collectives on device buffers without a GPU: the device lanes of the
executor (staging, events, device scratch, both transports) run with real MPI
over the host emulation of the device (BAOBAB_DEVICE_EMULATION), against the
host collectives; and the argument checks that need no device. The same
scenarios run on cupy arrays in tests/test_gpu.py on a machine with a GPU."""
import re

import numpy as np
import pytest

import baobab
from conftest import MPI_DIR

# The whole collective suite (every collective, algorithm, dtype, op, size,
# in-place, virtual topologies) through the device lanes.
SUITE = [
    (2, "", "staged", "full", "0"),
    (2, "", "cuda-aware", "full", "1"),
    (3, "", "cuda-aware", "quick", "0"),
    (4, "nodes=2", "staged", "quick", "1"),
    (3, "groups=1,2", "cuda-aware", "quick", "1"),
    (8, "switch=2,nodes=4", "staged", "quick", "1"),
]


@pytest.mark.parametrize("n, topology, path, mode, ipc", SUITE,
                         ids=[f"{n}-{t or 'flat'}-{p}-ipc{i}" for n, t, p, _, i in SUITE])
def test_collective_suite_through_emulated_device_lanes(mpirun, n, topology, path, mode, ipc):
    env = {"BAOBAB_DEVICE_EMULATION": path, "BAOBAB_DEVICE_IPC": ipc}
    if topology:
        env["BAOBAB_TOPOLOGY"] = topology
    out = mpirun(n, MPI_DIR / "collectives.py", mode, env=env, timeout=300).stdout
    assert f"OK collectives p={n}" in out and "failures=0" in out, out


def _passed(out, n):
    assert out.count("PASS") == n and "FAIL" not in out, out


BITS = [(2, "staged", "0", ""), (3, "cuda-aware", "1", ""), (4, "staged", "1", "nodes=2"),
        (4, "cuda-aware", "0", "groups=3,1")]


@pytest.mark.parametrize("n, path, ipc, topology", BITS,
                         ids=[f"{n}-{p}-ipc{i}-{t or 'flat'}" for n, p, i, t in BITS])
def test_device_lanes_give_the_host_collectives_bits(mpirun, n, path, ipc, topology):
    """Random floats (the reduction order decides the bits): every collective,
    dtype and op, blocking and not, every allreduce algorithm, the segmented
    path with lanes in flight, equal to the host collective bit for bit; with
    IPC within (virtual) nodes and the transport between them. Device calls
    take the host buffers' plan here (BAOBAB_DEVICE_PLAN=host), which is what
    makes their bits the host's; the device model's own plans are checked by
    the next test."""
    env = {"BAOBAB_TEST_DEVICE_PATH": path, "BAOBAB_DEVICE_IPC": ipc, "BAOBAB_DEVICE_PLAN": "host"}
    if topology:
        env["BAOBAB_TOPOLOGY"] = topology
    out = mpirun(n, MPI_DIR / "device_coll.py", "bits", "emulated", env=env, timeout=300).stdout
    _passed(out, n)


PLANS = [(3, "staged", "1", ""), (4, "staged", "1", "nodes=2"), (4, "auto", "0", "nodes=2")]


@pytest.mark.parametrize("n, path, ipc, topology", PLANS,
                         ids=[f"{n}-{p}-ipc{i}-{t or 'flat'}" for n, p, i, t in PLANS])
def test_device_plans_equal_the_reference_replay_of_the_same_plan(mpirun, n, path, ipc, topology):
    """Under the device model (the default), device calls choose their own
    algorithm and segments; each result equals the reference executor's
    replay of that plan on every rank's inputs, bit for bit, and at least one
    plan differs from the host's (so that this tests the device plans)."""
    env = {"BAOBAB_TEST_DEVICE_PATH": path, "BAOBAB_DEVICE_IPC": ipc}
    if topology:
        env["BAOBAB_TOPOLOGY"] = topology
    out = mpirun(n, MPI_DIR / "device_coll.py", "plans", "emulated", env=env, timeout=300).stdout
    _passed(out, n)


@pytest.mark.parametrize("n, ipc", [(2, "1"), (3, "1"), (2, "0")])
def test_ipc_reductions_read_the_peers_buffer_without_a_copy(mpirun, n, ipc):
    """The reduce-scatter half of a ring allreduce over IPC reduces straight
    out of each peer's exported buffer; only the allgather half copies out of
    it (bytes counted by the emulation); without IPC nothing is read from a
    peer; and the bits equal the host's."""
    out = mpirun(n, MPI_DIR / "device_coll.py", "direct", "emulated", env={"BAOBAB_DEVICE_IPC": ipc},
                 timeout=120).stdout
    _passed(out, n)


def test_device_and_host_ranks_interoperate_without_ipc(mpirun):
    """With BAOBAB_DEVICE_PLAN=host device calls take the host buffers' plan,
    so a rank with device buffers and ranks with host buffers run one collective."""
    out = mpirun(3, MPI_DIR / "device_coll.py", "mixed", "emulated",
                 env={"BAOBAB_DEVICE_IPC": "0", "BAOBAB_DEVICE_PLAN": "host"}, timeout=120).stdout
    _passed(out, 3)
    out = mpirun(4, MPI_DIR / "device_coll.py", "mixed", "emulated",
                 env={"BAOBAB_TOPOLOGY": "nodes=4", "BAOBAB_DEVICE_PLAN": "host"},
                 timeout=120).stdout  # every rank its own node: IPC never applies
    _passed(out, 4)


def test_device_by_ipc_and_host_on_one_node_is_a_mismatch_on_every_rank(mpirun):
    out = mpirun(3, MPI_DIR / "device_coll.py", "mixed", "emulated",
                 env={"BAOBAB_TIMEOUT": "20", "BAOBAB_DEVICE_PLAN": "host"}, timeout=120).stdout
    _passed(out, 3)
    assert out.count("MismatchError") == 3 and "device buffers by IPC" in out, out


def test_device_plan_and_host_ranks_are_a_mismatch_on_every_rank(mpirun):
    """Under the device model's plan (the default) a device rank and host
    ranks may choose differently: the signature refuses the mix on every
    rank, naming BAOBAB_DEVICE_PLAN=host, instead of a hang or wrong bytes."""
    out = mpirun(4, MPI_DIR / "device_coll.py", "mixed", "emulated",
                 env={"BAOBAB_TIMEOUT": "20", "BAOBAB_TOPOLOGY": "nodes=4"}, timeout=120).stdout
    _passed(out, 4)
    assert out.count("MismatchError") == 4 and "device plan" in out, out


def test_device_collective_times_out_naming_the_missing_rank(mpirun):
    out = mpirun(3, MPI_DIR / "device_coll.py", "timeout", "emulated", env={"BAOBAB_TIMEOUT": "3"},
                 timeout=60).stdout
    _passed(out, 3)
    assert out.count("TimeoutError after") == 2 and "ranks that did not arrive: [1]" in out, out


def test_device_collective_mismatch_reaches_every_rank(mpirun):
    out = mpirun(3, MPI_DIR / "device_coll.py", "mismatch", "emulated", env={"BAOBAB_TIMEOUT": "20"},
                 timeout=60).stdout
    _passed(out, 3)
    assert out.count("MismatchError") == 3 and "count differs" in out, out


class _FakeDeviceArray:
    """Says it lives on a device (__cuda_array_interface__): the checks that
    refuse to mix it with host arrays must do so before any device is touched."""

    def __init__(self, n, typestr="<f4"):
        self.n, self.typestr = n, typestr

    @property
    def __cuda_array_interface__(self):
        return dict(shape=(self.n,), typestr=self.typestr, data=(0, False), version=3, strides=None)


class _FakeDLPack:
    """A DLPack producer on CUDA device 0."""

    def __dlpack_device__(self):
        return (2, 0)


@pytest.fixture(scope="module")
def comm():
    return baobab.Communicator(timeout=30)


@pytest.mark.parametrize("call", [
    lambda c, h, d: c.allreduce(h, out=d),
    lambda c, h, d: c.allreduce(d, out=h),
    lambda c, h, d: c.iallreduce(d, out=h),
    lambda c, h, d: c.allgather(h, out=d),
    lambda c, h, d: c.allgather(d, out=h),
    lambda c, h, d: c.reduce_scatter(h, out=d),
    lambda c, h, d: c.reduce_scatter(d, out=h),
    lambda c, h, d: c.reduce(h, out=d),
    lambda c, h, d: c.reduce(d, out=h),
    lambda c, h, d: c.alltoall(h, out=d),
    lambda c, h, d: c.alltoall(d, out=h),
], ids=["allreduce h>d", "allreduce d>h", "iallreduce d>h", "allgather h>d", "allgather d>h",
        "reduce_scatter h>d", "reduce_scatter d>h", "reduce h>d", "reduce d>h", "alltoall h>d", "alltoall d>h"])
def test_host_and_device_arguments_never_mix(comm, call):
    with pytest.raises(baobab.InvalidArgument, match=r"host array .*device array|device array .*host array"):
        call(comm, np.zeros(4, np.float32), _FakeDeviceArray(4))


def test_dlpack_cuda_producer_counts_as_a_device_array(comm):
    with pytest.raises(baobab.InvalidArgument, match="host array"):
        comm.allreduce(_FakeDLPack(), out=np.zeros(3))


def test_device_environment_variables_are_checked(monkeypatch):
    monkeypatch.setenv("BAOBAB_DEVICE_EMULATION", "sideways")
    with pytest.raises(baobab.InvalidArgument, match="BAOBAB_DEVICE_EMULATION='sideways'"):
        baobab.Communicator()
    monkeypatch.setenv("BAOBAB_DEVICE_EMULATION", "off")
    monkeypatch.setenv("BAOBAB_DEVICE_TRANSPORT", "carrier-pigeon")
    with pytest.raises(baobab.InvalidArgument, match="BAOBAB_DEVICE_TRANSPORT='carrier-pigeon'"):
        baobab.Communicator()
    monkeypatch.delenv("BAOBAB_DEVICE_TRANSPORT")
    monkeypatch.setenv("BAOBAB_DEVICE_PLAN", "gpu")
    with pytest.raises(baobab.InvalidArgument, match="BAOBAB_DEVICE_PLAN='gpu'"):
        baobab.Communicator()
    monkeypatch.setenv("BAOBAB_DEVICE_PLAN", "host")
    assert baobab.Communicator().config()["device_plan"] == "host"



_CLI = "import sys; from baobab._cli.main import main; sys.exit(main(sys.argv[1:]))\n"


def test_tune_device_measures_the_device_model_and_the_model_reads_it(mpirun, tmp_path):
    """`baobab tune --device` under the emulation (transport auto, so the
    CUDA-aware cost is measured too): every device key, positive, in the
    file; a communicator reading the file prices device calls with them."""
    path = tmp_path / "tuning.conf"
    out = mpirun(2, _CLI, "tune", "--device", "--device-bytes", "4M", "--pack-bytes", "0", "--bytes", "256K",
                 "--reps", "4", "-o", str(path), env={"BAOBAB_DEVICE_EMULATION": "auto", "BAOBAB_TOPOLOGY": "nodes=2"},
                 timeout=180).stdout
    assert f"wrote {path}" in out, out
    values = {k.strip(): float(v) for k, v in (line.split("=") for line in path.read_text().splitlines()
                                               if "=" in line and not line.startswith("#"))}
    for key in ("d2h_GBps", "h2d_GBps", "copy_GBps", "reduce_GBps", "aware_GBps"):
        assert values[f"device.{key}"] > 0, (key, values)
    assert values["device.latency_us"] >= 0 and values["device.aware_us"] >= 0, values
    c = baobab.Communicator(tuning=str(path))
    text = c.explain("allreduce", 1 << 20, device=True, file=False)
    assert f"to host {values['device.d2h_GBps']:.1f} GB/s" in text, text
    assert f"device reduce {values['device.reduce_GBps']:.0f} GB/s" in text, text


def test_bench_device_runs_the_device_lanes_and_validates(mpirun):
    """`baobab bench COLL --device` under the emulation: every algorithm
    through the device lanes, validated (#wrong 0), the header saying what ran."""
    for coll in ("allreduce", "allgather", "bcast"):
        out = mpirun(2, _CLI, "bench", coll, "--device", "-b", "8", "-e", "256K", "-f", "32", "--algo", "all",
                     "-n", "2", env={"BAOBAB_DEVICE_EMULATION": "staged"}, timeout=120).stdout
        assert "device lanes on the host emulation" in out and "out of bounds values : 0 OK" in out, out


def _device_usable():
    try:
        import cupy
        return baobab._core.cuda_available() and cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no cupy, no driver, no device
        return False


@pytest.mark.skipif(_device_usable(), reason="a CUDA device is present: --device runs instead of refusing")
def test_tune_device_without_a_gpu_is_one_line_exit_2(mpirun, tmp_path):
    from conftest import one_error_line
    out = mpirun(1, _CLI, "tune", "--device", "--pack-bytes", "0", "-o", str(tmp_path / "t.conf"), expect_rc=2,
                 timeout=120).stdout
    line = one_error_line(out)
    assert "--device" in line, line
    assert not (tmp_path / "t.conf").exists()


@pytest.mark.skipif(_device_usable(), reason="a CUDA device is present: --device runs instead of refusing")
def test_bench_device_without_a_gpu_is_one_line_exit_2(mpirun):
    from conftest import one_error_line
    out = mpirun(1, _CLI, "bench", "allreduce", "--device", expect_rc=2).stdout
    line = one_error_line(out)
    assert re.search(r"--device( needs cupy|: no usable CUDA device|: cupy sees no device)", line), line


def test_gpu_of_each_rank_from_local_rank_or_baobab_gpu(mpirun):
    out = mpirun(3, _CLI, "info", env={"BAOBAB_GPU": "1,0", "BAOBAB_TOPOLOGY": "groups=2,1"}).stdout
    assert ("rank 0 -> GPU 1 (BAOBAB_GPU=1,0); rank 1 -> GPU 0 (BAOBAB_GPU=1,0); "
            "rank 2 -> GPU 1 (BAOBAB_GPU=1,0)") in out, out  # rank 2 is local rank 0 of its node
    assert "device bufs : transport" in out
    out = mpirun(2, _CLI, "info", env={"BAOBAB_GPU": "zero"}, expect_rc=2).stdout
    assert "BAOBAB_GPU='zero'" in out and "Traceback" not in out, out


def test_explain_shows_how_device_bytes_travel(monkeypatch):
    c = baobab.Communicator()
    text = c.explain("allreduce", 1 << 20, device=True, file=False)
    assert "device buffers: transport" in text and "reductions by the device kernels" in text
    # the device model: its rates, and each level's route by size (IPC from the crossing on)
    assert "device buffers (transport staged, IPC on): [to host 50.0 GB/s" in text, text
    assert "messages: in a node: staged below " in text and ", ipc from " in text, text
    monkeypatch.setenv("BAOBAB_DEVICE_TRANSPORT", "cuda-aware")
    text = c.explain("allreduce", 1 << 20, device=True, file=False)
    assert "transport cuda-aware (BAOBAB_DEVICE_TRANSPORT=cuda-aware)" in text, text
    assert "messages: in a node: direct below " in text, text
    monkeypatch.setenv("BAOBAB_DEVICE_TRANSPORT", "auto")
    text = c.explain("allreduce", 1 << 20, device=True, file=False)
    assert "device buffers (transport auto, IPC on)" in text and "the cost model prices lower" in text, text
    # the device plan is the best under the device model; plan(device=True) says which
    plan = c.plan("allreduce", 1 << 20, device=True, full=True)
    best = min(x["predicted"] for x in plan["candidates"] if not x["unsupported"])
    assert next(x["predicted"] for x in plan["candidates"] if x["name"] == plan["algorithm"]) == best
    assert "device buffers" not in c.explain("allreduce", 1 << 20, file=False)


@pytest.mark.parametrize("n, topology, path", [(3, "", "staged"), (4, "nodes=2", "cuda-aware")])
def test_attention_suite_through_emulated_device_lanes(mpirun, n, topology, path):
    """tree_decode's merge collective on the device lanes (the merge as the
    device reduction) and ring attention, against dense float64 attention."""
    env = {"BAOBAB_DEVICE_EMULATION": path}
    if topology:
        env["BAOBAB_TOPOLOGY"] = topology
    out = mpirun(n, MPI_DIR / "attention.py", env=env, timeout=300).stdout
    assert f"OK attention p={n}" in out, out

"""baobab.checkpoint: exact round trips, pruning, asynchronous writes,
validation (truncated, incomplete, corrupted files) and distributed state
under mpiexec."""
import os
import time
import warnings

import numpy as np
import pytest

import h5py  # noqa: E402  (a test dependency: pip install baobab[test])

import baobab  # noqa: E402
from baobab.checkpoint import Checkpointer, validate  # noqa: E402
from conftest import MPI_DIR  # noqa: E402


def rich_state():
    rng = np.random.default_rng(1234)
    rng.standard_normal(17)
    rec = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,))])
    rec["a"] = [1, 2, 3]
    return {
        "f64": rng.standard_normal((5, 4)),
        "f32": np.linspace(0, 1, 7, dtype=np.float32),
        "f16": np.array([1.5, -2.25], np.float16),
        "i8": np.array([-128, 0, 127], np.int8),
        "u64": np.array([0, 2**64 - 1], np.uint64),
        "big_endian": np.arange(4, dtype=">i4"),
        "c128": np.array([1 + 2j, -3.5j]),
        "bool_arr": np.array([True, False, True]),
        "empty": np.zeros((0, 3)),
        "zero_d": np.array(3.25),
        "strided": np.arange(20.0)[::3],
        "unicode_arr": np.array(["ab", "ßüé"]),
        "bytes_arr": np.array([b"x", b"yz"]),
        "record": rec,
        "np_scalar": np.float32(1.1),
        "np_int": np.int16(-7),
        "pi": np.pi,
        "tiny": 5e-324,
        "neg_zero": -0.0,
        "int": 2**62 + 1,
        "huge_int": 2**100 + 3,
        "flag": True,
        "z": 1 - 2j,
        "name": "héllo wörld",
        "blob": b"\x00\x01\xff",
        "nothing": None,
        "shape": [3, 4],
        "nested": {"a": {"b": np.arange(3), "c": "deep"}, "empty_dict": {}},
        "rng": rng.bit_generator.state,
        "mt": np.random.MT19937(5).state,
    }, rng


def assert_same(a, b, where="state"):
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), where
    elif isinstance(a, np.generic):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), where
    elif isinstance(a, float):
        assert np.float64(a).tobytes() == np.float64(b).tobytes(), where
    else:
        assert a == b, where


def test_round_trip_exact(tmp_path):
    state, rng = rich_state()
    ck = Checkpointer(tmp_path)
    path = ck.save(7, state)
    assert path == str(tmp_path / "checkpoint-0000000007.h5") and os.path.exists(path)
    got = ck.load()
    expected = dict(state, shape=[3, 4])
    expected["strided"] = np.ascontiguousarray(state["strided"])
    assert_same(expected, got)
    g = np.random.Generator(np.random.PCG64())
    g.bit_generator.state = got["rng"]
    assert np.array_equal(g.standard_normal(10), rng.standard_normal(10))
    mt = np.random.MT19937()
    mt.state = got["mt"]
    ref = np.random.MT19937(5)
    assert np.array_equal(np.random.Generator(mt).integers(0, 2**31, 5), np.random.Generator(ref).integers(0, 2**31, 5))
    with h5py.File(path, "r") as h:
        assert h.attrs["complete"] == 1 and h.attrs["step"] == 7 and len(h.attrs["sha256"]) == 64
        assert h.attrs["creator"] == "baobab"


def test_bfloat16_round_trip(tmp_path):
    import ml_dtypes
    x = np.array([1.0, -2.5, 3.0], ml_dtypes.bfloat16)
    ck = Checkpointer(tmp_path)
    ck.save(1, {"x": x})
    got = ck.load()["x"]
    assert got.dtype == x.dtype and got.tobytes() == x.tobytes()


def test_bad_values_raise(tmp_path):
    ck = Checkpointer(tmp_path)
    with pytest.raises(baobab.InvalidArgument, match="cannot store"):
        ck.save(1, {"obj": object()})
    with pytest.raises(baobab.InvalidArgument, match="keys"):
        ck.save(1, {"a/b": 1})
    with pytest.raises(baobab.CheckpointError, match="no valid checkpoint"):
        ck.load()
    assert os.listdir(tmp_path) == []
    assert issubclass(baobab.CheckpointError, baobab.Error)


def test_keep_prunes_oldest(tmp_path):
    ck = Checkpointer(tmp_path, keep=2)
    for step in (1, 2, 3, 4):
        ck.save(step, {"step": step, "x": np.full(10, step)})
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-0000000003.h5", "checkpoint-0000000004.h5"]
    assert ck.load()["step"] == 4
    assert ck.load(tmp_path / "checkpoint-0000000003.h5")["step"] == 3


def test_asynchronous_save_then_wait(tmp_path):
    ck = Checkpointer(tmp_path, asynchronous=True, prefix="run")
    x = np.arange(1 << 20, dtype=np.float64)
    path = ck.save(5, {"x": x, "meta": {"a": 1}})
    x[:] = -1             # the save copied the state: this does not reach the file
    ck.wait()
    assert os.path.exists(path) and path.endswith("run-0000000005.h5")
    got = ck.load()
    assert np.array_equal(got["x"], np.arange(1 << 20, dtype=np.float64)) and got["meta"] == {"a": 1}
    ck.save(6, {"x": x})
    ck.save(7, {"x": x})  # waits for step 6 first
    ck.wait()
    assert ck.latest().endswith("run-0000000007.h5")


def test_asynchronous_error_surfaces(tmp_path):
    ck = Checkpointer(tmp_path / "d", asynchronous=True)
    os.rmdir(tmp_path / "d")        # the background write cannot create its file
    ck.save(1, {"a": 1})
    with pytest.raises(baobab.CheckpointError, match="asynchronous checkpoint failed"):
        ck.wait()
    ck.wait()                       # reported once


def test_every_rank_writes_mode_commits_only_when_polled(tmp_path):
    """asynchronous, writers="all" on one process: the file appears under its final
    name only at the poll (or wait) that finds the rows on disk, whole and valid."""
    ck = Checkpointer(tmp_path, asynchronous=True, writers="all", keep=2)
    x = np.arange(3 << 18, dtype=np.float32).reshape(-1, 3)
    path = ck.save(1, {"step": 1, "s": "text", "meta": {"a": [1, 2]}}, distributed={"x": x, "e": x[:0]})
    x[:] = -1                                   # the rows were copied: this does not reach the file
    assert not os.path.exists(path)             # not committed yet
    assert [n for n in os.listdir(tmp_path) if ".tmp." in n]
    while not ck.poll():
        time.sleep(0.01)
    assert os.listdir(tmp_path) == [os.path.basename(path)] and validate(path) is None
    with h5py.File(path, "r") as h:
        assert h.attrs["writers"] == "all" and h["distributed/x"].chunks is None   # contiguous, whole
    got = ck.load()
    assert np.array_equal(got["x"], np.arange(3 << 18, dtype=np.float32).reshape(-1, 3))
    assert got["e"].shape == (0, 3) and got["s"] == "text" and got["meta"] == {"a": [1, 2]}
    for step in (2, 3):
        ck.save(step, {"step": step}, distributed={"x": x + step})
    ck.close()                                  # commits step 3
    assert sorted(os.listdir(tmp_path)) == ["checkpoint-0000000002.h5", "checkpoint-0000000003.h5"]
    assert ck.poll() is True and Checkpointer(tmp_path).load()["step"] == 3
    with pytest.raises(baobab.InvalidArgument, match="writers"):
        Checkpointer(tmp_path, asynchronous=True, writers="some")


def test_every_rank_writes_mode_failed_write_leaves_nothing(tmp_path, monkeypatch):
    ck = Checkpointer(tmp_path, asynchronous=True, writers="all")
    ck.save(1, {"a": 1}, distributed={"x": np.arange(10.0)})
    ck.wait()

    def full(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "pwrite", full)
    ck.save(2, {"a": 2}, distributed={"x": np.arange(10.0)})
    with pytest.raises(baobab.CheckpointError, match=r"checkpoint-0000000002\.h5 failed: .*No space left"):
        ck.wait()
    assert os.listdir(tmp_path) == ["checkpoint-0000000001.h5"]      # no temporary left, the old one kept
    monkeypatch.undo()
    ck.save(3, {"a": 3}, distributed={"x": np.arange(10.0)})
    ck.close()
    assert Checkpointer(tmp_path).load()["a"] == 3


def test_truncated_checkpoint_skipped(tmp_path):
    ck = Checkpointer(tmp_path, keep=5)
    ck.save(1, {"x": np.arange(100000.0)})
    newest = ck.save(2, {"x": np.arange(100000.0) + 1})
    size = os.path.getsize(newest)
    with open(newest, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.warns(UserWarning, match=r"checkpoint-0000000002\.h5.*(cannot be read|truncated)"):
        assert ck.latest().endswith("checkpoint-0000000001.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ck.load()["x"][0] == 0
    with pytest.raises(baobab.CheckpointError, match="not valid"):
        ck.load(newest)


def test_incomplete_and_corrupted_checkpoints_skipped(tmp_path):
    ck = Checkpointer(tmp_path, keep=5)
    ck.save(1, {"x": np.arange(1000.0)})
    p2 = ck.save(2, {"x": np.arange(1000.0)})
    p3 = ck.save(3, {"x": np.arange(1000.0), "s": "text"})
    with h5py.File(p3, "a") as h:
        del h.attrs["complete"]
    with h5py.File(p2, "a") as h:           # payload changed after the hash was taken
        h["state/x"][5] = 42.0
    with pytest.warns(UserWarning) as rec:
        assert ck.latest().endswith("checkpoint-0000000001.h5")
    msgs = [str(w.message) for w in rec]
    assert any("checkpoint-0000000003.h5" in m and "incomplete" in m for m in msgs), msgs
    assert any("checkpoint-0000000002.h5" in m and "SHA-256 mismatch" in m for m in msgs), msgs
    assert validate(p3) and validate(p2) and validate(ck.path_of(1)) is None


def test_distributed_serial(tmp_path):
    ck = Checkpointer(tmp_path)
    x = np.arange(30).reshape(10, 3)
    ck.save(1, {"a": 1}, distributed={"x": x})
    got = ck.load()
    assert np.array_equal(got["x"], x) and got["a"] == 1
    with pytest.raises(baobab.InvalidArgument, match="both"):
        ck.save(2, {"x": 1}, distributed={"x": x})


@pytest.mark.parametrize("n, mode", [(2, "sync"), (3, "sync"), (2, "async"), (3, "async"), (2, "spread"),
                                     (3, "spread")])
def test_distributed_multi_rank(mpirun, tmp_path, n, mode):
    out = mpirun(n, MPI_DIR / "checkpoint_mpi.py", tmp_path, mode, timeout=120).stdout
    assert f"OK checkpoint p={n} mode={mode}" in out, out


def test_spread_write_failing_on_one_rank_fails_on_every_rank(mpirun, tmp_path):
    out = mpirun(3, MPI_DIR / "checkpoint_mpi.py", tmp_path, "spread-fail", timeout=120).stdout
    lines = sorted(line for line in out.splitlines() if line.startswith("RANK"))
    assert len(lines) == 3, out
    for r, line in enumerate(lines):
        assert line.startswith(f"RANK {r}: CheckpointError") and "rank 1" in line and "No space" in line, out
    assert "OK after failure" in out, out


def test_load_without_distributed_arrays_reads_the_replicated_state_only(tmp_path):
    from baobab.checkpoint import Checkpointer
    ck = Checkpointer(tmp_path / "ck")
    ck.save(1, {"step": 1}, distributed={"x": np.arange(6.0)})
    assert set(ck.load()) == {"step", "x"}
    assert ck.load(distributed=False) == {"step": 1}
    ck.close()

"""LLM training resumed from its checkpoints (apps/llm/train.py, ckpt.py):
in the same layout a run stopped and resumed equals an uninterrupted one bit
for bit; a checkpoint written at --dp 2 --tp 2 resumes at --dp 2 alone, at
--dp 2 --sp 2, at --dp 2 --zero 2 (the same data order: the losses equal the
uninterrupted run's to 1e-10), at --dp 4 and on one rank; a different model
is refused with one line."""
import shutil

import h5py
import numpy as np
import pytest

from conftest import HERE

TRAIN = str(HERE.parent / "apps" / "llm" / "train.py")
TINY = ["--layers", "2", "--width", "24", "--heads", "6", "--context", "16", "--seq-len", "12", "--batch", "2",
        "--dtype", "float64", "--threads", "1", "--eval-every", "0", "--eval-batches", "1", "--lr", "3e-3",
        "--warmup", "2", "--clip", "0.5"]


def losses(run):
    with h5py.File(run / "metrics.h5", "r") as f:
        return f["train/step"][()].tolist(), f["train/loss"][()]


def final(run):
    (path,) = sorted((run / "ckpt").glob("llm-*.h5"))[-1:]
    with h5py.File(path, "r") as f:
        return {k: f["distributed"][k][()] for k in f["distributed"]}


@pytest.mark.parametrize("mode", ["async", "async-rank0", "collective"])
def test_stopped_and_resumed_run_equals_an_uninterrupted_one_bit_for_bit(mpirun, tmp_path, mode):
    a, b = tmp_path / "a", tmp_path / "b"
    args = TINY + ["--dp", "2", "--steps", "6", "--accum", "2", "--ckpt-mode", mode]
    mpirun(2, TRAIN, *args, "--out", a, timeout=180)
    out = mpirun(2, TRAIN, *args, "--out", b, "--stop-after", "3", timeout=180).stdout
    assert "stopped after 3 steps: checkpoint at step 3" in out, out
    out = mpirun(2, TRAIN, *args, "--out", b, timeout=180).stdout
    assert "resumed at step 3" in out and "step 6/6" in out and "step 1/6" not in out, out
    sa, la = losses(a)
    sb, lb = losses(b)
    assert sa == sb == list(range(6)) and np.array_equal(la, lb), (la, lb)
    fa, fb = final(a), final(b)
    assert fa.keys() == fb.keys() and any(k.startswith("m.") for k in fa)
    assert all(np.array_equal(fa[k], fb[k]) for k in fa), [k for k in fa if not np.array_equal(fa[k], fb[k])]


def test_background_checkpoints_every_step_are_committed_whole_and_resume_exactly(mpirun, tmp_path):
    """--ckpt-mode async with a checkpoint at every step: every rank writes its rows
    in the background, each is committed at a later step end; all are valid, and
    resuming from the one at step 3 ends as the uninterrupted run."""
    from baobab.checkpoint import validate
    run = tmp_path / "every"
    args = TINY + ["--dp", "2", "--tp", "1", "--steps", "5", "--ckpt-every", "1", "--keep", "10"]
    mpirun(2, TRAIN, *args, "--out", run, timeout=180)
    files = sorted((run / "ckpt").glob("llm-*.h5"))
    assert [f.name for f in files] == [f"llm-{s:010d}.h5" for s in range(1, 6)], files
    assert not [f for f in (run / "ckpt").iterdir() if ".tmp." in f.name]
    for f in files:
        assert validate(f) is None, f
        with h5py.File(f, "r") as h5:
            assert h5.attrs["writers"] == "all" and h5.attrs["step"] == int(f.name[4:14])
    again = tmp_path / "again"
    (again / "ckpt").mkdir(parents=True)
    shutil.copy(files[2], again / "ckpt")
    shutil.copy(run / "metrics.h5", again)
    out = mpirun(2, TRAIN, *args, "--out", again, timeout=180).stdout
    assert "resumed at step 3" in out, out
    assert np.array_equal(losses(again)[1], losses(run)[1])
    fa, fb = final(run), final(again)
    assert all(np.array_equal(fa[k], fb[k]) for k in fa)


def test_checkpoint_of_dp2_tp2_resumes_in_other_layouts(mpirun, tmp_path):
    ref, saved = tmp_path / "ref", tmp_path / "saved"
    args = TINY + ["--steps", "4"]
    mpirun(4, TRAIN, *args, "--dp", "2", "--tp", "2", "--out", ref, timeout=240)
    mpirun(4, TRAIN, *args, "--dp", "2", "--tp", "2", "--out", saved, "--stop-after", "2", timeout=240)
    _, want = losses(ref)
    for n, layout in ((2, ["--dp", "2"]), (4, ["--dp", "2", "--sp", "2"]), (2, ["--dp", "2", "--zero", "2"]),
                      (4, ["--dp", "4"]), (1, [])):
        run = tmp_path / ("run" + "".join(layout).replace("--", "_"))
        shutil.copytree(saved, run)
        out = mpirun(n, TRAIN, *args, *layout, "--out", run, timeout=240).stdout
        assert "resumed at step 2" in out and "step 4/4" in out, out
        steps, got = losses(run)
        assert steps == [0, 1, 2, 3] and np.array_equal(got[:2], want[:2])  # the earlier rows kept
        if "--dp" in layout and layout[1] == "2":  # the same data order as the reference
            assert np.allclose(got[2:], want[2:], rtol=1e-10, atol=0), (layout, got, want)
        else:
            assert np.isfinite(got[2:]).all() and abs(got[2] - want[2]) < 0.5, (layout, got, want)
    other = tmp_path / "other"
    shutil.copytree(saved, other)
    r = mpirun(2, TRAIN, *(TINY[:1] + ["3"] + TINY[2:]), "--steps", "4", "--dp", "2", "--out", other,
               expect_rc=2, timeout=120)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("llm-train")]
    assert len(lines) == 1 and "holds a checkpoint of another model" in lines[0] and "layers" in lines[0], r.stdout

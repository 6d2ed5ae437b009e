"""The LLM app's tools on tiny models: validate.py (against PyTorch), analyze.py
(PNGs from a run's metrics.h5), bench.py (1 rank against PyTorch) and
bench_parallel.py (2 ranks: the bytes each layout hands to collectives equal
the formula) and bench_ckpt.py (every checkpoint mode leaves a valid file)."""
import json
import subprocess
import sys

import pytest

from conftest import HERE, clean_env

APP = HERE.parent / "apps" / "llm"
TINY = ["--layers", "1", "--width", "32", "--heads", "2", "--context", "32", "--batch", "4"]


def py(*args, timeout=300):
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env=clean_env())


def test_validate_trains_like_pytorch(tmp_path):
    import torch  # noqa: F401  (a test dependency: make test installs it)
    r = py(APP / "validate.py", *TINY, "--steps", "30", "--eval-every", "15", "--eval-batches", "2",
           "--json", tmp_path / "v.json")
    assert r.returncode == 0 and "PASS" in r.stdout, r.stdout + r.stderr
    res = json.loads((tmp_path / "v.json").read_text())
    assert abs(res["ratio"] - 1) < 1e-3 and res["final_val_ours"] < res["rows"][0]["val_ours"] < 5.55
    r = py(APP / "validate.py", "--steps", "0")
    assert r.returncode == 2 and "--steps must be at least 1" in r.stderr


def test_analyze_draws_a_run(mpirun, tmp_path):
    run = tmp_path / "run"
    mpirun(2, APP / "train.py", *TINY, "--dp", "2", "--steps", "4", "--eval-every", "2", "--eval-batches", "1",
           "--out", run, "--no-ckpt", timeout=180)
    r = py(APP / "analyze.py", run, "--out", tmp_path / "png")
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("loss.png", "throughput.png"):
        assert (tmp_path / "png" / name).stat().st_size > 1000
    r = py(APP / "analyze.py", tmp_path / "nothing")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "cannot read" in r.stderr, r.stderr


def test_bench_against_pytorch_runs(tmp_path):
    import torch  # noqa: F401  (a test dependency: make test installs it)
    r = py(APP / "bench.py", *TINY, "--threads", "1", "--steps", "1", "--bf16-acts", "--json", tmp_path / "b.json")
    assert r.returncode == 0 and "PyTorch" in r.stdout and "losses agree" in r.stdout, r.stdout + r.stderr
    assert "bfloat16 activations" in r.stdout, r.stdout
    (res,) = json.loads((tmp_path / "b.json").read_text())["results"]
    # 1 layer, 32 wide, 4 x 32 tokens: 11 N C floats kept at half the width
    assert res["ours"]["act_bytes"] - res["ours_bf16"]["act_bytes"] == 11 * 128 * 32 * 2, res


def test_bench_parallel_bytes_equal_the_formula(mpirun, tmp_path):
    out = tmp_path / "p.json"
    mpirun(2, APP / "bench_parallel.py", *TINY, "--steps", "1", "--json", out, timeout=300)
    res = json.loads(out.read_text())["layouts"]
    assert set(res) == {"1 rank", "dp 2", "dp 2 zero 1", "tp 2", "sp 2"}
    for name in ("dp 2", "dp 2 zero 1", "tp 2", "sp 2"):
        assert res[name]["bytes"] == res[name]["formula"] > 0, (name, res[name])
        assert res[name]["tokens_per_s"] > 0 and 0 <= res[name]["exposed_comm"] < 1


def test_bench_ckpt_times_every_mode(mpirun, tmp_path):
    out = tmp_path / "c.json"
    mpirun(2, APP / "bench_ckpt.py", *TINY, "--steps", "1", "--dir", tmp_path / "ck", "--json", out, timeout=300)
    res = json.loads(out.read_text())["results"]
    assert list(res) == ["none", "async", "async-rank0", "collective"]
    assert res["none"]["bytes"] == 0 and all(res[m]["bytes"] > 0 for m in ("async", "async-rank0", "collective"))
    # every mode's newest checkpoint is valid and holds the same step
    from baobab.checkpoint import validate
    for m in ("async", "async-rank0", "collective"):
        (newest,) = sorted((tmp_path / "ck" / m).glob("llm-*.h5"))[-1:]
        assert newest.name == "llm-0000000002.h5" and validate(newest) is None, (m, newest)

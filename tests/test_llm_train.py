"""The LLM app's training on one rank (apps/llm: optim.py, data.py, train.py):
10 AdamW steps against torch.optim.AdamW (same schedule, clipping, gradient
accumulation), the flat-array update, the schedule, the data sampler, and the
command line (a tiny run writing its HDF5 time series; bad options)."""
import math
import subprocess
import sys

import numpy as np
import pytest

import baobab
from conftest import HERE, clean_env, mpi_flavor, mpiexec_path

APP = HERE.parent / "apps" / "llm"
sys.path.insert(0, str(APP))

import data  # noqa: E402
import model as M  # noqa: E402
import optim  # noqa: E402
import train  # noqa: E402

TINY = ["--layers", "2", "--width", "24", "--heads", "3", "--context", "16", "--batch", "2"]


# ---- optimizer ---------------------------------------------------------------------------

def test_schedule_warmup_then_cosine():
    kw = dict(lr=1.0, warmup=4, total=14, min_lr=0.1)
    assert [optim.lr_at(s, **kw) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert optim.lr_at(4, **kw) == 1.0
    assert abs(optim.lr_at(9, **kw) - 0.55) < 1e-15  # half way down the cosine
    assert abs(optim.lr_at(13, **kw) - (0.1 + 0.45 * (1 + math.cos(math.pi * 0.9)))) < 1e-15
    assert optim.lr_at(14, **kw) == optim.lr_at(1000, **kw) == 0.1
    lrs = [optim.lr_at(s, **kw) for s in range(4, 15)]
    assert all(a > b for a, b in zip(lrs, lrs[1:]))
    assert optim.lr_at(0, lr=2.0, warmup=0, total=10) == 2.0


def test_flat_update_equals_per_parameter_update():
    """adamw_ on one flat buffer (a decay array marking the decayed part) gives
    the bits of the per-parameter AdamW (on two threads): a ZeRO slice may run it."""
    cfg = M.Config(vocab=30, context=8, layers=1, width=8, heads=2, dtype="float64")
    specs = M.param_specs(cfg)
    params = M.init_params(cfg, 1)
    rng = np.random.default_rng(2)
    opt = optim.AdamW(params, specs, weight_decay=0.3, decay_embeddings=True, threads=2)
    flat_p = np.concatenate([p.reshape(-1) for p in params.values()])
    wd = np.concatenate([np.full(p.size, 0.3 if optim.decays(specs[n], True) else 0.0) for n, p in params.items()])
    m, v = np.zeros_like(flat_p), np.zeros_like(flat_p)
    for step in range(1, 4):
        grads = {n: rng.standard_normal(p.shape) for n, p in params.items()}
        opt.update(params, grads, lr=0.01, grad_scale=0.7)
        g = np.concatenate([x.reshape(-1) for x in grads.values()])
        optim.adamw_(flat_p, g, m, v, step=step, lr=0.01, beta1=0.9, beta2=0.95, eps=1e-8, wd=wd, grad_scale=0.7)
    assert np.array_equal(flat_p, np.concatenate([p.reshape(-1) for p in params.values()]))
    again = flat_p.copy(), m.copy(), v.copy()  # the block size of the host loop changes no bit
    optim.adamw_(flat_p, g, m, v, step=4, lr=0.02, beta1=0.9, beta2=0.95, eps=1e-8, wd=wd)
    optim.adamw_(again[0], g, again[1], again[2], step=4, lr=0.02, beta1=0.9, beta2=0.95, eps=1e-8, wd=wd, block=7)
    assert np.array_equal(flat_p, again[0]) and np.array_equal(m, again[1]) and np.array_equal(v, again[2])
    # grad_scale is the gradient scaled beforehand (up to rounding)
    optim.adamw_(flat_p, g, m, v, step=5, lr=0.02, beta1=0.9, beta2=0.95, eps=1e-8, wd=wd, grad_scale=0.3)
    optim.adamw_(again[0], g * 0.3, again[1], again[2], step=5, lr=0.02, beta1=0.9, beta2=0.95, eps=1e-8, wd=wd)
    assert np.allclose(flat_p, again[0], rtol=1e-14, atol=0) and np.allclose(v, again[2], rtol=1e-14, atol=0)
    assert not optim.decays(specs["h0.ln1.w"], True) and not optim.decays(specs["h0.attn.proj.b"], True)
    assert optim.decays(specs["wte"], True) and not optim.decays(specs["wte"], False)
    assert optim.clip_coef(10.0, 1.0) == 1.0 / (10.0 + 1e-6) and optim.clip_coef(0.5, 1.0) == 1.0
    with pytest.raises(baobab.InvalidArgument, match="betas"):
        optim.AdamW(params, specs, betas=(1.0, 0.9))


def test_ten_adamw_steps_equal_torch():
    """train.Trainer (gradient accumulation over 2 micro-batches, clipping,
    warm-up + cosine, decoupled weight decay on the matrices only) against the
    torch GPT of test_llm_model trained by torch.optim.AdamW with
    clip_grad_norm_ and LambdaLR, from the same weights and batches, float64."""
    import torch  # noqa: F401
    from test_llm_model import torch_gpt
    steps, warmup, lr, min_lr, wd, clip = 10, 3, 3e-3, 3e-4, 0.1, 1.6
    a = train.parse(TINY + ["--dtype", "float64", "--accum", "2", "--steps", str(steps), "--warmup", str(warmup),
                            "--lr", str(lr), "--min-lr", str(min_lr), "--weight-decay", str(wd),
                            "--clip", str(clip), "--seed", "3", "--threads", "1"])
    tr = train.Trainer(a, baobab.init())
    W = {n: torch.nn.Parameter(torch.tensor(p)) for n, p in tr.params.items()}
    matrices = [W[n] for n, s in tr.specs.items() if s.kind == "matrix"]
    others = [W[n] for n, s in tr.specs.items() if s.kind != "matrix"]
    topt = torch.optim.AdamW([{"params": matrices, "weight_decay": wd}, {"params": others, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)

    def factor(s):  # the schedule, written again: warm-up, cosine to min_lr over steps warmup..steps
        if s < warmup:
            return (s + 1) / warmup
        t = (s - warmup) / (steps - warmup)
        return (min_lr + (lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t))) / lr
    sched = torch.optim.lr_scheduler.LambdaLR(topt, factor)
    ours, theirs, clipped, norms = [], [], 0, []
    for s in range(steps):
        batches = [tr.sampler.get(s, m) for m in range(2)]
        ours.append(tr.step(s)["loss"])
        topt.zero_grad()
        total = 0.0
        for x, y in batches:
            _, loss = torch_gpt(tr.cfg, W, torch.tensor(x), torch.tensor(y))
            (loss / 2).backward()
            total += loss.item() / 2
        theirs.append(total)
        norm = torch.nn.utils.clip_grad_norm_(list(W.values()), clip)
        clipped += norm.item() > clip
        norms.append(norm.item())
        topt.step()
        sched.step()
    assert 0 < clipped < steps  # clipping took part, but not in every step
    assert ours[-1] < ours[0]
    for o, t in zip(ours, theirs):
        assert abs(o - t) <= 1e-9 * abs(t), (ours, theirs)
    for n, p in tr.params.items():
        assert np.abs(p - W[n].detach().numpy()).max() <= 1e-9 * np.abs(p).max(), n


# ---- data --------------------------------------------------------------------------------

def test_tokenizer_corpus_and_split():
    text = "héllo, wörld\n" * 3
    t = data.encode(text)
    assert t.dtype == np.uint8 and len(t) == len(text.encode()) and data.decode(t) == text
    corpus = data.load()
    assert len(corpus) > 400_000 and data.decode(corpus) == data.default_corpus()
    train_t, val_t = data.split(corpus, 0.1)
    assert len(train_t) + len(val_t) == len(corpus) and abs(len(val_t) - 0.1 * len(corpus)) <= 1
    assert np.array_equal(np.concatenate([train_t, val_t]), corpus)
    with pytest.raises(baobab.InvalidArgument, match="val_fraction"):
        data.split(corpus, 1.0)


def test_sampler_shards_are_contiguous_and_restartable():
    tokens = np.arange(1000)  # a token's value is its position
    T, B, D = 10, 3, 3
    samplers = [data.Sampler(tokens, T, B, r, D, seed=4, accum=2) for r in range(D)]
    bounds = [data.shard_range(1000, r, D) for r in range(D)]
    assert bounds == [(0, 334), (334, 667), (667, 1000)]
    for r, s in enumerate(samplers):
        for step in range(12):
            x, y = s.get(step, step % 2)
            assert x.shape == y.shape == (B, T) and x.dtype == np.int64
            assert np.array_equal(y, x + 1)  # targets are the next tokens
            lo, hi = bounds[r]
            assert (x[:, 0] >= lo).all() and (y[:, -1] < hi).all()  # inside this rank's shard
            assert ((x[:, 0] - lo) % T == 0).all()  # at window boundaries
    # Restart: a fresh sampler gives the same batch for the same (step, micro).
    again = data.Sampler(tokens, T, B, 1, D, seed=4, accum=2)
    assert np.array_equal(again.get(7, 0)[0], samplers[1].get(7, 0)[0])
    assert not np.array_equal(samplers[1].get(7, 0)[0], samplers[1].get(7, 1)[0])
    # One epoch visits every window once, the next in another order.
    s = data.Sampler(tokens, T, 1, 0, 1, seed=1)
    assert s.windows == 99
    epoch0 = [int(s.window(k)[0][0]) for k in range(99)]
    epoch1 = [int(s.window(k)[0][0]) for k in range(99, 198)]
    assert sorted(epoch0) == sorted(epoch1) == [w * T for w in range(99)] and epoch0 != epoch1
    with pytest.raises(baobab.InvalidArgument, match="too short"):
        data.Sampler(tokens[:20], 10, 1, 1, 2)


def test_eval_batches_are_fixed_and_sharded():
    tokens = np.arange(500)
    b0 = data.eval_batches(tokens, 10, 2, 3, 0, 2)
    b1 = data.eval_batches(tokens, 10, 2, 3, 1, 2)
    assert len(b0) == len(b1) == 3
    assert b0[0][0][0, 0] == 0 and b1[0][0][0, 0] == 250 and b1[2][1][1, -1] == 310
    assert len(data.eval_batches(tokens[:45], 10, 2, 3)) == 2
    assert np.array_equal(b0[1][0], data.eval_batches(tokens, 10, 2, 3, 0, 2)[1][0])


# ---- command line ------------------------------------------------------------------------

def run_cli(args, n=None, timeout=120):
    cmd = ([mpiexec_path(), "-n", str(n)] + (["--oversubscribe"] if mpi_flavor() == "openmpi" else [])
           if n else [])
    cmd += [sys.executable, str(APP / "train.py"), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=clean_env(), timeout=timeout)


def test_cli_tiny_run_writes_metrics(tmp_path):
    import h5py
    out = tmp_path / "run"
    p = run_cli(TINY + ["--steps", "4", "--warmup", "2", "--eval-every", "2", "--eval-batches", "2",
                        "--out", out, "--threads", "1"], n=1)
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("step ") == 4 and "val " in p.stdout and p.stderr == ""
    with h5py.File(out / "metrics.h5", "r") as f:
        tr = {k: f["train"][k][()] for k in f["train"]}
        assert list(tr["step"]) == [0, 1, 2, 3]
        assert np.isfinite(tr["loss"]).all() and (tr["loss"] > 0).all()
        want = [optim.lr_at(s, lr=1e-3, warmup=2, total=4, min_lr=1e-4) for s in range(4)]
        assert np.allclose(tr["lr"], want, rtol=1e-15)
        assert (tr["tokens_per_s"] > 0).all() and (tr["flops_per_s"] > 0).all()
        assert np.allclose(tr["t_compute"] + tr["t_comm"] + tr["t_optim"], tr["t_step"])
        assert list(f["val"]["step"][()]) == [1, 3] and np.isfinite(f["val"]["loss"][()]).all()
        assert f.attrs["params"] == M.num_params(M.Config(vocab=256, context=16, layers=2, width=24, heads=3))
        assert '"steps": 4' in f.attrs["config"]


def test_cli_bfloat16_activations_train_like_float32_in_a_third_less_memory(tmp_path):
    """Two ranks of data parallelism, float32, 12 steps: with --act-dtype bfloat16 the
    first loss is the float32 run's bit for bit (the forward pass is unchanged), the
    later ones stay within 1 %, and act_bytes falls by exactly the formula."""
    import h5py
    runs = {}
    for act in ("same", "bfloat16"):
        out = tmp_path / act
        p = run_cli(TINY + ["--steps", "12", "--warmup", "2", "--lr", "3e-3", "--eval-every", "0",
                            "--eval-batches", "1", "--dp", "2", "--threads", "1", "--act-dtype", act,
                            "--no-ckpt", "--out", out], n=2, timeout=180)
        assert p.returncode == 0, p.stderr
        with h5py.File(out / "metrics.h5", "r") as f:
            runs[act] = (f["train"]["loss"][()], f["train"]["act_bytes"][()])
    (l32, a32), (l16, a16) = runs["same"], runs["bfloat16"]
    assert l32[0] == l16[0] and np.abs(l16 / l32 - 1).max() < 1e-2 and l16[-1] < l16[0] - 0.1, (l32, l16)
    N, C, L = 2 * 16, 24, 2          # --batch 2 x --seq-len 16 tokens, --width 24, --layers 2
    assert (a32 - a16 == L * 11 * N * C * 2).all(), (a32, a16)
    p = run_cli(TINY + ["--act-dtype", "bfloat16", "--dtype", "float64"])
    assert p.returncode == 2 and "--act-dtype" in p.stderr and len(p.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args, word", [
    (["--width", "30", "--heads", "4"], "--width"), (["--tp", "4", "--heads", "6"], "--tp"),
    (["--lr", "nan"], "--lr"), (["--lr", "-1"], "--lr"), (["--steps", "0"], "--steps"),
    (["--seq-len", "300"], "--seq-len"), (["--sp", "3", "--seq-len", "5", "--context", "8"], "--seq-len"),
    (["--beta2", "1"], "--beta2"), (["--data", "/nonexistent/file"], "--data"), (["--bogus"], "--bogus"),
    (["--dtype", "float16"], "--dtype"), (["--min-lr", "1", "--lr", "0.1"], "--min-lr"),
    (["--batch", "x"], "--batch")])
def test_cli_refuses_bad_options_with_one_line(args, word):
    p = run_cli(args)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0] and lines[0].startswith("llm-train: error:"), p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("args, word", [(["--dp", "2"], "ranks"), (["--out", "/proc/nope"], "--out")])
def test_cli_refuses_a_grid_or_output_it_cannot_use(args, word, tmp_path):
    p = run_cli(TINY + ["--steps", "1"] + args + ([] if "--out" in args else ["--out", tmp_path]), n=1)
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and word in lines[0], p.stderr


def test_cli_data_too_short(tmp_path):
    f = tmp_path / "tiny.txt"
    f.write_text("abc" * 10)
    p = run_cli(TINY + ["--data", f, "--out", tmp_path / "o"], n=1)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "--data" in p.stderr

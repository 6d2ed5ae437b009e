"""The LLM app's model (apps/llm/model.py) on one rank against an independent
PyTorch implementation of the same GPT (autograd, weights copied from ours):
logits, loss and every parameter gradient; parameter specs, initialisation and
the configuration checks."""
import math
import sys

import numpy as np
import pytest

import baobab
from conftest import HERE

sys.path.insert(0, str(HERE.parent / "apps" / "llm"))

import model as M  # noqa: E402

import torch  # noqa: E402  (a test dependency: make test installs it)
F = torch.nn.functional


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def torch_gpt(cfg, W, tokens, targets):
    """GPT-2 written directly in torch: returns (logits, mean loss)."""
    B, T = tokens.shape
    C, H = cfg.width, cfg.heads
    d = C // H
    x = W["wte"][tokens] + W["wpe"][torch.arange(T)]
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    for i in range(cfg.layers):
        p = lambda n: W[f"h{i}.{n}"]  # noqa: E731
        h = F.layer_norm(x, (C,), p("ln1.w"), p("ln1.b"), cfg.ln_eps)
        qkv = h @ p("attn.qkv.w").reshape(C, 3 * C) + p("attn.qkv.b").reshape(3 * C)
        q, k, v = (t.reshape(B, T, H, d).transpose(1, 2) for t in qkv.split(C, dim=-1))
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d)
        s = s.masked_fill(~mask, float("-inf"))
        y = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p("attn.proj.w") + p("attn.proj.b")
        h = F.layer_norm(x, (C,), p("ln2.w"), p("ln2.b"), cfg.ln_eps)
        x = x + F.gelu(h @ p("mlp.fc.w") + p("mlp.fc.b"), approximate="tanh") @ p("mlp.proj.w") + p("mlp.proj.b")
    x = F.layer_norm(x, (C,), W["lnf.w"], W["lnf.b"], cfg.ln_eps)
    logits = x @ W["wte"].T
    loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(-1))
    return logits, loss


def perturbed(cfg, seed):
    """Initial weights with the zero biases and unit gains made random, so that
    every gradient path is exercised."""
    params = M.init_params(cfg, seed)
    rng = np.random.default_rng(seed + 1)
    for name, p in params.items():
        if M.param_specs(cfg)[name].kind in ("bias", "norm"):
            p += rng.standard_normal(p.shape).astype(p.dtype) * 0.1
    return params


def batch(cfg, B, T, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, cfg.vocab, (B, T)), rng.integers(0, cfg.vocab, (B, T))


def run_both(cfg, B, T, seed=0):
    params = perturbed(cfg, seed)
    tokens, targets = batch(cfg, B, T, seed + 7)
    gpt = M.GPT(cfg)
    cache = gpt.forward(params, tokens, targets, keep_logits=True)
    grads = M.zeros_like_params(params)
    gpt.backward(params, cache, grads)
    W = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    logits, loss = torch_gpt(cfg, W, torch.tensor(tokens), torch.tensor(targets))
    loss.backward()
    return cache, grads, logits, loss, W


@pytest.mark.parametrize("shape", [dict(vocab=67, context=16, layers=2, width=24, heads=3),
                                   dict(vocab=256, context=9, layers=1, width=16, heads=1)])
def test_float64_logits_loss_and_every_gradient_equal_torch(shape):
    cfg = M.Config(dtype="float64", **shape)
    B, T = 3, cfg.context - 2 if cfg.context > 9 else cfg.context
    cache, grads, logits, loss, W = run_both(cfg, B, T)
    assert cache.ntok == B * T
    assert rel(cache.logits, logits.detach().numpy()) < 1e-10
    assert abs(cache.loss_sum / cache.ntok - loss.item()) < 1e-10 * abs(loss.item())
    assert set(grads) == set(W)
    for name, g in grads.items():
        ref = W[name].grad.numpy()
        assert np.abs(ref).max() > 0, name
        assert rel(g, ref) < 1e-10, (name, rel(g, ref))


def test_float32_close_to_torch_float64():
    cfg = M.Config(vocab=67, context=16, layers=2, width=32, heads=4, dtype="float32")
    cache, grads, logits, loss, W = run_both(cfg, 2, 16)
    assert cache.logits.dtype == np.float32
    assert rel(cache.logits, logits.detach().numpy()) < 1e-5
    assert abs(cache.loss_sum / cache.ntok - loss.item()) < 1e-5 * abs(loss.item())
    for name, g in grads.items():
        assert g.dtype == np.float32
        assert rel(g, W[name].grad.numpy()) < 1e-4, name


def test_bfloat16_activations_same_forward_close_gradients_and_the_memory_formula():
    """act_dtype="bfloat16": the forward pass is the float32 one bit for bit; the
    gradients (from the activations rounded to bfloat16) stay within 1 % of
    PyTorch's float64 ones; the activation memory falls by exactly 11 N C x 2
    bytes per layer (h1, y, h2: N x C each, u and g: N x 4C, stored at half
    the width)."""
    cfg = M.Config(vocab=67, context=16, layers=2, width=32, heads=4, dtype="float32")
    params = perturbed(cfg, 5)
    tokens, targets = batch(cfg, 3, 16, 6)
    full, half = M.GPT(cfg), M.GPT(cfg, act_dtype="bfloat16")
    c32 = full.forward(params, tokens, targets, keep_logits=True)
    c16 = half.forward(params, tokens, targets, keep_logits=True)
    assert np.array_equal(c32.logits, c16.logits) and c32.loss_sum == c16.loss_sum
    N, C = 3 * 16, cfg.width
    assert c32.nbytes() - c16.nbytes() == cfg.layers * 11 * N * C * 2, (c32.nbytes(), c16.nbytes())
    g32, g16 = M.zeros_like_params(params), M.zeros_like_params(params)
    full.backward(params, c32, g32)
    half.backward(params, c16, g16)
    W = {k: torch.tensor(v.astype(np.float64), requires_grad=True) for k, v in params.items()}
    _, loss = torch_gpt(cfg, W, torch.tensor(tokens), torch.tensor(targets))
    loss.backward()
    worst = max(rel(g16[n], W[n].grad.numpy()) for n in params)
    assert worst < 1e-2, worst
    assert all(g16[n].dtype == np.float32 for n in params)
    assert any(not np.array_equal(g16[n], g32[n]) for n in params)   # the rounded activations were used
    with pytest.raises(baobab.InvalidArgument, match="float32 model"):
        M.GPT(M.Config(dtype="float64"), act_dtype="bfloat16")
    with pytest.raises(baobab.InvalidArgument, match="act_dtype"):
        M.GPT(cfg, act_dtype="float16")


def test_backward_accumulates_and_reports_gradients_in_reverse_order():
    cfg = M.Config(vocab=40, context=8, layers=2, width=16, heads=2, dtype="float64")
    params = perturbed(cfg, 3)
    tokens, targets = batch(cfg, 2, 8, 4)
    gpt = M.GPT(cfg)
    once = M.zeros_like_params(params)
    gpt.backward(params, gpt.forward(params, tokens, targets), once)
    twice = M.zeros_like_params(params)
    order = []
    for _ in range(2):
        gpt.backward(params, gpt.forward(params, tokens, targets), twice, on_grad=order.append)
    for name in params:
        assert np.allclose(twice[name], 2 * once[name], rtol=1e-14, atol=0)
    names = list(M.param_specs(cfg))
    assert order == names[::-1] * 2
    # accumulate=False overwrites whatever the buffers held
    fresh = {n: np.full_like(g, np.nan) for n, g in once.items()}
    gpt.backward(params, gpt.forward(params, tokens[:, :6], targets[:, :6]), fresh, accumulate=False)
    zero = M.zeros_like_params(params)
    gpt.backward(params, gpt.forward(params, tokens[:, :6], targets[:, :6]), zero)
    for name in params:
        assert np.array_equal(fresh[name], zero[name]), name
    # forward without gradients gives the same loss
    c = gpt.forward(params, tokens, targets, grad=False)
    assert abs(c.loss_sum - gpt.forward(params, tokens, targets).loss_sum) < 1e-12 * abs(c.loss_sum)
    with pytest.raises(baobab.InvalidArgument, match="backward"):
        gpt.backward(params, c, twice)


def test_param_specs_and_init():
    cfg = M.Config(vocab=257, context=32, layers=3, width=48, heads=4, dtype="float64")
    specs = M.param_specs(cfg)
    C = 48
    assert specs["wte"] == M.Spec((257, C), 0, "embedding")
    assert specs["h0.attn.qkv.w"] == M.Spec((C, 3, C), 2, "matrix")
    assert specs["h0.attn.qkv.b"].axis == 1 and specs["h0.attn.proj.w"].axis == 0
    assert specs["h0.attn.proj.b"].axis is None and specs["h0.mlp.fc.w"] == M.Spec((C, 4 * C), 1, "matrix")
    assert specs["h2.mlp.proj.w"] == M.Spec((4 * C, C), 0, "matrix") and specs["wpe"].axis is None
    assert M.num_params(cfg) == sum(int(np.prod(s.shape)) for s in specs.values())
    assert M.num_params(cfg) == 257 * C + 32 * C + 3 * (12 * C * C + 13 * C) + 2 * C
    full = M.init_params(cfg, 5)
    assert all(full[n].shape == s.shape and full[n].dtype == np.float64 for n, s in specs.items())
    assert abs(full["wte"].std() - 0.02) < 0.002
    assert abs(full["h1.mlp.proj.w"].std() - 0.02 / math.sqrt(6)) < 0.001
    assert (full["h0.ln1.w"] == 1).all() and (full["h0.mlp.fc.b"] == 0).all()
    # Every TP layout starts from the same weights; the vocabulary is padded with zero rows.
    for tp in (2, 4):
        parts = [M.init_params(cfg, 5, r, tp) for r in range(tp)]
        assert parts[0]["wte"].shape == (M.padded_vocab(257, tp) // tp, C)
        assert (parts[-1]["wte"][257 - (tp - 1) * parts[0]["wte"].shape[0]:] == 0).all()
        assert parts[1]["h0.attn.qkv.w"].shape == (C, 3, C // tp)
        for n, s in specs.items():
            assert np.array_equal(M.gather_param(s, [p[n] for p in parts]), full[n]), n
    assert not np.array_equal(M.init_params(cfg, 6)["wte"], full["wte"])
    assert M.init_params(cfg, 5, xp=np)["h2.attn.proj.w"].tobytes() == full["h2.attn.proj.w"].tobytes()


@pytest.mark.parametrize("kw, match", [(dict(width=30, heads=4), "multiple of heads"),
                                        (dict(layers=0), "layers"), (dict(vocab=2.5), "vocab"),
                                        (dict(dtype="float16"), "dtype"), (dict(heads=True), "heads")])
def test_config_refuses_bad_values(kw, match):
    with pytest.raises(baobab.InvalidArgument, match=match):
        M.Config(**kw)


def test_forward_refuses_bad_input():
    cfg = M.Config(vocab=20, context=8, layers=1, width=8, heads=2, dtype="float64")
    params = M.init_params(cfg, 0)
    gpt = M.GPT(cfg)
    with pytest.raises(baobab.InvalidArgument, match="20"):
        gpt.forward(params, np.full((1, 4), 20), None)
    with pytest.raises(baobab.InvalidArgument, match="context"):
        gpt.forward(params, np.zeros((1, 9), np.int64))
    with pytest.raises(baobab.InvalidArgument, match="shape"):
        gpt.forward(params, np.zeros((1, 4), np.int64), np.zeros((1, 3), np.int64))
    with pytest.raises(baobab.InvalidArgument, match="heads"):
        M.init_params(cfg, 0, 0, 4)
    bad = dict(params)
    bad["h0.ln1.w"] = bad["h0.ln1.w"][:4]
    with pytest.raises(baobab.InvalidArgument, match="h0.ln1.w"):
        gpt.check_params(bad)

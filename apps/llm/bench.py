"""Training throughput on one rank: this app's GPT (numpy BLAS, baobab
attention, ops.py) against PyTorch eager training the identical model
(same weights, batches, AdamW and clipping), with the same thread count, in
the same run.

    python apps/llm/bench.py                       # the ~10M GPT of the issue, 1 and 2 threads
    python apps/llm/bench.py --threads 1 --steps 5 --profile

For each thread count a child process is started with OPENBLAS_NUM_THREADS /
OMP_NUM_THREADS set before numpy loads, as train.py sets them (and
OPENBLAS_THREAD_TIMEOUT=4; torch.set_num_threads inside the child); it
times --steps training steps of each implementation after --warmup untimed
ones, alternating the two, and prints tokens/s (from the median step). PyTorch
(a test extra, pip install torch) is needed for the comparison only.
--profile adds the time per part of our step (forward, backward by layer
part, optimizer).
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def parse(argv):
    p = argparse.ArgumentParser(prog="llm-bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--width", type=int, default=384)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=4, help="timed steps per implementation")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--no-torch", action="store_true", help="time this app only")
    p.add_argument("--bf16-acts", action="store_true",
                   help="also time this app with --act-dtype bfloat16 (its own copy of the model), and report the "
                        "activation memory of both")
    p.add_argument("--profile", action="store_true", help="time the parts of our step")
    p.add_argument("--json", default=None, help="also write the results to this file")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    for name in ("layers", "width", "heads", "context", "batch", "steps"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1")
    if a.warmup < 0 or any(t < 1 for t in a.threads) or a.width % a.heads:
        p.error("--warmup must be >= 0, --threads >= 1, --width a multiple of --heads")
    return a


# ---- the PyTorch reference model (the same math and parameter layout) -------------------------

def torch_model(cfg, params, torch):
    """A torch.nn.Module holding copies of our parameters (same names, '.' -> '_')."""
    F = torch.nn.functional

    class GPT(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.ParameterDict({k.replace(".", "_"): torch.nn.Parameter(torch.tensor(v))
                                             for k, v in params.items()})

        def forward(self, idx, targets):
            W = self.p
            B, T = idx.shape
            C, H = cfg.width, cfg.heads
            x = W["wte"][idx] + W["wpe"][:T]
            for i in range(cfg.layers):
                p = lambda n: W[f"h{i}_{n}"]  # noqa: E731
                h = F.layer_norm(x, (C,), p("ln1_w"), p("ln1_b"), cfg.ln_eps)
                qkv = F.linear(h, p("attn_qkv_w").reshape(C, 3 * C).t(), p("attn_qkv_b").reshape(-1))
                q, k, v = (t.view(B, T, H, C // H).transpose(1, 2) for t in qkv.split(C, dim=2))
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
                x = x + F.linear(y, p("attn_proj_w").t(), p("attn_proj_b"))
                h = F.layer_norm(x, (C,), p("ln2_w"), p("ln2_b"), cfg.ln_eps)
                h = F.gelu(F.linear(h, p("mlp_fc_w").t(), p("mlp_fc_b")), approximate="tanh")
                x = x + F.linear(h, p("mlp_proj_w").t(), p("mlp_proj_b"))
            x = F.layer_norm(x, (C,), W["lnf_w"], W["lnf_b"], cfg.ln_eps)
            logits = F.linear(x, W["wte"])
            return F.cross_entropy(logits.view(B * T, -1), targets.view(-1))

    return GPT()


# ---- one thread count (child process) -------------------------------------------------------

class _Timer:
    """Wraps the model's methods to time forward, backward and attention parts."""

    def __init__(self):
        self.t = {}

    def wrap(self, obj, name, label):
        f = getattr(obj, name)

        def timed(*args, **kw):
            t0 = time.perf_counter()
            try:
                return f(*args, **kw)
            finally:
                self.t[label] = self.t.get(label, 0.0) + time.perf_counter() - t0
        setattr(obj, name, timed)


def child(a):
    from train import keep_freed_memory
    keep_freed_memory()
    import numpy as np

    import data
    import ops as K
    import model as M
    import optim

    threads = a.threads[0]
    cfg = M.Config(vocab=data.VOCAB, context=a.context, layers=a.layers, width=a.width, heads=a.heads,
                   dtype=a.dtype)
    specs = M.param_specs(cfg)
    params = M.init_params(cfg, 1)
    sampler = data.Sampler(data.split(data.load())[0], a.context, a.batch, seed=1)
    gpt = M.GPT(cfg, threads=threads)
    flat, grads = M.flat_zeros(params)
    opt = optim.AdamW(params, specs, weight_decay=0.1, threads=threads)
    ntok = a.batch * a.context
    timer = _Timer() if a.profile else None
    if timer:
        for name in ("_block_forward", "_block_backward", "_attention", "_attention_backward", "_xent", "_embed"):
            timer.wrap(gpt, name, name.strip("_"))
        for name in ("layernorm_forward", "layernorm_backward", "bias_gelu_forward", "gelu_backward",
                     "bias_residual", "bias_grad"):
            timer.wrap(K, name, name)

    act_bytes = {}

    def make_ours(name, gpt, params, grads, opt):
        def ours(step):
            x, y = sampler.get(step)
            c = gpt.forward(params, x, y, loss_scale=1.0 / ntok)
            act_bytes[name] = c.nbytes()
            loss = c.loss_sum / ntok
            gpt.backward(params, c, grads, accumulate=False)
            del c
            t = time.perf_counter()
            coef = optim.clip_coef(optim.global_grad_norm(grads, specs), 1.0)
            opt.update(params, grads, 1e-3, grad_scale=coef)
            if timer and name == "ours":
                timer.t["optimizer"] = timer.t.get("optimizer", 0.0) + time.perf_counter() - t
            return loss
        return ours

    impls = {"ours": make_ours("ours", gpt, params, grads, opt)}
    if a.bf16_acts:
        p16 = {k: v.copy() for k, v in M.init_params(cfg, 1).items()}
        _, g16 = M.flat_zeros(p16)
        impls["ours_bf16"] = make_ours("ours_bf16", M.GPT(cfg, threads=threads, act_dtype="bfloat16"), p16, g16,
                                       optim.AdamW(p16, specs, weight_decay=0.1, threads=threads))
    torch_version = None
    if not a.no_torch:
        try:
            import torch
        except ImportError:
            print("llm-bench: PyTorch is not installed (pip install torch): timing this app only", file=sys.stderr)
        else:
            torch.set_num_threads(threads)
            torch_version = torch.__version__
            tm = torch_model(cfg, params, torch)
            tparams = list(tm.parameters())
            decay = [tm.p[k.replace(".", "_")] for k, s in specs.items() if s.kind == "matrix"]
            rest = [tm.p[k.replace(".", "_")] for k, s in specs.items() if s.kind != "matrix"]
            topt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                     lr=1e-3, betas=(0.9, 0.95))

            def theirs(step):
                x, y = sampler.get(step)
                topt.zero_grad(set_to_none=True)
                loss = tm(torch.from_numpy(x), torch.from_numpy(y))
                loss.backward()
                torch.nn.utils.clip_grad_norm_(tparams, 1.0)
                topt.step()
                return loss.item()
            impls["torch"] = theirs
    times = {k: [] for k in impls}
    losses = {k: [] for k in impls}
    for step in range(a.warmup + a.steps):
        for name, f in impls.items():
            if timer and name == "ours" and step == a.warmup:
                timer.t.clear()
            t = time.perf_counter()
            losses[name].append(f(step))
            if step >= a.warmup:
                times[name].append(time.perf_counter() - t)
    res = {"threads": threads, "tokens_per_step": ntok, "params": M.num_params(cfg), "torch_version": torch_version,
           "numpy": np.__version__}
    for name in impls:
        med = float(np.median(times[name]))
        res[name] = {"step_s": med, "tokens_per_s": ntok / med, "losses": losses[name], "times": times[name]}
        if name in act_bytes:
            res[name]["act_bytes"] = act_bytes[name]
    if timer:
        res["profile_s_per_step"] = {k: v / a.steps for k, v in sorted(timer.t.items(), key=lambda kv: -kv[1])}
    print("RESULT " + json.dumps(res), flush=True)


def main(argv=None):
    from train import set_blas_threads
    a = parse(sys.argv[1:] if argv is None else argv)
    if a.child:
        return child(a)
    results = []
    for t in a.threads:
        env = dict(os.environ)
        set_blas_threads(t)  # in this process's environment, which the child inherits
        env.update({k: os.environ[k] for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                               "OPENBLAS_THREAD_TIMEOUT")})
        args = [sys.executable, os.path.abspath(__file__), "--child", "--threads", str(t)]
        for k in ("layers", "width", "heads", "context", "batch", "dtype", "steps", "warmup"):
            args += [f"--{k}", str(getattr(a, k))]
        args += ["--no-torch"] * a.no_torch + ["--profile"] * a.profile + ["--bf16-acts"] * a.bf16_acts
        p = subprocess.run(args, env=env, capture_output=True, text=True)
        sys.stderr.write(p.stderr)
        line = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
        if p.returncode or not line:
            print(f"llm-bench: the run with {t} threads failed (exit {p.returncode})", file=sys.stderr)
            return 1
        r = json.loads(line[-1][7:])
        results.append(r)
        msg = (f"threads {t}: ours {r['ours']['tokens_per_s']:,.0f} tokens/s ({r['ours']['step_s'] * 1e3:.0f} ms/step)")
        if "torch" in r:
            ratio = r["ours"]["tokens_per_s"] / r["torch"]["tokens_per_s"]
            msg += (f", PyTorch {r['torch_version']} eager {r['torch']['tokens_per_s']:,.0f} tokens/s "
                    f"({r['torch']['step_s'] * 1e3:.0f} ms/step): {ratio:.2f}x")
            diff = max(abs(x - y) for x, y in zip(r["ours"]["losses"], r["torch"]["losses"]))
            msg += f"; losses agree to {diff:.1e}"
        print(msg, flush=True)
        if "ours_bf16" in r:
            o, h = r["ours"], r["ours_bf16"]
            d = max(abs(x - y) for x, y in zip(o["losses"], h["losses"]))
            print(f"    bfloat16 activations: {h['tokens_per_s']:,.0f} tokens/s "
                  f"({h['tokens_per_s'] / o['tokens_per_s']:.2f}x float32 activations), activation memory "
                  f"{h['act_bytes'] / 2**20:.1f} MiB against {o['act_bytes'] / 2**20:.1f} MiB "
                  f"({h['act_bytes'] / o['act_bytes']:.2f}x); losses within {d:.1e}", flush=True)
        if "profile_s_per_step" in r:
            for k, v in r["profile_s_per_step"].items():
                print(f"    {k:22s} {v * 1e3:8.1f} ms/step")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": dict(layers=a.layers, width=a.width, heads=a.heads, context=a.context,
                                     batch=a.batch, dtype=a.dtype), "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

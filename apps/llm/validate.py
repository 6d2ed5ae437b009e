"""Validation of the training: this app's GPT and PyTorch eager training the
identical model (same initial weights, same batches, same AdamW, clipping and
learning-rate schedule), in float32 on the default corpus, in the same run.
Both losses are measured on the same validation batches at the same steps;
the app passes when its final validation loss is within --tolerance (default
2 %) of PyTorch's and below the loss of a uniform guess over the bytes.

    python apps/llm/validate.py                          # 4 x 128, context 128, 300 steps
    python apps/llm/validate.py --steps 600 --json val.json

PyTorch (pip install torch, a test extra) is required. Exit status: 0 pass,
1 fail, 2 bad options or no PyTorch (one line).
"""
import argparse
import json
import math
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def parse(argv):
    p = argparse.ArgumentParser(prog="llm-validate", description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--context", type=int, default=128)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--eval-every", type=int, default=50)
    p.add_argument("--eval-batches", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tolerance", type=float, default=0.02)
    p.add_argument("--act-dtype", default="same", choices=["same", "bfloat16"],
                   help="this app's activations kept for backward (PyTorch keeps float32 ones)")
    p.add_argument("--json", default=None)
    a = p.parse_args(argv)
    for k in ("layers", "width", "heads", "context", "batch", "steps", "eval_every", "eval_batches", "threads"):
        if getattr(a, k) < 1:
            p.error(f"--{k.replace('_', '-')} must be at least 1")
    if a.width % a.heads:
        p.error("--width must be a multiple of --heads")
    if not (a.lr > 0 and 0 < a.tolerance < 1):
        p.error("--lr must be positive and --tolerance in (0, 1)")
    return a


def main(argv=None):
    a = parse(sys.argv[1:] if argv is None else argv)
    from train import keep_freed_memory, set_blas_threads
    set_blas_threads(a.threads)
    keep_freed_memory()
    try:
        import torch
    except ImportError:
        print("llm-validate: PyTorch is needed (pip install torch==2.13.0)", file=sys.stderr)
        return 2
    import numpy as np

    import data
    import model as M
    import optim
    from bench import torch_model
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = M.Config(vocab=data.VOCAB, context=a.context, layers=a.layers, width=a.width, heads=a.heads,
                   dtype="float32")
    specs = M.param_specs(cfg)
    params = M.init_params(cfg, a.seed)
    train_tok, val_tok = data.split(data.load())
    sampler = data.Sampler(train_tok, a.context, a.batch, seed=a.seed)
    evals = data.eval_batches(val_tok, a.context, a.batch, a.eval_batches)
    ntok = a.batch * a.context
    min_lr = a.lr / 10
    beta, eps, wd, clip = (0.9, 0.95), 1e-8, 0.1, 1.0

    tm = torch_model(cfg, params, torch)  # copies of the initial weights
    tparams = list(tm.parameters())
    decay = [tm.p[k.replace(".", "_")] for k, s in specs.items() if optim.decays(s)]
    rest = [tm.p[k.replace(".", "_")] for k, s in specs.items() if not optim.decays(s)]
    topt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}],
                             lr=a.lr, betas=beta, eps=eps)
    gpt = M.GPT(cfg, threads=a.threads, act_dtype=None if a.act_dtype == "same" else a.act_dtype)
    _, grads = M.flat_zeros(params)
    opt = optim.AdamW(params, specs, betas=beta, eps=eps, weight_decay=wd, threads=a.threads)

    def val_ours():
        s = n = 0.0
        for x, y in evals:
            c = gpt.forward(params, x, y, grad=False)
            s, n = s + c.loss_sum, n + c.ntok
        return s / n

    def val_torch():
        with torch.no_grad():
            return float(np.mean([tm(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))).item()
                                for x, y in evals]))

    rows, t_ours, t_torch = [], 0.0, 0.0
    for step in range(a.steps):
        lr = optim.lr_at(step, lr=a.lr, warmup=a.warmup, total=a.steps, min_lr=min_lr)
        x, y = sampler.get(step)
        t = time.perf_counter()
        c = gpt.forward(params, x, y, loss_scale=1.0 / ntok)
        loss = c.loss_sum / ntok
        gpt.backward(params, c, grads, accumulate=False)
        del c
        norm = optim.global_grad_norm(grads, specs)
        opt.update(params, grads, lr, grad_scale=optim.clip_coef(norm, clip))
        t_ours += time.perf_counter() - t
        t = time.perf_counter()
        for g in topt.param_groups:
            g["lr"] = lr
        topt.zero_grad(set_to_none=True)
        tl = tm(torch.from_numpy(x), torch.from_numpy(y))
        tl.backward()
        torch.nn.utils.clip_grad_norm_(tparams, clip)
        topt.step()
        t_torch += time.perf_counter() - t
        last = step == a.steps - 1
        if last or (step + 1) % a.eval_every == 0:
            vo, vt = val_ours(), val_torch()
            rows.append(dict(step=step + 1, train_ours=loss, train_torch=tl.item(), val_ours=vo, val_torch=vt))
            print(f"step {step + 1}/{a.steps} train {loss:.4f} / torch {tl.item():.4f}  "
                  f"validation {vo:.4f} / torch {vt:.4f}", flush=True)
    vo, vt = rows[-1]["val_ours"], rows[-1]["val_torch"]
    ratio = vo / vt
    uniform = math.log(cfg.vocab)
    ok = abs(ratio - 1) <= a.tolerance and vo < uniform
    res = dict(config=vars(a), params=M.num_params(cfg), rows=rows, final_val_ours=vo, final_val_torch=vt,
               ratio=ratio, seconds_ours=t_ours, seconds_torch=t_torch, torch=torch.__version__, ok=ok)
    print(f"llm-validate: final validation loss {vo:.4f} (PyTorch {vt:.4f}, ratio {ratio:.4f}, tolerance "
          f"{a.tolerance:.0%}; uniform guess {uniform:.3f}); training time ours {t_ours:.1f} s, PyTorch "
          f"{t_torch:.1f} s: {'PASS' if ok else 'FAIL'}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Time of the LLM kernels against their numpy fallback and PyTorch, in one run.

    python apps/llm/bench_ops.py [--rows 2048] [--cols 384] [--vocab 256] [--dtype float32] [--reps 30]

For each kernel of apps/llm/ops.py: the compiled kernel on 1 and 2
threads, the numpy fallback (kernels.fallback, what the model would run
without the extension), and the equivalent PyTorch eager ops on 1 and 2
threads when torch is importable (native_layer_norm and its backward, add +
gelu(approximate='tanh'), gelu_backward, adds, sum, cross_entropy forward and
backward, .to(bfloat16)). Shapes: (rows, cols) for the row kernels, (rows,
vocab) for the cross-entropy. The candidates of a kernel are timed in turn,
round after round, and each keeps its best of --reps calls, so that load from
other processes on a shared machine falls on all of them alike. PyTorch's
OpenMP threads spin for a while after each parallel op and would take the
second core from whatever runs next, so its two candidates are timed as a
group of their own after the others, followed by a pause. The table
gives microseconds per call, the compiled kernel's memory rate on one thread
(bytes read and written by the kernel itself / time) and its speed-up over numpy
and over PyTorch on the same thread count. Asserts nothing about time; bad
options print one line to stderr and exit 2.
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ops as K  # noqa: E402


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not the usage block
        print(f"bench_kernels: {message}", file=sys.stderr)
        sys.exit(2)


def best_times(fns, reps):
    """Best time of each (setup, fn) pair, timed in turn for `reps` rounds (setup untimed)."""
    best = [float("inf")] * len(fns)
    for r in range(reps + 1):  # round 0: warm-up (first touch of outputs, thread start-up paths)
        for i, (setup, fn) in enumerate(fns):
            setup()
            t0 = time.perf_counter()
            fn()
            if r:
                best[i] = min(best[i], time.perf_counter() - t0)
    return best


def cases(n, c, v, dt, rng, torch):
    """(name, bytes moved, compiled(threads), numpy(), torch() or None) per kernel."""
    x = (1 + rng.standard_normal((n, c))).astype(dt)
    w, b = rng.standard_normal(c).astype(dt), rng.standard_normal(c).astype(dt)
    dy, r = rng.standard_normal((n, c)).astype(dt), rng.standard_normal((n, c)).astype(dt)
    _, mean, rstd = K.layernorm_forward(x, w, b)
    logits = (3 * rng.standard_normal((n, v))).astype(dt)
    work = logits.copy()
    targets = rng.integers(0, v, n).astype(np.int64)
    scale = 1.0 / n
    bf = K.to_bfloat16(x)
    e = np.dtype(dt).itemsize
    mat, vec, rows = n * c * e, c * e, n * e
    out = [
        ("layernorm_forward", 2 * mat + 2 * vec + 2 * rows,
         lambda th: K.layernorm_forward(x, w, b, threads=th), lambda: K.fallback.layernorm_forward(x, w, b)),
        ("layernorm_backward", 3 * mat + 3 * vec + 2 * rows,
         lambda th: K.layernorm_backward(dy, x, w, mean, rstd, threads=th),
         lambda: K.fallback.layernorm_backward(dy, x, w, mean, rstd)),
        ("bias_gelu_forward", 3 * mat + vec,
         lambda th: K.bias_gelu_forward(x, b, threads=th), lambda: K.fallback.bias_gelu_forward(x, b)),
        ("gelu_backward", 3 * mat,
         lambda th: K.gelu_backward(dy, x, threads=th), lambda: K.fallback.gelu_backward(dy, x)),
        ("bias_residual", 3 * mat + vec,
         lambda th: K.bias_residual(x, b, r, threads=th), lambda: K.fallback.bias_residual(x, b, r)),
        ("bias_grad", mat + vec, lambda th: K.bias_grad(dy, threads=th), lambda: K.fallback.bias_grad(dy)),
        # in place: repeated calls on the same buffer do the same work (the gradient is a valid input)
        (f"xent_fwd_bwd (V={v})", 2 * n * v * e + 2 * rows,
         lambda th: K.xent_forward_backward(work, targets, scale, threads=th),
         lambda: K.fallback.xent_forward_backward(work, targets, scale)),
        ("to_bfloat16", mat + mat // e * 2, lambda th: K.to_bfloat16(x, threads=th), lambda: K.fallback.to_bfloat16(x)),
        ("from_bfloat16", mat + mat // e * 2,
         lambda th: K.from_bfloat16(bf, dt, threads=th), lambda: K.fallback.from_bfloat16(bf, dt)),
    ]
    tfn = [None] * len(out)
    if torch is not None:
        T = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
        tx, tw, tb, tdy, tr = T(x), T(w), T(b), T(dy), T(r)
        tm, ts = T(mean), T(rstd)
        tl, tt = T(logits), T(targets)
        tg = torch.full((n,), scale, dtype=tl.dtype)
        F = torch.nn.functional

        def xent():
            L = tl.detach().requires_grad_()
            loss = F.cross_entropy(L, tt, reduction="none")
            loss.backward(tg)
            return loss, L.grad

        with torch.no_grad():
            tu = tx + tb
        tfn = [
            lambda: torch.native_layer_norm(tx, [c], tw, tb, 1e-5),
            lambda: torch.ops.aten.native_layer_norm_backward(tdy, tx, [c], tm, ts, tw, tb, [True, True, True]),
            lambda: F.gelu(tx + tb, approximate="tanh"),
            lambda: torch.ops.aten.gelu_backward(tdy, tu, approximate="tanh"),
            lambda: tx + tb + tr,
            lambda: tdy.sum(0),
            xent,
            lambda: tx.to(torch.bfloat16),
            lambda: T(bf.view(np.int16)).view(torch.bfloat16).to(tx.dtype),
        ]
    return [(*o, t) for o, t in zip(out, tfn)]


def main(argv=None):
    p = _Parser(prog="bench_kernels", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2048)
    p.add_argument("--cols", type=int, default=384)
    p.add_argument("--vocab", type=int, default=256)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--reps", type=int, default=30)
    a = p.parse_args(argv)
    for name in ("rows", "cols", "vocab", "reps"):
        if getattr(a, name) < 1:
            p.error(f"--{name} must be at least 1, got {getattr(a, name)}")
    try:
        import torch
    except ImportError:
        torch = None
    dt = np.dtype(a.dtype).type
    rng = np.random.default_rng(0)
    rows = cases(a.rows, a.cols, a.vocab, dt, rng, torch)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"LLM kernels, {a.dtype}, rows x cols = {a.rows} x {a.cols}, vocab {a.vocab}; ISA {K.isa()}, "
          f"{cores} usable cores; torch {torch.__version__ if torch else 'not installed'}; best of {a.reps}")
    head = (f"{'kernel':22} {'1T us':>8} {'2T us':>8} {'GB/s 1T':>8} {'numpy us':>9} {'x numpy':>8}"
            f" {'torch1 us':>10} {'torch2 us':>10} {'x torch1':>9} {'x torch2':>9}")
    print(head)
    print("-" * len(head))
    none = lambda: None  # noqa: E731
    for name, nbytes, kern, fb, tf in rows:
        t1, t2, tn = best_times([(none, lambda: kern(1)), (none, lambda: kern(2)), (none, fb)], a.reps)
        line = f"{name:22} {t1 * 1e6:8.1f} {t2 * 1e6:8.1f} {nbytes / t1 / 1e9:8.2f} {tn * 1e6:9.1f} {tn / t1:8.1f}"
        if tf is not None:
            p1, p2 = best_times([(lambda: torch.set_num_threads(1), tf), (lambda: torch.set_num_threads(2), tf)],
                                a.reps)
            time.sleep(0.05)  # PyTorch's threads stop spinning
            line += f" {p1 * 1e6:10.1f} {p2 * 1e6:10.1f} {p1 / t1:9.2f} {p2 / t2:9.2f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()

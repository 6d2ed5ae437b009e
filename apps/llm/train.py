"""Train a GPT (apps/llm/model.py) on a byte-level text corpus, on a dp x sp x tp
grid of ranks (grid.py).

    python apps/llm/train.py --steps 200 --out run1                 # 1 rank, default corpus
    mpiexec -n 2 python apps/llm/train.py --dp 2 --zero 1 --out run-dp2
    mpiexec -n 2 python apps/llm/train.py --tp 2 --layers 4 --width 256 --heads 4 --out run-tp2
    mpiexec -n 4 python apps/llm/train.py --sp 4 --seq-len 1000 --context 1024 --out run-sp4

Each step takes --accum micro-batches of --batch sequences per data-parallel
rank, clips the gradient to --clip by global norm, and applies AdamW with a
linear warm-up over --warmup steps then a cosine decay to --min-lr at --steps.
Gradients accumulate locally over the micro-batches; on the last one they are
reduced over the data group (dp x sp ranks) in buckets of --bucket-mb, each
started with a non-blocking collective as soon as the backward pass has
finished its parameters (dp.py). --zero 1 shards the optimizer state over the
data group, --zero 2 the gradients too.

Outputs in --out: metrics.h5, the per-step time series (group "train": step,
loss, lr, grad_norm, tokens_per_s, t_step, t_compute, t_comm, t_optim,
flops_per_s, mfu, comm_bytes (bytes this rank handed to collectives: gradient
buckets and TP all-reduces); group "val": step, loss; the configuration, the
memory per rank and the measured matmul rate as attributes), rewritten
atomically at each validation and at the end; a progress line per --log-every
steps on stdout. Time split: the waits in the model's tensor-parallel
collectives, for gradient buckets still in flight after the backward pass, and
in the loss's reduction are split into t_imbalance (waiting for the slowest
rank of the data group to finish its forward and backward passes, known from
one more small reduction) and t_comm, the EXPOSED communication; t_optim the
clipping and the
update (with ZeRO, the parameters' all-gather), t_compute the rest of the step
(ring attention's overlapped messages included). Model FLOP/s:
model.flops_per_token x tokens of the global batch / step time; mfu, that
over the matmul rate measured at start summed over the ranks.

Checkpoints (ckpt.py) go to --out/ckpt every --ckpt-every steps, at the end,
after --stop-after steps and on preemption, written in the background while
training goes on (--ckpt-mode async, the default: every rank writes its own
rows of every tensor from a background thread; the checkpoint is committed at
the first step end that finds every rank's rows on disk). A run whose --out holds a checkpoint resumes from it, in any
layout (--dp/--tp/--sp/--zero may differ; the model may not). On SIGUSR1 or
SIGTERM (Slurm's warning before the time limit, or preemption) the ranks
finish the step, write a checkpoint and exit with status 3 (slurm/llm.sbatch
requeues on it). In the same layout a resumed run continues bit for bit.

Exit status: 0 done, 2 bad configuration (one line on stderr), 3 stopped on a
signal with a checkpoint, 4 the loss became non-finite, 1 a runtime error (one
line on rank 0).
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

EXIT_BAD_CONFIG = 2
EXIT_DIVERGED = 4
EXIT_RUNTIME = 1


class ConfigError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line (main prints it), not the usage block
        raise ConfigError(message)


def parse(argv):
    p = _Parser(prog="llm-train", description=__doc__.split("\n\n")[0])
    g = p.add_argument_group("model")
    g.add_argument("--layers", type=int, default=6)
    g.add_argument("--width", type=int, default=384)
    g.add_argument("--heads", type=int, default=6)
    g.add_argument("--context", type=int, default=256, help="longest sequence (position embedding rows)")
    g.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    g = p.add_argument_group("data")
    g.add_argument("--data", default=None, help="a text file (any file: its bytes are the tokens); "
                   "default: Python's pydoc_data.topics")
    g.add_argument("--val-fraction", type=float, default=0.1)
    g.add_argument("--seq-len", type=int, default=None, help="tokens per sequence (default --context)")
    g.add_argument("--batch", type=int, default=8, help="sequences per micro-batch per data-parallel rank")
    g.add_argument("--accum", type=int, default=1, help="micro-batches per step (gradient accumulation)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--steps", type=int, default=100)
    g.add_argument("--lr", type=float, default=1e-3)
    g.add_argument("--min-lr", type=float, default=None, help="end of the cosine (default --lr / 10)")
    g.add_argument("--warmup", type=int, default=10)
    g.add_argument("--weight-decay", type=float, default=0.1)
    g.add_argument("--decay-embeddings", action="store_true", help="apply weight decay to the embeddings too")
    g.add_argument("--beta1", type=float, default=0.9)
    g.add_argument("--beta2", type=float, default=0.95)
    g.add_argument("--adam-eps", type=float, default=1e-8)
    g.add_argument("--clip", type=float, default=1.0, help="global gradient-norm limit (0: no clipping)")
    g.add_argument("--seed", type=int, default=1)
    g = p.add_argument_group("parallelism")
    g.add_argument("--dp", type=int, default=1, help="data-parallel degree")
    g.add_argument("--tp", type=int, default=1, help="tensor-parallel degree (divides --heads)")
    g.add_argument("--sp", type=int, default=1, help="sequence-parallel degree (zigzag ring attention)")
    g.add_argument("--threads", type=int, default=None, help="threads per rank (default: cores / local ranks)")
    g.add_argument("--zero", type=int, default=0, choices=[0, 1, 2],
                   help="ZeRO stage over the data-parallel ranks: 1 shards the optimizer state, 2 the gradients too")
    g.add_argument("--bucket-mb", type=float, default=25.0,
                   help="gradient bucket size in MB (reduced while the backward pass goes on)")
    g.add_argument("--grad-comm", default="same", choices=["same", "bfloat16"],
                   help="dtype the gradient buckets travel in: the model's, or bfloat16 (half the bytes; "
                        "accumulation and the optimizer stay in the model's dtype)")
    g.add_argument("--act-dtype", default="same", choices=["same", "bfloat16"],
                   help="dtype of the activations kept for the backward pass: the model's, or bfloat16 for the "
                        "largest five per layer (a third less activation memory; matmuls and gradients stay "
                        "float32; a float32 model only)")
    g = p.add_argument_group("output")
    g.add_argument("--out", default="llm-run", help="output directory")
    g.add_argument("--eval-every", type=int, default=50, help="steps between validation losses (0: only at the end)")
    g.add_argument("--eval-batches", type=int, default=4)
    g.add_argument("--log-every", type=int, default=1)
    g.add_argument("--ckpt-every", type=int, default=0,
                   help="steps between checkpoints in --out/ckpt (0: only at the end and when preempted)")
    g.add_argument("--no-ckpt", action="store_true", help="write no checkpoint, resume from none")
    g.add_argument("--keep", type=int, default=2, help="checkpoints kept")
    g.add_argument("--ckpt-mode", default="async", choices=["async", "async-rank0", "collective"],
                   help="async: every rank writes its rows of every tensor from a background thread while "
                        "training goes on (committed at a later step once all are on disk); async-rank0: gathered "
                        "to rank 0 and written by its background thread; collective: every rank writes its rows "
                        "(MPI-IO where h5py has it) before training goes on")
    g.add_argument("--stop-after", type=int, default=0,
                   help="stop after this many steps of this invocation with a checkpoint (0: run to --steps); "
                        "the same command resumes")
    a = p.parse_args(argv)
    check(a)
    return a


def _finite(name, value, low=None, *, above=None, below=None):
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}")
    if low is not None and value < low:
        raise ConfigError(f"{name} must be at least {low}, got {value}")
    if above is not None and value <= above:
        raise ConfigError(f"{name} must be greater than {above}, got {value}")
    if below is not None and value >= below:
        raise ConfigError(f"{name} must be less than {below}, got {value}")


def check(a):
    """ConfigError naming the first bad option (everything the command line alone decides)."""
    for name in ("layers", "width", "heads", "context", "batch", "accum", "steps", "dp", "tp", "sp",
                 "eval_batches", "log_every"):
        v = getattr(a, name)
        if v < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {v}")
    if a.width % a.heads:
        raise ConfigError(f"--width must be a multiple of --heads ({a.heads}), got {a.width}")
    if a.heads % a.tp:
        raise ConfigError(f"--tp must divide --heads ({a.heads}), got {a.tp}")
    if a.seq_len is None:
        a.seq_len = a.context
    if not 1 <= a.seq_len <= a.context:
        raise ConfigError(f"--seq-len must lie in [1, --context {a.context}], got {a.seq_len}")
    if a.sp > 1 and a.seq_len < 2 * a.sp:
        raise ConfigError(f"--seq-len must be at least 2 x --sp ({2 * a.sp}) for the zigzag layout, got {a.seq_len}")
    _finite("--lr", a.lr, above=0)
    if a.min_lr is None:
        a.min_lr = a.lr / 10
    _finite("--min-lr", a.min_lr, 0)
    if a.min_lr > a.lr:
        raise ConfigError(f"--min-lr must not exceed --lr ({a.lr}), got {a.min_lr}")
    if a.warmup < 0:
        raise ConfigError(f"--warmup must be non-negative, got {a.warmup}")
    _finite("--weight-decay", a.weight_decay, 0)
    _finite("--beta1", a.beta1, 0, below=1)
    _finite("--beta2", a.beta2, 0, below=1)
    _finite("--adam-eps", a.adam_eps, above=0)
    _finite("--clip", a.clip, 0)
    _finite("--val-fraction", a.val_fraction, above=0, below=1)
    if a.seed < 0:
        raise ConfigError(f"--seed must be non-negative, got {a.seed}")
    if a.eval_every < 0:
        raise ConfigError(f"--eval-every must be non-negative, got {a.eval_every}")
    if a.act_dtype == "bfloat16" and a.dtype != "float32":
        raise ConfigError(f"--act-dtype bfloat16 needs --dtype float32, got --dtype {a.dtype}")
    if a.ckpt_every < 0:
        raise ConfigError(f"--ckpt-every must be non-negative, got {a.ckpt_every}")
    if a.keep < 1:
        raise ConfigError(f"--keep must be at least 1, got {a.keep}")
    if a.stop_after < 0:
        raise ConfigError(f"--stop-after must be non-negative, got {a.stop_after}")
    if a.stop_after and a.no_ckpt:
        raise ConfigError("--stop-after needs checkpoints (it cannot be used with --no-ckpt)")
    _finite("--bucket-mb", a.bucket_mb, above=0)
    if a.threads is not None and not 1 <= a.threads <= 1024:
        raise ConfigError(f"--threads must lie in [1, 1024], got {a.threads}")
    if not a.out:
        raise ConfigError("--out must name a directory, got ''")
    if a.data is not None and not os.path.isfile(a.data):
        raise ConfigError(f"--data {a.data!r} is not a readable file")


def _launcher_rank():
    for k in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"):
        v = os.environ.get(k, "")
        if v.isdigit():
            return int(v)
    return 0


def _local_ranks():
    for k in ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE"):
        v = os.environ.get(k, "")
        if v.isdigit() and int(v) > 0:
            return int(v)
    return 1


def threads_per_rank(requested):
    """--threads, or the cores this process may use over the ranks on its node."""
    if requested:
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // _local_ranks())


def set_blas_threads(n):
    """Caps numpy's BLAS at n threads: environment variables before numpy
    loads, threadpoolctl (when installed) if it has loaded already. OpenBLAS's
    idle workers are told to sleep at once (OPENBLAS_THREAD_TIMEOUT=4, unless
    set): by default they spin for about 0.1 s after each call, taking the
    cores from the attention and kernels' threads that run between matmuls
    (this halved their speed on 2 threads)."""
    for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[k] = str(n)
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")
    if "numpy" in sys.modules:
        try:
            import threadpoolctl
            threadpoolctl.threadpool_limits(n)
        except ImportError:
            pass


def keep_freed_memory():
    """Asks glibc's malloc to keep freed memory for reuse instead of returning it
    to the kernel: every step allocates and frees the same activations, and
    fresh pages cost a fault each (about a fifth of a 1-thread step of the 10M
    model here). Arrays up to 32 MiB come from the heap, which is never
    trimmed below 2 GiB of free space. Nothing happens on other C libraries."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1
    ok &= mallopt(M_TRIM_THRESHOLD, (1 << 31) - 1) == 1
    ok &= mallopt(M_TOP_PAD, 64 << 20) == 1
    return bool(ok)


class Metrics:
    """The HDF5 time series, kept in memory and rewritten atomically (rank 0)."""

    TRAIN = ("step", "loss", "lr", "grad_norm", "tokens_per_s", "t_step", "t_compute", "t_comm", "t_imbalance",
             "t_optim", "flops_per_s", "mfu", "comm_bytes", "act_bytes")

    def __init__(self, path, attrs):
        self.path = path
        self.attrs = attrs
        self.train = {k: [] for k in self.TRAIN}
        self.val = {"step": [], "loss": []}

    def add(self, **row):
        for k in self.TRAIN:
            self.train[k].append(row[k])

    def resume(self, before):
        """Keeps the rows of an earlier run in this file for steps < before (a resumed run)."""
        import h5py
        try:
            with h5py.File(self.path, "r") as f:
                old = {g: {k: f[g][k][()].tolist() for k in f[g]} for g in ("train", "val") if g in f}
        except (OSError, KeyError):
            return
        for group, cols in (("train", self.train), ("val", self.val)):
            rows = old.get(group, {})
            keep = [i for i, st in enumerate(rows.get("step", [])) if st < before]
            for k in cols:
                if k in rows:
                    cols[k].extend(rows[k][i] for i in keep)
                else:
                    cols[k].extend(float("nan") for _ in keep)

    def add_val(self, step, loss):
        self.val["step"].append(step)
        self.val["loss"].append(loss)

    def write(self):
        import h5py
        import numpy as np
        tmp = self.path + ".tmp"
        with h5py.File(tmp, "w") as f:
            for k, v in self.attrs.items():
                f.attrs[k] = v
            for group, cols in (("train", self.train), ("val", self.val)):
                g = f.create_group(group)
                for k, v in cols.items():
                    g.create_dataset(k, data=np.asarray(v, np.int64 if k == "step" else np.float64))
        os.replace(tmp, self.path)


class Diverged(Exception):
    pass


def agree_on_configuration(a, comm):
    """Every rank must run the same configuration (the options but --threads): one
    allgather of the options, and a MismatchError on every rank naming the first
    option that differs and the ranks that differ, before any rank builds a model
    or a process grid the others do not share."""
    import hashlib

    import numpy as np

    from baobab import MismatchError
    mine = {k: v for k, v in vars(a).items() if k != "threads"}
    text = json.dumps(mine, sort_keys=True).encode()
    if len(text) > 4000:  # a very long --data path: compare its digest
        mine["data"] = hashlib.sha256(str(mine["data"]).encode()).hexdigest()
        text = json.dumps(mine, sort_keys=True).encode()
    buf = np.zeros(4096, np.uint8)
    buf[:len(text)] = np.frombuffer(text, np.uint8)
    rows = comm.allgather(buf).reshape(comm.size, -1)
    configs = [json.loads(bytes(r).rstrip(b"\0")) for r in rows]
    for k in sorted(configs[0]):
        values = [c.get(k) for c in configs]
        if any(v != values[0] for v in values):
            other = [r for r, v in enumerate(values) if v != values[0]]
            raise MismatchError(f"the ranks run different configurations: --{k.replace('_', '-')} is "
                                f"{values[0]!r} on rank 0 but {values[other[0]]!r} on rank(s) "
                                f"{', '.join(map(str, other[:8]))}")


class Trainer:
    """The run's state on this rank (grid, model, parameters, optimizer, data)
    and one training step."""

    def __init__(self, a, comm):
        import numpy as np

        import data
        import model as M
        import optim
        from baobab import InvalidArgument
        from grid import Grid
        self.np, self.M, self.optim = np, M, optim
        self.a, self.comm = a, comm
        agree_on_configuration(a, comm)
        try:
            self.grid = grid = Grid(comm, a.dp, a.tp, a.sp)
        except InvalidArgument as e:
            raise ConfigError(str(e)) from None
        self.cfg = cfg = M.Config(vocab=data.VOCAB, context=a.context, layers=a.layers, width=a.width,
                                  heads=a.heads, dtype=a.dtype)
        tokens = data.load(a.data)
        train_tok, val_tok = data.split(tokens, a.val_fraction)
        try:
            self.sampler = data.Sampler(train_tok, a.seq_len, a.batch, grid.dp_rank, grid.dp_size, a.seed, a.accum)
        except InvalidArgument as e:
            raise ConfigError(f"--data: {e}") from None
        evals = data.eval_batches(val_tok, a.seq_len, a.batch, a.eval_batches, grid.dp_rank, grid.dp_size)
        n_eval = int(comm.allreduce(np.array([len(evals)], np.int64), op="min")[0])
        if n_eval < 1:
            raise ConfigError(f"--data: the validation split ({len(val_tok)} tokens over {grid.dp_size} "
                              f"data-parallel ranks) holds no batch of {a.batch} x {a.seq_len + 1} tokens")
        self.evals = evals[:n_eval]
        self.threads = threads_per_rank(a.threads)
        self.par = M.Parallel(grid.tp, grid.sp)
        self.gpt = M.GPT(cfg, self.par, threads=self.threads,
                         act_dtype=None if a.act_dtype == "same" else a.act_dtype)
        self.params = M.init_params(cfg, a.seed, grid.tp_rank, grid.tp_size)
        self.specs = M.param_specs(cfg)
        # Gradients in buckets in the order backward() finishes them, reduced over the
        # data group (dp x sp) while it goes on; ZeRO shards over the same group.
        import dp
        self.dp = dp
        order = list(reversed(list(self.specs)))
        self.layout = dp.make_layout([(n, self.params[n].shape) for n in order], cfg.np_dtype.itemsize,
                                     parts=grid.data_size, bucket_bytes=int(a.bucket_mb * 1e6))
        self.reducer = dp.GradReducer(grid.data, self.layout, cfg.np_dtype, zero=a.zero, average=False,
                                      comm_dtype=None if a.grad_comm == "same" else a.grad_comm)
        self.grads = self.reducer.grads
        hyper = dict(betas=(a.beta1, a.beta2), eps=a.adam_eps, weight_decay=a.weight_decay,
                     decay_embeddings=a.decay_embeddings)
        if a.zero:
            self.sharded = dp.ShardedParams(grid.data, self.layout, self.params)  # params become views of it
            self.opt = dp.ZeroAdamW(self.sharded, self.specs, **hyper)
        else:
            self.sharded = None
            self.opt = optim.AdamW(self.params, self.specs, threads=self.threads, **hyper)
        self.global_tokens = a.batch * a.seq_len * a.accum * grid.dp_size
        self.flops_per_token = M.flops_per_token(cfg, a.seq_len)

    def data_sum(self, x):
        """Sum over the data group (dp x sp ranks), in place."""
        return self.grid.data.allreduce(x, out=x) if self.grid.data is not None else x

    def validate(self):
        """The mean validation loss over the evaluation batches of every data-parallel rank."""
        acc = self.np.zeros(2)
        for x, y in self.evals:
            c = self.gpt.forward(self.params, x, y, grad=False)
            acc += (c.loss_sum, c.ntok)
        acc = self.data_sum(acc)
        return float(acc[0] / acc[1])

    def step(self, step):
        """Training step `step` (from 0): returns its metrics row."""
        a, np, par, red = self.a, self.np, self.par, self.reducer
        t0 = time.perf_counter()
        comm0, bytes0 = par.tp_seconds, par.tp_bytes
        loss_sum = 0.0
        for micro in range(a.accum):
            last = micro == a.accum - 1
            x, y = self.sampler.get(step, micro)
            c = self.gpt.forward(self.params, x, y, loss_scale=1.0 / self.global_tokens)
            act_bytes = c.nbytes()
            # ZeRO-2 reduce-scatters every micro-batch, so each one starts afresh.
            overwrite = micro == 0 or a.zero == 2
            red.begin(sync=last, overwrite=overwrite)
            self.gpt.backward(self.params, c, self.grads, on_grad=red.ready, accumulate=not overwrite)
            if last:
                t_work = time.perf_counter() - t0  # this rank's forward and backward passes
            g = red.finish(last=last)
            loss_sum += c.loss_sum
            del c
        t1 = time.perf_counter()
        # the loss, and the slowest rank's forward + backward time: the waits above and
        # here are partly for a slower rank (imbalance), the rest is communication
        lossv = np.array([loss_sum, t_work])
        if self.grid.data is not None:
            self.grid.data.allreduce(lossv[:1], out=lossv[:1])
            self.grid.data.allreduce(lossv[1:], op="max", out=lossv[1:])
        t2 = time.perf_counter()
        loss = float(lossv[0]) / self.global_tokens
        if not math.isfinite(loss):
            raise Diverged(f"the loss became {loss} at step {step}")
        lr = self.optim.lr_at(step, lr=a.lr, warmup=a.warmup, total=a.steps, min_lr=a.min_lr)
        if a.zero:
            shard = g if a.zero == 2 else self.sharded.shard_of(g)
            norm = self.opt.grad_norm(shard, self.grid.data, self.grid.tp)
            coef = self.optim.clip_coef(norm, a.clip) if a.clip > 0 else 1.0
            self.opt.update(shard, lr, grad_scale=coef)
        else:
            norm = self.optim.global_grad_norm(self.grads, self.specs, self.grid.tp)
            coef = self.optim.clip_coef(norm, a.clip) if a.clip > 0 else 1.0
            self.opt.update(self.params, self.grads, lr, grad_scale=coef)
        t3 = time.perf_counter()
        t_step = t3 - t0
        # exposed communication: the model's TP collectives, the waits for gradient buckets
        # still in flight after the backward pass, and the loss's reduction
        waited = (par.tp_seconds - comm0) + red.exposed + (t2 - t1)
        t_imbalance = min(waited, max(0.0, float(lossv[1]) - t_work))
        t_comm = waited - t_imbalance
        t_optim = t3 - t2
        return dict(step=step, loss=loss, lr=lr, grad_norm=norm, tokens_per_s=self.global_tokens / t_step,
                    t_step=t_step, t_compute=t_step - waited - t_optim, t_comm=t_comm, t_optim=t_optim,
                    t_imbalance=t_imbalance,
                    flops_per_s=self.flops_per_token * self.global_tokens / t_step,
                    comm_bytes=red.bytes_sent + par.tp_bytes - bytes0, grad_bytes=red.bytes_sent,
                    tp_bytes=par.tp_bytes - bytes0, act_bytes=act_bytes)

    # ---- memory, checkpoints ---------------------------------------------------------------

    def memory(self):
        """Bytes this rank holds across steps: parameters, gradients, optimizer state,
        and what the ZeRO formula predicts for them (dp.py's docstring)."""
        b = self.cfg.np_dtype.itemsize
        if self.a.zero:
            params = self.sharded.persistent_bytes()  # the full parameters and the master shard
        else:
            params = sum(p.nbytes for p in self.params.values())
        grads = self.reducer.persistent_bytes()
        opt = self.opt.persistent_bytes() if self.a.zero else sum(x.nbytes for x in (*self.opt.m.values(),
                                                                                    *self.opt.v.values()))
        psi, n = self.layout.total, self.grid.data_size
        formula = {0: 4 * psi, 1: 2 * psi + 3 * (psi // n), 2: psi + 4 * (psi // n)}[self.a.zero] * b  # psi % n == 0
        return dict(params=params, grads=grads, optimizer=opt, total=params + grads + opt, formula=formula,
                    zero=self.a.zero, group=n)

    def moments(self):
        """{"m": {...}, "v": {...}} shaped like this rank's parameters (collective under ZeRO)."""
        if self.a.zero:
            return self.opt.full_moments()
        return {"m": self.opt.m, "v": self.opt.v}

    def save(self, ck, step):
        """Checkpoint after `step` steps (collective); written in the background."""
        import ckpt
        return ckpt.save(ck, step, self.cfg, self.grid, self.params, self.moments(),
                         {"opt_step": self.opt.step, "seed": self.a.seed, "steps": self.a.steps})

    def restore(self, loaded):
        """Takes a checkpoint's parameters and moments (ckpt.load for this grid)."""
        for n, p in self.params.items():
            p[...] = loaded.params[n]
        if self.a.zero:
            self.sharded.shard[...] = self.sharded.shard_of(self.sharded.flat)
            if loaded.moments is not None:
                self.opt.load_moments(loaded.moments, loaded.extra["opt_step"])
        elif loaded.moments is not None:
            for n in self.params:
                self.opt.m[n][...] = loaded.moments["m"][n]
                self.opt.v[n][...] = loaded.moments["v"][n]
            self.opt.step = int(loaded.extra["opt_step"])


def matmul_rate(dtype, threads, seconds=0.2):
    """This rank's measured matmul rate (FLOP/s) on the model's typical shape, the
    denominator of the model FLOP/s utilisation."""
    import numpy as np
    a = np.ones((1024, 384), dtype)
    b = np.ones((384, 1536), dtype)
    c = np.empty((1024, 1536), dtype)
    np.matmul(a, b, out=c)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        np.matmul(a, b, out=c)
        n += 1
    return 2.0 * 1024 * 384 * 1536 * n / (time.perf_counter() - t0)


def run(a, comm):
    import numpy as np

    import baobab
    problem = ""
    if comm.rank == 0:
        try:
            os.makedirs(a.out, exist_ok=True)
            with open(os.path.join(a.out, ".write-test"), "w"):
                pass
            os.remove(os.path.join(a.out, ".write-test"))
        except OSError as e:
            problem = f"--out {a.out!r} is not a writable directory ({e.strerror})"
    if comm.allreduce(np.array([len(problem)]), op="max")[0]:
        raise ConfigError(problem or "--out is not writable on rank 0")
    tr = Trainer(a, comm)
    stop = baobab.slurm.on_preempt()
    ck, start = None, 0
    if not a.no_ckpt:
        import ckpt
        ck = ckpt.open_checkpointer(os.path.join(a.out, "ckpt"), comm, keep=a.keep, mode=a.ckpt_mode)
        if ck.latest() is not None:
            try:
                loaded = ckpt.load(ck, tr.cfg, tr.grid)
            except baobab.InvalidArgument as e:
                raise ConfigError(f"--out {a.out!r} holds a checkpoint of another model: {e}") from None
            tr.restore(loaded)
            start = loaded.step
    rate = matmul_rate(tr.cfg.np_dtype, tr.threads)
    peak = float(comm.allreduce(np.array([rate]))[0])  # the job's matmul rate
    mem = tr.memory()
    metrics = None
    if comm.rank == 0:
        n = tr.M.num_params(tr.cfg)
        attrs = {"config": json.dumps(vars(a), sort_keys=True), "params": n,
                 "flops_per_token": tr.flops_per_token, "grid": tr.grid.describe(),
                 "threads_per_rank": tr.threads, "matmul_flops_per_s": peak,
                 "memory_bytes": json.dumps(mem), "resumed_from": start}
        metrics = Metrics(os.path.join(a.out, "metrics.h5"), attrs)
        if start:
            metrics.resume(start)
        print(f"llm: {n:,} parameters, {tr.grid.describe()}, {tr.global_tokens} tokens per step, "
              f"{tr.threads} threads per rank", flush=True)
        print(f"llm: memory per rank {mem['total'] / 2**20:.1f} MiB (params {mem['params'] / 2**20:.1f}, grads "
              f"{mem['grads'] / 2**20:.1f}, optimizer {mem['optimizer'] / 2**20:.1f}; ZeRO-{a.zero} formula "
              f"{mem['formula'] / 2**20:.1f}); matmul rate {peak / 1e9:.1f} GFLOP/s"
              + (f"; resumed at step {start}" if start else ""), flush=True)
    if start >= a.steps and comm.rank == 0:
        print(f"llm: the checkpoint is at step {start}, --steps is {a.steps}: nothing to do", flush=True)
    for step in range(start, a.steps):
        row = tr.step(step)
        row["mfu"] = row["flops_per_s"] / peak
        last = step == a.steps - 1
        val = tr.validate() if (last or (a.eval_every and (step + 1) % a.eval_every == 0)) else None
        preempted = stop.agreed(comm)
        pause = bool(a.stop_after) and step + 1 - start >= a.stop_after and not last
        if ck is not None:
            ck.poll()  # commits the checkpoint in flight once every rank's part is on disk
        if ck is not None and (preempted or pause or last or (a.ckpt_every and (step + 1) % a.ckpt_every == 0)):
            tr.save(ck, step + 1)
        if metrics is not None:
            metrics.add(**row)
            if val is not None:
                metrics.add_val(step, val)
            if val is not None or preempted or pause:
                metrics.write()
            if (step + 1) % a.log_every == 0 or last:
                t = row["t_step"]
                msg = (f"step {step + 1}/{a.steps} loss {row['loss']:.4f} lr {row['lr']:.3g} "
                       f"gnorm {row['grad_norm']:.3g} {row['tokens_per_s']:,.0f} tok/s "
                       f"{row['flops_per_s'] / 1e9:.2f} GFLOP/s ({row['mfu']:.0%} of matmul) "
                       f"(compute {row['t_compute'] / t:.0%} comm {row['t_comm'] / t:.0%} "
                       f"imbalance {row['t_imbalance'] / t:.0%} "
                       f"optim {row['t_optim'] / t:.0%})")
                if val is not None:
                    msg += f" val {val:.4f}"
                print(msg, flush=True)
        if preempted:
            if ck is not None:
                ck.close()
            if comm.rank == 0:
                got = stop.signal_name or "a stop signal (on another rank)"
                print(f"llm: {got} received: checkpoint at step {step + 1} written, exiting for requeue", flush=True)
            return stop.exit_code
        if pause:
            ck.close()
            if comm.rank == 0:
                print(f"llm: stopped after {a.stop_after} steps: checkpoint at step {step + 1} written; the same "
                      "command resumes", flush=True)
            return 0
    if ck is not None:
        ck.close()
    return 0


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        a = parse(argv)
    except ConfigError as e:  # the same on every rank: rank 0 says it
        if _launcher_rank() == 0:
            print(f"llm-train: error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    set_blas_threads(threads_per_rank(a.threads))
    keep_freed_memory()
    import baobab
    try:
        comm = baobab.init()
    except baobab.InvalidArgument as e:
        if _launcher_rank() == 0:
            print(f"llm-train: error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    try:
        return run(a, comm)
    except ConfigError as e:
        if comm.rank == 0:
            print(f"llm-train: error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except baobab.MismatchError as e:  # a configuration that differs between the ranks
        if comm.rank == 0:
            print(f"llm-train: error: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except Diverged as e:
        if comm.rank == 0:
            print(f"llm-train: error: {e}", file=sys.stderr)
        return EXIT_DIVERGED
    except baobab.Error as e:
        if comm.rank == 0:
            print(f"llm-train: error: {e}", file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())

"""Tensor and sequence parallel GPT (apps/llm) against the 1-rank run, float64.

    mpiexec -n P python llm_parallel.py TP SP VOCAB SEQ

Every rank also runs the 1-rank model itself (on MPI.COMM_SELF) as the
reference. Checks, to 1e-10 relative: (1) loss and every parameter gradient
of one batch (the gradients summed over the SP ranks and gathered over TP to
their global shapes) with biases and gains perturbed away from their initial
values, vocabulary VOCAB (e.g. 257: padded under TP); (2) five training steps
of train.Trainer (AdamW, clipping, accumulation over 2 micro-batches): the
losses and the final parameters. Prints "OK llm tp=TP sp=SP" on rank 0.
"""
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

import baobab

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "apps" / "llm"))

import model as M  # noqa: E402
import train  # noqa: E402
from grid import Grid  # noqa: E402

tp, sp, vocab, seq = (int(x) for x in sys.argv[1:5])
world = baobab.init()
grid = Grid(world, 1, tp, sp)
self_comm = baobab.Communicator(MPI.COMM_SELF)
TOL = 1e-10


def rel(a, b):
    return float(np.abs(np.asarray(a) - b).max() / max(np.abs(b).max(), 1e-300))


def gathered(spec, local):
    """A TP block gathered to the global shape."""
    if grid.tp is None or spec.axis is None:
        return local
    parts = grid.tp.allgather(np.ascontiguousarray(local))
    return M.gather_param(spec, list(parts))


# ---- (1) one batch: loss and every gradient --------------------------------------------------
cfg = M.Config(vocab=vocab, context=16, layers=2, width=24, heads=6, dtype="float64")
specs = M.param_specs(cfg)
full = M.init_params(cfg, 11)
rng = np.random.default_rng(12)
for name, p in full.items():
    if specs[name].kind in ("bias", "norm"):
        p += rng.standard_normal(p.shape) * 0.1
tokens = rng.integers(0, vocab, (3, seq))
targets = rng.integers(0, vocab, (3, seq))
targets[0, :2] = vocab - 1  # the last id (in the last TP block, next to its padding)

ref = M.GPT(cfg)
rc = ref.forward(full, tokens, targets)
rgrads = M.zeros_like_params(full)
ref.backward(full, rc, rgrads)

par = M.Parallel(grid.tp, grid.sp)
gpt = M.GPT(cfg, par, threads=1)
local = {n: M.shard_param(s, full[n], grid.tp_rank, tp) for n, s in specs.items()}
c = gpt.forward(local, tokens, targets)
flat, grads = M.flat_zeros(local)
gpt.backward(local, c, grads)
if grid.data is not None:
    grid.data.allreduce(flat, out=flat)
loss = np.array([c.loss_sum, c.ntok], np.float64)
if grid.sp is not None:
    grid.sp.allreduce(loss, out=loss)
assert loss[1] == 3 * seq, loss
assert abs(loss[0] - rc.loss_sum) <= TOL * abs(rc.loss_sum), (loss[0], rc.loss_sum)
if tp > 1:
    pad = M.padded_vocab(vocab, tp) - vocab
    if grid.tp_rank == tp - 1 and pad:  # the padding rows get no gradient
        assert (grads["wte"][-pad:] == 0).all()
for name, spec in specs.items():
    g = gathered(spec, grads[name])
    assert g.shape == spec.shape, (name, g.shape)
    assert rel(g, rgrads[name]) <= TOL, (name, rel(g, rgrads[name]))

# ---- (2) five training steps -----------------------------------------------------------------
common = ["--layers", "2", "--width", "24", "--heads", "6", "--context", "16", "--seq-len", str(seq),
          "--batch", "2", "--accum", "2", "--steps", "5", "--warmup", "2", "--dtype", "float64",
          "--clip", "0.5", "--lr", "3e-3", "--threads", "1", "--seed", "5"]
one = train.Trainer(train.parse(common), self_comm)
par_tr = train.Trainer(train.parse(common + ["--tp", str(tp), "--sp", str(sp)]), world)
for step in range(5):
    a, b = one.step(step)["loss"], par_tr.step(step)["loss"]
    assert abs(a - b) <= TOL * abs(a), (step, a, b)
for name, spec in par_tr.specs.items():
    g = gathered(spec, par_tr.params[name])
    assert rel(g, one.params[name]) <= TOL, name
world.barrier()
if world.rank == 0:
    print(f"OK llm tp={tp} sp={sp}", flush=True)

"""Data-parallel GPT training (apps/llm, train.Trainer) against the 1-rank run
with the same global batch, float64.

    mpiexec -n P python llm_dp.py DP TP SP ZERO ACCUM BUCKET_MB [bfloat16]

Every rank also trains the 1-rank model (on MPI.COMM_SELF) on the global batch
of each step: the concatenation, in data-parallel rank order, of what the
DP ranks' samplers give (data.py). Five steps with AdamW, clipping and
ACCUM micro-batches; the gradient buckets (BUCKET_MB, small so that there are
several) are reduced while the backward pass runs, ZeRO-ZERO shards over the
data group. Checks to 1e-10 relative: every step's loss and gradient norm, and
the final parameters; the memory per rank equals the ZeRO formula. With
bfloat16 the model is float32 and its gradients travel as bfloat16 (half the
bytes, checked): 3e-3 relative then. Prints
"OK llm dp=DP tp=TP sp=SP zero=ZERO" on rank 0.
"""
import sys
from pathlib import Path

import numpy as np
from mpi4py import MPI

import baobab

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "apps" / "llm"))

import data  # noqa: E402
import model as M  # noqa: E402
import train  # noqa: E402

dp, tp, sp, zero, accum = (int(x) for x in sys.argv[1:6])
bucket_mb = sys.argv[6]
wire = sys.argv[7] if len(sys.argv) > 7 else "same"  # bfloat16: float32 model, gradients sent as bfloat16
world = baobab.init()
self_comm = baobab.Communicator(MPI.COMM_SELF)
TOL = 1e-10 if wire == "same" else 3e-3  # one bfloat16 rounding of each gradient: 2^-9 relative

common = ["--layers", "2", "--width", "24", "--heads", "6", "--context", "16", "--seq-len", "13",
          "--batch", "2", "--accum", str(accum), "--steps", "5", "--warmup", "2",
          "--dtype", "float64" if wire == "same" else "float32",
          "--clip", "0.05", "--lr", "3e-3", "--threads", "1", "--seed", "5", "--weight-decay", "0.1"]
par = train.Trainer(train.parse(common + ["--dp", str(dp), "--tp", str(tp), "--sp", str(sp), "--zero", str(zero),
                                          "--bucket-mb", bucket_mb, "--grad-comm", wire]), world)
one = train.Trainer(train.parse(common[:common.index("--batch")] + ["--batch", str(2 * dp)]
                                + common[common.index("--batch") + 2:]), self_comm)


class Global:
    """The DP ranks' micro-batches side by side: the global batch of the step."""

    def __init__(self, tokens):
        self.parts = [data.Sampler(tokens, 13, 2, r, dp, 5, accum) for r in range(dp)]

    def get(self, step, micro=0):
        got = [s.get(step, micro) for s in self.parts]
        return np.concatenate([g[0] for g in got]), np.concatenate([g[1] for g in got])


train_tok, _ = data.split(data.load(None), 0.1)
one.sampler = Global(train_tok)
assert len(par.layout.bucket_sizes) >= 3, par.layout.bucket_sizes  # several buckets in flight


def rel(a, b):
    return float(np.abs(np.asarray(a) - b).max() / max(np.abs(b).max(), 1e-300))


for step in range(5):
    a, b = one.step(step), par.step(step)
    assert abs(a["loss"] - b["loss"]) <= TOL * abs(a["loss"]), (step, a["loss"], b["loss"])
    assert abs(a["grad_norm"] - b["grad_norm"]) <= TOL * a["grad_norm"], (step, a["grad_norm"], b["grad_norm"])
    assert b["grad_norm"] > 0.05  # clipping was active: the sharded norm mattered
    if wire != "same":  # half the bytes of the model's float32
        sends = accum if zero == 2 else 1  # ZeRO-2 reduce-scatters every micro-batch
        assert b["grad_bytes"] == par.layout.total * 2 * sends, (b["grad_bytes"], par.layout.total)
for name, spec in par.specs.items():
    local = par.params[name]
    if par.grid.tp is not None and spec.axis is not None:
        local = M.gather_param(spec, list(par.grid.tp.allgather(np.ascontiguousarray(local))))
    if wire == "same":
        assert rel(local, one.params[name]) <= TOL, (name, rel(local, one.params[name]))
    else:
        # Adam divides by sqrt(v): where a gradient is near zero (LayerNorm biases that start
        # at 0), rounding moves the step by up to lr. Compared in norm, 10x the loss's bound;
        # a wrong sum would be off by 100 %.
        d = float(np.linalg.norm(local - one.params[name]) / np.linalg.norm(one.params[name]))
        assert d <= 10 * TOL, (name, d)
mem = par.memory()
slack = 4 * par.layout.total - 4 * sum(p.size for p in par.params.values())  # ZeRO-0's padding
assert 0 <= mem["formula"] - mem["total"] <= slack * 8, mem
world.barrier()
if world.rank == 0:
    print(f"OK llm dp={dp} tp={tp} sp={sp} zero={zero} memory {mem}", flush=True)

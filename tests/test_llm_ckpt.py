"""LLM checkpoints that reshard (apps/llm/ckpt.py): written at one layout,
every tensor is stored whole in its global shape, and loads into other
layouts and onto one rank with exactly the blocks model.shard_param cuts
from the global tensors; a different model is refused on every rank."""
import sys
from pathlib import Path

import numpy as np

APP = Path(__file__).resolve().parents[1] / "apps" / "llm"

COMMON = """
import sys, numpy as np
sys.path.insert(0, {app!r})
import baobab, model as M, ckpt
from grid import Grid
world = baobab.init()
cfg = M.Config(vocab=13, context=8, layers=1, width=8, heads=2, dtype="float64")
specs = M.param_specs(cfg)
rng = np.random.default_rng(7)
ref = {{p: {{n: rng.standard_normal(s.shape) for n, s in specs.items()}} for p in ("p", "m", "v")}}
def blocks(g):
    return {{p: {{n: M.shard_param(s, ref[p][n], g.tp_rank, g.tp_size) for n, s in specs.items()}} for p in ref}}
def check(g, params, moments):
    want = blocks(g)
    for n in specs:
        np.testing.assert_array_equal(params[n], want["p"][n])
        np.testing.assert_array_equal(moments["m"][n], want["m"][n])
        np.testing.assert_array_equal(moments["v"][n], want["v"][n])
"""

SAVE = COMMON + """
g = Grid(world, dp=2, tp=2)
b = blocks(g)
ck = ckpt.open_checkpointer({d!r}, world)
ckpt.save(ck, 5, cfg, g, b["p"], {{"m": b["m"], "v": b["v"]}}, {{"sampler": 40, "opt_step": 5}})
ck.wait()
for layout in (dict(dp=4), dict(dp=2, sp=2), dict(tp=2, sp=2), dict(dp=2, tp=2)):
    g2 = Grid(world, **layout)
    params, moments, extra, step, _ = ckpt.load(ck, cfg, g2)
    check(g2, params, moments)
    assert step == 5 and extra == {{"sampler": 40, "opt_step": 5}}, (step, extra)
other = M.Config(vocab=13, context=8, layers=2, width=8, heads=2, dtype="float64")
try:
    ckpt.load(ck, other, g)
except baobab.InvalidArgument as e:
    print("REFUSED", e)
ck.close()
print(f"SAVED {{world.rank}}")
"""

ONE = COMMON + """
g = Grid(world)
ck = ckpt.open_checkpointer({d!r}, world)
params, moments, extra, step, got = ckpt.load(ck, None, g)
assert got == cfg
check(g, params, moments)
ck.close()
print("ONE RANK OK")
"""


def test_written_at_dp2_tp2_loads_at_other_layouts_and_on_one_rank(mpirun, tmp_path):
    d = str(tmp_path / "ck")
    out = mpirun(4, SAVE.format(app=str(APP), d=d), timeout=180).stdout
    assert out.count("SAVED") == 4, out
    assert out.count("REFUSED") == 4 and "layers: checkpoint 1, run 2" in out, out
    out = mpirun(1, ONE.format(app=str(APP), d=d), timeout=120).stdout
    assert "ONE RANK OK" in out, out
    # The file holds each tensor whole, in its global shape (no padding row).
    import h5py
    files = sorted((tmp_path / "ck").glob("llm-*.h5"))
    assert [f.name for f in files] == ["llm-0000000005.h5"]
    with h5py.File(files[0], "r") as h5:
        assert h5["/distributed/p.wte"].shape == (13, 8)
        assert h5["/distributed/m.h0.attn.qkv.w"].shape == (8, 3, 8)
        rng = np.random.default_rng(7)
        sys.path.insert(0, str(APP))
        import model as M
        specs = M.param_specs(M.Config(vocab=13, context=8, layers=1, width=8, heads=2, dtype="float64"))
        ref = {n: rng.standard_normal(s.shape) for n, s in specs.items()}
        for n in specs:
            np.testing.assert_array_equal(h5[f"/distributed/p.{n}"][()], ref[n])

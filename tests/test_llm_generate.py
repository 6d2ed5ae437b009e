"""LLM generation (apps/llm/generate.py): the K/V cache sharded along the
sequence over the ranks, one tree_decode per layer and step. Greedy decoding
equals the argmax of the full model's forward pass over the whole sequence
(no cache), and sampled tokens at 3 ranks equal those at 1 rank for the same
seed; the command line refuses bad options with one line and exit 2."""
import ast
import sys
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "apps" / "llm"

SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {app!r})
import baobab, model as M, ckpt, generate
from grid import Grid
world = baobab.init()
cfg = M.Config(vocab=256, context=48, layers=2, width=16, heads=4, dtype="float64")
params = M.init_params(cfg, seed=3)
for k in params:  # sharper distributions than the 0.02 initialisation gives
    params[k] = params[k] * 8 if params[k].ndim > 1 else params[k]
if {save}:
    ck = ckpt.open_checkpointer({d!r}, world, mode="collective")
    ckpt.save(ck, 1, cfg, Grid(world), params, None, {{}})
    ck.close()
prompt = np.frombuffer(b"def f(x):", np.uint8)
greedy = generate.generate({d!r}, world, prompt, 12, temperature=0)
seq = [int(t) for t in prompt]
gpt = M.GPT(cfg)
for _ in range(12):
    c = gpt.forward(params, np.array([seq]), keep_logits=True, grad=False)
    seq.append(int(np.argmax(c.logits[0, -1])))
assert greedy == seq[len(prompt):], (greedy, seq[len(prompt):])
toks = generate.generate({d!r}, world, prompt, 30, temperature=0.9, top_k=40, seed=5)
every = world.mpi_comm.gather(toks)  # one line from rank 0 (lines of several ranks may interleave)
if world.rank == 0:
    for r, t in enumerate(every):
        print("TOKENS", r, t)
"""


def _tokens(out):
    got = {}
    for line in out.splitlines():
        if line.startswith("TOKENS"):
            _, rank, rest = line.split(" ", 2)
            got[int(rank)] = ast.literal_eval(rest)
    return got


def test_sharded_cache_generation_matches_the_full_model_and_one_rank(mpirun, tmp_path):
    d = str(tmp_path / "ck")
    one = _tokens(mpirun(1, SCRIPT.format(app=str(APP), d=d, save=True), timeout=120).stdout)
    three = _tokens(mpirun(3, SCRIPT.format(app=str(APP), d=d, save=False), timeout=180).stdout)
    assert len(one[0]) == 30 and len(set(one[0])) > 3
    assert three == {0: one[0], 1: one[0], 2: one[0]}, (one, three)


def test_command_line(mpirun, tmp_path):
    d = str(tmp_path / "ck")
    mpirun(1, SCRIPT.format(app=str(APP), d=d, save=True), timeout=120)
    gen = str(APP / "generate.py")
    out = mpirun(2, gen, "--checkpoint", d, "--prompt", "ab", "--tokens", "5", "--out", str(tmp_path / "t.txt"),
                 timeout=120).stdout
    text = (tmp_path / "t.txt").read_text()
    assert text.startswith("ab") and text in out
    for bad, why in ((["--tokens", "0"], "--tokens must be at least 1"),
                     (["--temperature", "-1"], "--temperature must be a finite number"),
                     (["--tokens", "100"], "exceed the model's context (48)")):
        r = mpirun(2, gen, "--checkpoint", d, *bad, expect_rc=2, timeout=120)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("llm-generate")]
        assert len(lines) == 1 and why in lines[0], r.stdout
    r = mpirun(1, gen, "--checkpoint", str(tmp_path / "none"), expect_rc=2, timeout=120)
    assert "no valid checkpoint" in r.stdout, r.stdout

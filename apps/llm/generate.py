"""Sample text from a trained GPT checkpoint, with the key/value cache sharded
along the sequence over the ranks.

    python apps/llm/generate.py --checkpoint run1/ckpt --prompt "def " --tokens 200
    mpiexec -n 4 python apps/llm/generate.py --checkpoint run1/ckpt --tokens 200 --top-k 20

Every rank holds the whole model (the checkpoint loads into any layout) and
the keys and values of every P-th position (position t lives on rank t mod P),
so the cache, the part that grows with the sequence, is divided by P. A
decode step runs the token through the layers on every rank; in each layer
the new query attends to the whole cache with one baobab.attention.tree_decode
(each rank's partial result over its own shard, merged by one topology-aware
collective), which gives every rank the same attention output. The rank that
owns the new position appends its key and value.

Sampling: logits / temperature, restricted to the top-k tokens when --top-k is
given, drawn with numpy's default_rng(seed); --temperature 0 is greedy. All
ranks draw the same token, and the tokens equal those of a one-rank run with
the same seed (the merged attention equals the unsharded one to rounding).

Exit status: 0 done, 2 bad options or no usable checkpoint (one line on stderr),
1 a runtime error.
"""
import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


def parse(argv):
    p = _Parser(prog="llm-generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="the directory a training run saved its checkpoints in")
    p.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    p.add_argument("--tokens", type=int, default=200, help="tokens to generate")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0, help="sample among the k most likely tokens (0: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="also write the generated text (prompt included) to this file")
    a = p.parse_args(argv)
    if a.tokens < 1:
        raise UsageError(f"--tokens must be at least 1, got {a.tokens}")
    if not (a.temperature >= 0 and np.isfinite(a.temperature)):
        raise UsageError(f"--temperature must be a finite number >= 0, got {a.temperature}")
    if a.top_k < 0:
        raise UsageError(f"--top-k must be >= 0, got {a.top_k}")
    if not a.prompt:
        raise UsageError("--prompt must not be empty")
    return a


def sample(logits, rng, temperature, top_k):
    """The next token: greedy at temperature 0, else a draw from softmax(logits / T)
    restricted to the top_k largest (ties broken by the lower id)."""
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    if 0 < top_k < z.size:
        keep = np.argsort(-z, kind="stable")[:top_k]
        masked = np.full_like(z, -np.inf)
        masked[keep] = z[keep]
        z = masked
    p = np.exp(z - z.max())
    c = np.cumsum(p)
    return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), z.size - 1))


class Decoder:
    """One token at a time through the model, with this rank's shard of the K/V cache."""

    def __init__(self, cfg, params, comm):
        import ops as K
        self.K, self.cfg, self.p, self.comm = K, cfg, params, comm
        H, d = cfg.heads, cfg.head_dim
        self.cache = [(np.zeros((1, H, 0, d), cfg.np_dtype), np.zeros((1, H, 0, d), cfg.np_dtype))
                      for _ in range(cfg.layers)]
        self.pos = 0

    def step(self, token):
        """Feeds `token` at the next position; returns the logits of the one after."""
        from baobab import attention
        K, cfg, p = self.K, self.cfg, self.p
        C, H, d, eps = cfg.width, cfg.heads, cfg.head_dim, cfg.ln_eps
        t = self.pos
        if t >= cfg.context:
            raise ValueError(f"the sequence reached the model's context ({cfg.context} positions)")
        mine = t % self.comm.size == self.comm.rank
        x = (p["wte"][token] + p["wpe"][t])[None].astype(cfg.np_dtype)
        for i in range(cfg.layers):
            P = lambda n: p[f"h{i}.{n}"]  # noqa: E731
            h1 = K.layernorm_forward(x, P("ln1.w"), P("ln1.b"), eps)[0]
            qkv = h1 @ P("attn.qkv.w").reshape(C, 3 * C)
            qkv += P("attn.qkv.b").reshape(-1)
            qkv = qkv.reshape(3, H, d)
            kc, vc = self.cache[i]
            if mine:
                kc = np.concatenate([kc, qkv[1][None, :, None]], axis=2)
                vc = np.concatenate([vc, qkv[2][None, :, None]], axis=2)
                self.cache[i] = (kc, vc)
            q = np.ascontiguousarray(qkv[0][None, :, None])
            y = attention.tree_decode(q, kc, vc, self.comm).reshape(1, C)
            x = K.bias_residual(y @ P("attn.proj.w"), P("attn.proj.b"), x)
            h2 = K.layernorm_forward(x, P("ln2.w"), P("ln2.b"), eps)[0]
            a = K.bias_gelu_forward(h2 @ P("mlp.fc.w"), P("mlp.fc.b"))[1]
            x = K.bias_residual(a @ P("mlp.proj.w"), P("mlp.proj.b"), x)
        hf = K.layernorm_forward(x, p["lnf.w"], p["lnf.b"], eps)[0]
        self.pos += 1
        return (hf @ p["wte"][:cfg.vocab].T)[0]

    def cache_positions(self):
        return self.cache[0][0].shape[2]


def generate(ck_dir, world, prompt_tokens, n_tokens, *, temperature=1.0, top_k=0, seed=0):
    """The generated tokens (the prompt excluded); collective over `world`."""
    import ckpt
    from grid import Grid
    grid = Grid(world, dp=world.size)
    ck = ckpt.open_checkpointer(ck_dir, world, mode="collective")
    try:
        loaded = ckpt.load(ck, None, grid)
    finally:
        ck.close()
    cfg = loaded.config
    if len(prompt_tokens) + n_tokens > cfg.context:
        raise ValueError(f"prompt ({len(prompt_tokens)} tokens) + --tokens {n_tokens} exceed the model's context "
                         f"({cfg.context})")
    if max(prompt_tokens) >= cfg.vocab:
        raise ValueError(f"the prompt has token {max(prompt_tokens)}, the model's vocabulary is {cfg.vocab}")
    dec = Decoder(cfg, loaded.params, world)
    rng = np.random.default_rng(seed)
    for tok in prompt_tokens[:-1]:
        dec.step(int(tok))
    out, tok = [], int(prompt_tokens[-1])
    for _ in range(n_tokens):
        tok = sample(dec.step(tok), rng, temperature, top_k)
        out.append(tok)
    return out


def main(argv=None):
    from train import _launcher_rank  # the rank the launcher gives, before MPI starts
    try:
        args = parse(sys.argv[1:] if argv is None else argv)
    except UsageError as e:  # the same on every rank: rank 0 says it
        if _launcher_rank() == 0:
            print(f"llm-generate: {e}", file=sys.stderr)
        return 2
    import baobab
    import data
    world = baobab.init()
    prompt = data.encode(args.prompt)
    try:
        toks = generate(args.checkpoint, world, prompt, args.tokens, temperature=args.temperature,
                        top_k=args.top_k, seed=args.seed)
    except (ValueError, baobab.Error) as e:
        if world.rank == 0:
            print(f"llm-generate: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    if world.rank == 0:
        text = data.decode(np.concatenate([prompt, np.array(toks, np.uint8)]))
        print(text)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

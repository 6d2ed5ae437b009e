"""Training data: a byte-level tokenizer, a train/validation split, and a
restartable sampler that gives each data-parallel rank its own contiguous
shard.

Tokenizer: the UTF-8 bytes of the text, one token per byte (vocabulary 256).
Default corpus: the text of the Python standard library's pydoc_data.topics
(about 0.47 MB of English prose and code with Python 3.11, no download), its topics in sorted
order joined by blank lines.

Split: the last `val_fraction` of the tokens are the validation set, the rest
the training set.

Sampler (restartable): the training tokens are cut into dp_size contiguous
shards, rank r taking the r-th (near-equal lengths). A shard holds
n = (len - 1) // seq_len windows; window w is tokens [w*seq_len, w*seq_len +
seq_len] (inputs the first seq_len, targets the same shifted by one). This
rank's k-th sequence (k = (step * accum + micro) * batch + b) is window
perm_e[k mod n] of epoch e = k // n, where perm_e is the permutation of the
windows drawn from numpy's default_rng([seed, e]). A batch is therefore a pure
function of (seed, step, micro-batch): a run restarted at step s reads exactly
what it would have read. The global batch of a step at dp_size D is the
concatenation over ranks 0..D-1 of their batches.
"""
import numpy as np

from baobab import InvalidArgument

VOCAB = 256


def default_corpus():
    """The text of pydoc_data.topics (Python's own help texts)."""
    from pydoc_data import topics
    return "\n\n".join(topics.topics[k] for k in sorted(topics.topics))


def encode(text):
    """Byte-level tokens (uint8) of a str."""
    return np.frombuffer(text.encode("utf-8"), np.uint8).copy()


def decode(tokens):
    """The text of byte tokens (invalid UTF-8 sequences shown as U+FFFD)."""
    return bytes(np.asarray(tokens, np.uint8).tolist()).decode("utf-8", errors="replace")


def load(path=None):
    """Tokens of a file (its bytes, any file) or of the default corpus."""
    if path is None:
        return encode(default_corpus())
    with open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8).copy()


def split(tokens, val_fraction=0.1):
    """(train, validation): the validation set is the last val_fraction of the tokens."""
    if not 0 < val_fraction < 1:
        raise InvalidArgument(f"val_fraction must lie in (0, 1), got {val_fraction}")
    n_val = int(round(len(tokens) * val_fraction))
    return tokens[:len(tokens) - n_val], tokens[len(tokens) - n_val:]


def shard_range(n, rank, size):
    """[start, stop) of rank's contiguous near-equal share of n items."""
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


class Sampler:
    """Batches of (inputs, targets), each (batch, seq_len) int64, from this
    data-parallel rank's shard; see the module's docstring for the order."""

    def __init__(self, tokens, seq_len, batch, dp_rank=0, dp_size=1, seed=0, accum=1):
        for name, v in (("seq_len", seq_len), ("batch", batch), ("dp_size", dp_size), ("accum", accum)):
            if int(v) != v or v < 1:
                raise InvalidArgument(f"Sampler {name} must be a positive integer, got {v}")
        if not 0 <= dp_rank < dp_size:
            raise InvalidArgument(f"Sampler dp_rank must lie in [0, {dp_size}), got {dp_rank}")
        a, b = shard_range(len(tokens), dp_rank, dp_size)
        self.shard = np.asarray(tokens[a:b])
        self.seq_len, self.batch, self.seed, self.accum = int(seq_len), int(batch), int(seed), int(accum)
        self.windows = (len(self.shard) - 1) // self.seq_len
        if self.windows < 1:
            raise InvalidArgument(f"a data-parallel shard of {len(self.shard)} tokens is too short for one sequence "
                                  f"of {seq_len} (+1) tokens: use more data, fewer data-parallel ranks or a shorter "
                                  "sequence")
        self._perm = (None, None)

    def _permutation(self, epoch):
        if self._perm[0] != epoch:
            self._perm = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.windows))
        return self._perm[1]

    def window(self, k):
        """(inputs, targets) of this rank's k-th sequence."""
        w = int(self._permutation(k // self.windows)[k % self.windows])
        seq = self.shard[w * self.seq_len:w * self.seq_len + self.seq_len + 1].astype(np.int64)
        return seq[:-1], seq[1:]

    def get(self, step, micro=0):
        """The micro-batch `micro` of step `step` (both from 0)."""
        if step < 0 or not 0 <= micro < self.accum:
            raise InvalidArgument(f"step must be >= 0 and micro in [0, {self.accum}), got {step}, {micro}")
        k0 = (step * self.accum + micro) * self.batch
        pairs = [self.window(k0 + b) for b in range(self.batch)]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def eval_batches(tokens, seq_len, batch, count, dp_rank=0, dp_size=1):
    """Up to `count` validation batches of this rank: the first windows of its
    contiguous shard of the validation tokens, in order (the same every time)."""
    a, b = shard_range(len(tokens), dp_rank, dp_size)
    shard = np.asarray(tokens[a:b])
    n = (len(shard) - 1) // seq_len
    out = []
    for i in range(0, min(n, count * batch) - batch + 1, batch):
        seqs = np.stack([shard[w * seq_len:w * seq_len + seq_len + 1] for w in range(i, i + batch)]).astype(np.int64)
        out.append((seqs[:, :-1], seqs[:, 1:]))
    return out

"""The LLM app's data parallelism (apps/llm/dp.py): bucket layout, bucketed
overlapped gradient reduction with accumulation, ZeRO-2 gradient shards and
ZeRO parameter all-gather, on 1 rank and under mpiexec at 2 and 3 ranks,
against sums computed with mpi4py on the same data."""
import sys
from pathlib import Path

import numpy as np
import pytest

APP = Path(__file__).resolve().parents[1] / "apps" / "llm"
sys.path.insert(0, str(APP))

import dp  # noqa: E402

import baobab  # noqa: E402

SHAPES = [("head.b", (7,)), ("h1.w", (5, 6)), ("h1.b", (6,)), ("h0.w", (40, 3)), ("emb", (11, 4))]


def test_layout_packs_in_order_pads_and_gives_big_parameters_their_own_bucket():
    lay = dp.make_layout(SHAPES, itemsize=8, parts=3, bucket_bytes=8 * 50)
    # 7 + 30 = 37 fit in 50; 6 would make 43 (fits); 120 alone; 44 alone.
    assert lay.bucket_members == [["head.b", "h1.w", "h1.b"], ["h0.w"], ["emb"]]
    assert lay.bucket_sizes == [45, 120, 45]  # 43, 120, 44 padded to multiples of 3
    assert [lay.slots[n].offset for n in ("head.b", "h1.w", "h1.b")] == [0, 7, 37]
    assert lay.shard_ranges(1) == [(15, 30), (85, 125), (180, 195)]
    assert lay.shard_size() == 70 and lay.total == 210
    with pytest.raises(baobab.InvalidArgument, match="named twice"):
        dp.make_layout(SHAPES + [("emb", (2,))], itemsize=8)
    with pytest.raises(baobab.InvalidArgument, match="bucket size"):
        dp.make_layout(SHAPES, itemsize=8, bucket_bytes=0)


def test_one_rank_accumulates_and_checks_its_input():
    lay = dp.make_layout(SHAPES, itemsize=8, bucket_bytes=8 * 50)
    red = dp.GradReducer(None, lay, np.float64)
    rng = np.random.default_rng(0)
    total = {n: np.zeros(s) for n, s in SHAPES}
    for micro in range(3):
        red.begin(sync=micro == 2)
        for n, s in SHAPES:
            g = rng.standard_normal(s)
            total[n] += g
            red.add(n, g)
        out = red.finish(last=micro == 2)
    assert out is red.flat
    for n, _ in SHAPES:
        np.testing.assert_array_equal(red.view(n), total[n])
    red.begin(sync=True)
    with pytest.raises(baobab.InvalidArgument, match="unknown parameter 'nope'"):
        red.add("nope", np.zeros(1))
    with pytest.raises(baobab.InvalidArgument, match=r"shape \(3,\), expected \(7,\)"):
        red.add("head.b", np.zeros(3))
    red.add("head.b", np.zeros(7))
    with pytest.raises(baobab.InvalidArgument, match="never declared ready"):
        red.finish()


SCRIPT = """
import sys, numpy as np
sys.path.insert(0, {app!r})
import dp, baobab
from mpi4py import MPI
c = baobab.init()
m = MPI.COMM_WORLD
shapes = {shapes!r}
P = c.size
lay = dp.make_layout(shapes, itemsize=8, parts=P, bucket_bytes=8 * 50)
for zero in (0, 1, 2):
    red = dp.GradReducer(c, lay, np.float64, zero=zero)
    rng = np.random.default_rng(100 + c.rank)
    mine = {{n: np.zeros(s) for n, s in shapes}}
    for micro in range(3):
        red.begin(sync=micro == 2)
        for n, s in shapes:
            g = rng.integers(-50, 50, size=s).astype(np.float64)
            mine[n] += g
            red.add(n, g)
            red.poll()
        out = red.finish(last=micro == 2)
    # the reference: the mean over ranks of each rank's accumulated gradient
    want = {{}}
    for n, s in shapes:
        allg = np.empty((P,) + tuple(s))
        m.Allgather(mine[n], allg)
        want[n] = allg.sum(axis=0) / P
    flat_want = np.zeros(lay.total)
    for n, s in shapes:
        sl = lay.slots[n]
        off = lay.bucket_offset(sl.bucket) + sl.offset
        flat_want[off:off + sl.size] = want[n].ravel()
    if zero < 2:
        assert out is red.flat
        np.testing.assert_array_equal(out, flat_want)
        assert red.bytes_sent == lay.total * 8, red.bytes_sent
    else:
        ref = np.concatenate([flat_want[lo:hi] for lo, hi in lay.shard_ranges(c.rank)])
        np.testing.assert_array_equal(out, ref)
        assert red.bytes_sent == 3 * lay.total * 8, red.bytes_sent  # every micro-batch
        assert red.persistent_bytes() == lay.shard_size() * 8 and not red._live
        assert 0 < red.peak_bucket_bytes <= 3 * max(lay.bucket_sizes) * 8
    assert red.exposed >= 0

# ZeRO: each rank updates its shard, gather() gives everyone the whole update
params = {{n: np.full(s, 1.0) for n, s in shapes}}
sp = dp.ShardedParams(c, lay, params)
assert all(np.shares_memory(params[n], sp.flat) for n, _ in shapes)
sp.shard += c.rank + 1
sp.gather()
owner = np.zeros(lay.total)
for r in range(P):
    for lo, hi in lay.shard_ranges(r):
        owner[lo:hi] = r + 1
for n, s in shapes:
    sl = lay.slots[n]
    off = lay.bucket_offset(sl.bucket) + sl.offset
    np.testing.assert_array_equal(params[n].ravel(), 1.0 + owner[off:off + sl.size])
print(f"DP OK {{c.rank}}")
"""


@pytest.mark.parametrize("n", [2, 3])
def test_bucketed_reduction_and_zero_shards_match_the_mean_over_ranks(mpirun, n):
    out = mpirun(n, SCRIPT.format(app=str(APP), shapes=SHAPES), timeout=120).stdout
    assert out.count("DP OK") == n, out


BF16 = """
import sys, numpy as np
sys.path.insert(0, {app!r})
import dp, baobab, ml_dtypes
from mpi4py import MPI
c = baobab.init()
m = MPI.COMM_WORLD
shapes = {shapes!r}
bf = ml_dtypes.bfloat16
lay = dp.make_layout(shapes, itemsize=4, parts=2, bucket_bytes=4 * 50)
for zero in (0, 2):
    red = dp.GradReducer(c, lay, np.float32, zero=zero, average=False, comm_dtype="bfloat16")
    rng = np.random.default_rng(7 + c.rank)
    mine = {{n: rng.standard_normal(s).astype(np.float32) for n, s in shapes}}
    red.begin(sync=True)
    for n, s in shapes:
        red.add(n, mine[n])
    out = red.finish()
    flat_want = np.zeros(lay.total, np.float32)
    for n, s in shapes:
        allg = np.empty((2,) + tuple(s), np.float32)
        m.Allgather(mine[n], allg)
        # each rank's values rounded to bfloat16 once, added in float32, the sum rounded to bfloat16
        want = (allg[0].astype(bf).astype(np.float32) + allg[1].astype(bf).astype(np.float32)).astype(bf)
        sl = lay.slots[n]
        off = lay.bucket_offset(sl.bucket) + sl.offset
        flat_want[off:off + sl.size] = want.astype(np.float32).ravel()
    if zero == 2:
        flat_want = np.concatenate([flat_want[lo:hi] for lo, hi in lay.shard_ranges(c.rank)])
    np.testing.assert_array_equal(out, flat_want)
    assert red.bytes_sent == lay.total * 2, (red.bytes_sent, lay.total)  # half of float32's bytes
print(f"BF16 OK {{c.rank}}")
"""


def test_bfloat16_on_the_wire_rounds_once_and_halves_the_bytes(mpirun):
    out = mpirun(2, BF16.format(app=str(APP), shapes=SHAPES), timeout=120).stdout
    assert out.count("BF16 OK") == 2, out
    with pytest.raises(baobab.InvalidArgument, match="bfloat16"):
        dp.GradReducer(None, dp.make_layout(SHAPES, 4), np.float32, comm_dtype="float16")

"""Tensor and sequence parallel GPT training (apps/llm) against the 1-rank run
in float64 (mpi/llm_parallel.py): loss and every gradient of one batch, then
five training steps' losses and final parameters, to 1e-10.

TP=2 with a vocabulary of 257 (padded to 258, the padding never trained nor in
the loss) and of 256; SP=2 and SP=4 with the zigzag layout on sequence lengths
that 2*SP does not divide (13: chunks of 4,3,3,3 and 2,2,2,2,2,1,1,1); TP2 x SP2."""
import pytest

from conftest import MPI_DIR


@pytest.mark.parametrize("n, tp, sp, vocab, seq", [
    (2, 2, 1, 257, 13),
    (2, 2, 1, 256, 16),
    (2, 1, 2, 256, 13),
    (4, 1, 4, 257, 13),
    (4, 2, 2, 257, 11),
])
def test_parallel_equals_one_rank(mpirun, n, tp, sp, vocab, seq):
    out = mpirun(n, MPI_DIR / "llm_parallel.py", tp, sp, vocab, seq, timeout=300).stdout
    assert f"OK llm tp={tp} sp={sp}" in out, out


@pytest.mark.parametrize("n, dp, tp, sp, zero, accum", [
    (2, 2, 1, 1, 0, 2),
    (4, 4, 1, 1, 0, 1),
    (2, 2, 1, 1, 1, 2),
    (2, 2, 1, 1, 2, 2),
    (3, 3, 1, 1, 2, 1),
    (4, 2, 2, 1, 1, 2),
    (4, 2, 1, 2, 2, 2),
])
def test_data_parallel_and_zero_equal_one_rank(mpirun, n, dp, tp, sp, zero, accum):
    """DP (buckets reduced during the backward pass), ZeRO-1/2, DP2xTP2 and DP2xSP2
    (mpi/llm_dp.py): five steps' losses, gradient norms and final parameters equal
    the 1-rank run on the same global batch to 1e-10; memory per rank = the formula."""
    out = mpirun(n, MPI_DIR / "llm_dp.py", dp, tp, sp, zero, accum, 0.002, timeout=300).stdout
    assert f"OK llm dp={dp} tp={tp} sp={sp} zero={zero}" in out, out


@pytest.mark.parametrize("zero", [0, 2])
def test_gradients_sent_as_bfloat16_train_like_one_rank(mpirun, zero):
    """--grad-comm bfloat16 (float32 model, DP=2): half the gradient bytes, losses,
    norms and parameters within 3e-3 of the 1-rank float32 run after five steps."""
    out = mpirun(2, MPI_DIR / "llm_dp.py", 2, 1, 1, zero, 2, 0.002, "bfloat16", timeout=300).stdout
    assert f"OK llm dp=2 tp=1 sp=1 zero={zero}" in out, out

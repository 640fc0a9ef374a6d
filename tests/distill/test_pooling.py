"""Pooling over real positions: hand-made tensors with left padding."""

from __future__ import annotations

import math

import pytest
import torch

from seqrec.distill.pooling import SequencePooling

# two users, window 4, hidden 2; user 0 has 2 real items (left-padded), user 1 has 4
HIDDEN = torch.tensor([[[9.0, 9.0], [9.0, 9.0], [1.0, 2.0], [3.0, 6.0]],
                       [[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]]])
REAL = torch.tensor([[False, False, True, True], [True, True, True, True]])


def test_mean_ignores_padding() -> None:
    pooled = SequencePooling("mean", 2)(HIDDEN, REAL)
    torch.testing.assert_close(pooled, torch.tensor([[2.0, 4.0], [2.5, 0.0]]))


def test_exponential_weights_newest_most_and_renormalise_over_real_positions() -> None:
    pooled = SequencePooling("exponential", 2, gamma=math.log(2.0))(HIDDEN, REAL)  # weights 1 : 2 per step
    torch.testing.assert_close(pooled[0], torch.tensor([(1 + 2 * 3) / 3, (2 + 2 * 6) / 3]))
    torch.testing.assert_close(pooled[1, 0], torch.tensor((1 + 2 * 2 + 4 * 3 + 8 * 4) / 15))


def test_attention_is_a_masked_softmax_of_a_learned_score() -> None:
    pool = SequencePooling("attention", 2)
    with torch.no_grad():
        pool.score.weight.copy_(torch.tensor([[1.0, 0.0]]))
        pool.score.bias.zero_()
    pooled = pool(HIDDEN, REAL)
    w = torch.softmax(torch.tensor([1.0, 3.0]), 0)  # padding rows (score 9) are excluded
    torch.testing.assert_close(pooled[0], w[0] * HIDDEN[0, 2] + w[1] * HIDDEN[0, 3])
    pooled.sum().backward()
    assert pool.score.weight.grad is not None and pool.score.weight.grad.abs().sum() > 0


def test_last_is_the_newest_position() -> None:
    torch.testing.assert_close(SequencePooling("last", 2)(HIDDEN, REAL), HIDDEN[:, -1])


@pytest.mark.parametrize("scheme", ["mean", "exponential", "attention"])
def test_padding_values_never_change_the_result(scheme: str) -> None:
    pool = SequencePooling(scheme, 2)
    changed = HIDDEN.clone()
    changed[0, :2] = -100.0
    torch.testing.assert_close(pool(changed, REAL), pool(HIDDEN, REAL))


def test_an_all_padding_row_pools_to_zero() -> None:
    pooled = SequencePooling("mean", 2)(HIDDEN[:1], torch.zeros(1, 4, dtype=torch.bool))
    assert torch.equal(pooled, torch.zeros(1, 2))

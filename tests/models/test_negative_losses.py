"""BCE, BPR and gBCE over sampled negatives: hand-computed values, calibration, shared draws, settings."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqrec.errors import ConfigError
from seqrec.models import losses
from seqrec.models.losses import gbce_beta, negative_sampling_loss, sampled_scores, shared_block
from seqrec.training.config import TrainConfig

# item 0 is padding; item 1 = (2, 0), item 2 = (0, 1), item 5 = (-1, 1)
ITEMS = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.5, 0.0], [-1.0, 1.0]])
HIDDEN = torch.tensor([[1.0, 0.0]])


def only(item: int, num_items: int = 5) -> torch.Tensor:
    """Sampling probabilities [N] that always draw `item`."""
    probs = torch.zeros(num_items)
    probs[item - 1] = 1.0
    return probs


def sp(x: float) -> float:
    return math.log1p(math.exp(x))  # softplus


def test_bce_by_hand() -> None:
    one = negative_sampling_loss("bce", 5, 1, item_probs=only(5))  # the original SASRec: no shift
    assert one(HIDDEN, torch.tensor([1]), ITEMS).item() == pytest.approx(sp(-2.0) + sp(-1.0), rel=1e-6)
    two = negative_sampling_loss("bce", 5, 2, item_probs=only(5))
    value = two(HIDDEN, torch.tensor([1]), ITEMS)  # s+ = 2, both negatives are item 5 with s- = -1; shift log(1/2)
    c = math.log(0.5)
    assert value.item() == pytest.approx(sp(-(2.0 + c)) + 2 * sp(-1.0 + c), rel=1e-6)


def test_bpr_by_hand() -> None:
    loss = negative_sampling_loss("bpr", 5, 1, item_probs=only(2))
    value = loss(HIDDEN, torch.tensor([1]), ITEMS)  # s+ = 2, s- = 0
    assert value.item() == pytest.approx(sp(-2.0), rel=1e-6)


def test_gbce_by_hand() -> None:
    # alpha = 2 / (5 - 1) = 0.5; beta = 0.5 * (0.75 * (1 - 2) + 2) = 0.625
    assert gbce_beta(2, 5, 0.75) == pytest.approx(0.625)
    loss = negative_sampling_loss("gbce", 5, 2, t=0.75, item_probs=only(5))
    value = loss(HIDDEN, torch.tensor([1]), ITEMS)
    c = math.log(0.625 / 2)  # logits shifted by log(beta / K)
    assert value.item() == pytest.approx(0.625 * sp(-(2.0 + c)) + 2 * sp(-1.0 + c), rel=1e-6)


@pytest.mark.parametrize(("kind", "negatives"), [("bce", 64), ("gbce", 64)])
def test_the_shift_puts_the_balance_of_gradients_at_score_zero(kind: str, negatives: int) -> None:
    """At score 0 for every item, the positive's pull and the negatives' push on a shared offset cancel."""
    offset = torch.zeros((), requires_grad=True)  # every item's score (hidden 1 · item vector = offset)
    loss = negative_sampling_loss(kind, 100, negatives, torch.Generator().manual_seed(0))
    loss(torch.ones(8, 1), torch.ones(8, dtype=torch.long), torch.zeros(101, 1) + offset).backward()
    # ~1% of negatives equal the target and are left out; unshifted, it would be 8·(K − β)·σ(0) ≈ 250
    assert abs(offset.grad.item()) < 0.05 * 8


def test_gbce_beta_ends() -> None:
    assert gbce_beta(256, 3417, 0.0) == pytest.approx(1.0)  # plain BCE
    assert gbce_beta(256, 3417, 1.0) == pytest.approx(256 / 3416)  # beta = alpha


@pytest.mark.parametrize("kind", ["bce", "bpr"])
def test_a_negative_equal_to_the_target_is_left_out(kind: str) -> None:
    loss = negative_sampling_loss(kind, 5, 1, item_probs=only(1))  # the only negative is the target itself
    value = loss(HIDDEN, torch.tensor([1]), ITEMS)
    assert value.item() == pytest.approx(sp(-2.0) if kind == "bce" else 0.0, abs=1e-7)


def test_uniform_negatives_cover_the_catalogue_and_never_padding(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: set[int] = set()
    original = losses.sampled_scores

    def spy(hidden: torch.Tensor, items: torch.Tensor, ids: torch.Tensor, size: int) -> torch.Tensor:
        seen.update(ids.flatten().tolist())
        return original(hidden, items, ids, size)

    monkeypatch.setattr(losses, "sampled_scores", spy)
    negative_sampling_loss("gbce", 5, 64, torch.Generator().manual_seed(0))(
        HIDDEN.repeat(8, 1), torch.ones(8, dtype=torch.long), ITEMS)
    assert seen == {1, 2, 3, 4, 5}


def test_neighbouring_positions_share_draws_in_blocks() -> None:
    assert [shared_block(k) for k in (1, 4, 8, 16, 64, 256, 1024)] == [1, 1, 1, 2, 8, 32, 32]
    torch.manual_seed(0)
    hidden, items = torch.randn(37, 8), torch.randn(20, 8)
    for size in (1, 4, 32):  # the last block is partial unless size divides 37
        ids = torch.randint(1, 20, (-(-37 // size), 5))
        expected = (hidden[:, None, :] * items[ids.repeat_interleave(size, dim=0)[:37]]).sum(-1)  # [37, 5]
        torch.testing.assert_close(sampled_scores(hidden, items, ids, size), expected)


def test_a_colliding_negative_is_masked_at_the_position_that_drew_it() -> None:
    """40 positions, 16 negatives (blocks of 2): the target of position 39 is the only item ever drawn."""
    hidden = torch.zeros(40, 2)
    targets = torch.full((40,), 1)
    targets[39] = 5
    value = negative_sampling_loss("bce", 5, 16, item_probs=only(5))(hidden, targets, ITEMS)
    # every score is the shift c = log(1/16): 40 positive terms, and 16 negative terms for each position but the last
    c = math.log(1 / 16)
    assert value.item() == pytest.approx(40 * sp(-c) + 16 * 39 * sp(c), rel=1e-6)


def test_gradients_push_the_target_up_and_the_negative_down() -> None:
    items = ITEMS.clone().requires_grad_(True)
    hidden = HIDDEN.clone().requires_grad_(True)
    for kind in ("bce", "bpr", "gbce"):
        items.grad = None
        negative_sampling_loss(kind, 5, 1, item_probs=only(5))(hidden, torch.tensor([1]), items).backward()
        step = -items.grad  # gradient descent direction
        assert float(step[1] @ HIDDEN[0]) > 0 and float(step[5] @ HIDDEN[0]) < 0, kind
        assert F.pad(items.grad[2:5], (0, 0)).abs().sum() == 0  # untouched items get no gradient


@pytest.mark.parametrize(("settings", "match"), [
    ({"loss": "bpr", "negatives": 4}, "one negative"),
    ({"loss": "gbce", "negative_sampler": "popularity"}, "uniform"),
    ({"loss": "gbce", "gbce_t": 1.5}, "gbce_t"),
    ({"loss": "bce", "negatives": -1}, "negatives"),
    ({"loss": "hinge"}, "train.loss"),
])
def test_bad_settings_are_config_errors(settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TrainConfig(**settings)


def test_loss_defaults() -> None:
    assert TrainConfig(loss="bce").negatives_used == 1
    assert TrainConfig(loss="gbce").negatives_used == 256
    assert TrainConfig(loss="sampled").negatives_used == 1024
    assert TrainConfig(loss="sampled").sampler_used == "popularity"
    assert TrainConfig(loss="bce").sampler_used == "uniform"
    assert TrainConfig(loss="bce", negatives=8).negatives_used == 8

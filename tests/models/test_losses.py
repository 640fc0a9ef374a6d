"""Training objectives: full, chunked and sampled softmax CE, the shifted next-item loss and cloze masking."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from seqrec.models import BERT4RecConfig, build_model
from seqrec.models.base import ModelConfig, SequentialEncoder
from seqrec.models.losses import (
    chunked_softmax_ce,
    cloze_loss,
    cloze_mask,
    full_softmax_ce,
    next_item_loss,
    sampled_softmax_ce,
)


def test_full_softmax_ce_matches_hand_computation() -> None:
    items = torch.tensor([[9.0, 9.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # row 0 (padding) would dominate
    hidden = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([1, 3])
    # logits over items 1..3: row 0 -> [1, 0, 1] (target item 1), row 1 -> [0, 2, 2] (target item 3)
    first = math.log(2 * math.e + 1) - 1
    second = math.log(1 + 2 * math.e**2) - 2
    loss = full_softmax_ce(hidden, targets, items)
    assert loss.item() == pytest.approx(first + second, rel=1e-6)  # summed; callers divide by the count


class LookupEncoder(SequentialEncoder):
    """hidden_t = E[item_t], plus `pad_value` at padding positions (so a loss that reads them would change)."""

    def __init__(self, num_items: int = 6, hidden: int = 3, pad_value: float = 0.0) -> None:
        super().__init__(ModelConfig(max_len=8, hidden=hidden, dropout=0.0), num_items)
        torch.manual_seed(0)
        self.items = nn.Embedding(num_items + 1, hidden)
        self.pad_value = pad_value

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        return self.items(items) + self.pad_value * (items == 0).unsqueeze(-1)

    def item_embeddings(self) -> torch.Tensor:
        return self.items.weight


BATCH = torch.tensor([
    [0, 0, 3, 4, 5, 6],  # pairs 3->4, 4->5, 5->6
    [1, 2, 3, 4, 5, 6],  # 5 pairs
    [0, 0, 0, 0, 2, 1],  # one pair 2->1
])


def _hand_next_item_loss(model: SequentialEncoder, batch: torch.Tensor, last_only: bool) -> torch.Tensor:
    pairs = []
    for row in batch.tolist():
        positions = [len(row) - 2] if last_only else range(len(row) - 1)
        pairs += [(row[t], row[t + 1]) for t in positions if row[t] != 0 and row[t + 1] != 0]
    inputs, targets = torch.tensor(pairs).T
    logits = model.encode(inputs[None])[0] @ model.item_embeddings()[1:].T
    return F.cross_entropy(logits, targets - 1)


@torch.no_grad()
def test_next_item_loss_is_the_mean_ce_over_real_pairs() -> None:
    model = LookupEncoder()
    for last_only in (False, True):
        expected = _hand_next_item_loss(model, BATCH, last_only)
        torch.testing.assert_close(next_item_loss(model, BATCH, last_only=last_only).mean, expected)


@torch.no_grad()
def test_next_item_loss_ignores_padding() -> None:
    clean = next_item_loss(LookupEncoder(pad_value=0.0), BATCH).mean
    # hidden states at padding positions are garbage: the loss must not read them
    torch.testing.assert_close(next_item_loss(LookupEncoder(pad_value=100.0), BATCH).mean, clean)
    # more left padding is the same batch
    wider = torch.cat([torch.zeros(3, 4, dtype=torch.long), BATCH], dim=1)
    torch.testing.assert_close(next_item_loss(LookupEncoder(), wider).mean, clean)
    # an all-padding row adds no position
    with_empty_row = torch.cat([BATCH, torch.zeros(1, 6).long()])
    torch.testing.assert_close(next_item_loss(LookupEncoder(), with_empty_row).mean, clean)


@torch.no_grad()
def test_last_only_uses_only_the_last_position() -> None:
    model = LookupEncoder()
    last = next_item_loss(model, BATCH, last_only=True).mean
    earlier_changed = BATCH.clone()
    earlier_changed[:, :-2] = torch.tensor([[0, 0, 1, 2], [6, 5, 4, 3], [0, 0, 0, 0]])
    torch.testing.assert_close(next_item_loss(model, earlier_changed, last_only=True).mean, last)
    last_changed = BATCH.clone()
    last_changed[:, -1] = torch.tensor([1, 1, 6])
    assert not torch.allclose(next_item_loss(model, last_changed, last_only=True).mean, last)
    # the one-pair row alone gives the CE of 2 -> 1
    single = next_item_loss(model, BATCH[2:], last_only=True).mean
    logits = model.items.weight[2] @ model.items.weight[1:].T
    torch.testing.assert_close(single, F.cross_entropy(logits[None], torch.tensor([0])))


def _ragged(rows: int, width: int, seed: int) -> torch.Tensor:
    """Left-padded random items with lengths 0..width (some rows empty)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, width + 1, (rows,), generator=g)
    items = torch.randint(1, 50, (rows, width), generator=g)
    keep = torch.arange(width)[None, :] >= (width - lengths)[:, None]
    return items * keep


def test_cloze_mask_never_masks_padding_and_hits_the_rate() -> None:
    items = _ragged(400, 50, seed=0)
    masked = cloze_mask(items, 0.2, torch.Generator().manual_seed(1))
    assert masked.dtype == torch.bool and masked.shape == items.shape
    assert not masked[items == 0].any()
    share = masked.sum().item() / (items != 0).sum().item()
    assert abs(share - 0.2) < 0.02  # ~10,000 real items: the standard error is 0.004
    again = cloze_mask(items, 0.2, torch.Generator().manual_seed(1))
    assert torch.equal(masked, again)  # same generator seed, same mask


def test_cloze_mask_masks_at_least_one_item_per_non_empty_row() -> None:
    items = _ragged(500, 4, seed=2)  # short rows and a tiny rate: most rows would otherwise get no mask
    masked = cloze_mask(items, 0.01, torch.Generator().manual_seed(3))
    non_empty = (items != 0).any(1)
    assert (~non_empty).sum() > 0 and non_empty.sum() > 0
    assert (masked[non_empty].sum(1) >= 1).all()
    assert not masked[~non_empty].any()
    forced = non_empty & (masked.sum(1) == 1)
    assert masked[forced, -1].float().mean() > 0.9  # the fallback is the last (most recent) item


@torch.no_grad()
def test_cloze_loss_is_ce_over_the_masked_positions() -> None:
    torch.manual_seed(0)
    model = build_model(BERT4RecConfig(max_len=6, hidden=8, dropout=0.0), 6).eval()
    masked = cloze_mask(BATCH, 0.4, torch.Generator().manual_seed(5))
    inputs = torch.where(masked, torch.full_like(BATCH, model.mask_token), BATCH)
    logits = model.encode(inputs)[masked] @ model.item_embeddings()[1:].T
    expected = F.cross_entropy(logits, BATCH[masked] - 1)
    torch.testing.assert_close(cloze_loss(model, BATCH, 0.4, torch.Generator().manual_seed(5)).mean, expected)


def test_next_item_loss_counts_the_real_pairs() -> None:
    out = next_item_loss(LookupEncoder(), BATCH)
    assert out.count.item() == 3 + 5 + 1
    torch.testing.assert_close(out.total / 9, out.mean)


@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_chunked_softmax_equals_full_softmax_in_value_and_gradients(chunk: int) -> None:
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    items = torch.randn(8, 4, generator=g, dtype=torch.float64, requires_grad=True)  # row 0 = padding
    targets = torch.randint(1, 8, (10,), generator=g)
    full = full_softmax_ce(hidden, targets, items)
    grads = torch.autograd.grad(full * 0.7, (hidden, items))
    chunked = chunked_softmax_ce(chunk)(hidden, targets, items)
    torch.testing.assert_close(chunked, full)
    got = torch.autograd.grad(chunked * 0.7, (hidden, items))
    for mine, want in zip(got, grads, strict=True):
        torch.testing.assert_close(mine, want)
    assert got[1][0].abs().sum() == 0  # the padding row gets no gradient
    frozen = items.detach()  # a frozen item table: the same hidden gradient, no table gradient computed
    only_hidden = torch.autograd.grad(chunked_softmax_ce(chunk)(hidden, targets, frozen) * 0.7, hidden)[0]
    torch.testing.assert_close(only_hidden, grads[0])


def test_sampled_softmax_with_logq_by_hand() -> None:
    items = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    probs = torch.tensor([0.5, 0.25, 0.25])  # q over items 1..3
    hidden = torch.tensor([[2.0, 0.0]])
    loss = sampled_softmax_ce(probs, negatives=4, generator=torch.Generator().manual_seed(0))
    drawn = torch.multinomial(probs, 4, replacement=True, generator=torch.Generator().manual_seed(0)) + 1
    target = torch.tensor([2])
    # logit(i) = h . e_i - log q_i; negatives equal to the target are dropped
    logit = {1: 2 - math.log(0.5), 2: 0 - math.log(0.25), 3: 2 - math.log(0.25)}
    negatives = [logit[i] for i in drawn.tolist() if i != 2]
    expected = -logit[2] + math.log(sum(math.exp(v) for v in [logit[2], *negatives]))
    assert loss(hidden, target, items).item() == pytest.approx(expected, rel=1e-5)


def test_sampled_softmax_approaches_full_softmax_with_many_negatives() -> None:
    g = torch.Generator().manual_seed(1)
    items = torch.randn(51, 8, generator=g)
    hidden = torch.randn(64, 8, generator=g)
    targets = torch.randint(1, 51, (64,), generator=g)
    probs = torch.rand(50, generator=g) + 0.1
    probs /= probs.sum()
    full = full_softmax_ce(hidden, targets, items).item()
    sampled = sampled_softmax_ce(probs, negatives=20000, generator=g)(hidden, targets, items).item()
    # importance sampling: sum_j exp(s_j - log q_j) over K draws ~ K * sum_i exp(s_i), so each row's loss is
    # its full-softmax loss + log K + log q(target)
    offset = 64 * math.log(20000) + probs[targets - 1].log().sum().item()
    assert sampled == pytest.approx(full + offset, abs=0.01 * abs(full))

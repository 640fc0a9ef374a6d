"""DuoRec: InfoNCE on hand-made vectors, same-target sampling, the contrastive term inside training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import TINY_EVAL, ranking_trainer, tiny_model_config, tiny_train_config
from seqrec.errors import ConfigError
from seqrec.models.base import TrainingSet
from seqrec.models.duorec import DuoRec, DuoRecConfig, SameTargetIndex
from seqrec.models.losses import info_nce


def test_info_nce_on_hand_made_vectors() -> None:
    first = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    second = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # z = [a0, a1, b0, b1]; row a0: sims to a1, b0, b1 = 0, 1, 0 -> positive b0
    rows = {  # (positive similarity, all non-self similarities)
        "a0": (1.0, [0.0, 1.0, 0.0]),
        "a1": (2.0, [0.0, 0.0, 2.0]),
        "b0": (1.0, [1.0, 0.0, 0.0]),
        "b1": (2.0, [0.0, 2.0, 0.0]),
    }
    expected = np.mean([math.log(sum(math.exp(s) for s in sims)) - pos for pos, sims in rows.values()])
    assert info_nce(first, second).item() == pytest.approx(expected, rel=1e-6)
    # temperature divides every similarity; cosine ignores the norm of b1
    expected_t = np.mean([math.log(sum(math.exp(s / 0.5) for s in sims)) - pos / 0.5 for pos, sims in rows.values()])
    assert info_nce(first, second, temperature=0.5).item() == pytest.approx(expected_t, rel=1e-6)
    cos = info_nce(first, second, similarity="cos").item()
    assert cos == pytest.approx(info_nce(first, torch.tensor([[1.0, 0.0], [0.0, 1.0]])).item(), rel=1e-6)


def _training_set(sequences: list[list[int]]) -> TrainingSet:
    tensor = torch.tensor(sequences)
    lengths = (tensor != 0).sum(1).numpy()
    return TrainingSet(torch.arange(len(tensor)), tensor, lengths, torch.Generator().manual_seed(0))


def test_same_target_positions_share_the_next_item_and_skip_the_anchor() -> None:
    # input part = first 4 columns; targets = columns 1..4
    train = _training_set([[0, 1, 2, 3, 4],
                           [0, 0, 5, 2, 3],
                           [6, 7, 2, 3, 9]])
    index = SameTargetIndex(train.sequences)
    inputs, targets = train.sequences[:, :-1], train.sequences[:, 1:]
    rows, cols = torch.nonzero((inputs != 0) & (targets != 0), as_tuple=True)
    for _ in range(20):
        other_rows, other_cols = index.sample(rows, cols, train.generator)
        assert torch.equal(targets[other_rows, other_cols], targets[rows, cols])
        unique = torch.tensor([int((targets == t).sum()) == 1 for t in targets[rows, cols]])
        same = (other_rows == rows) & (other_cols == cols)
        assert torch.equal(same, unique)  # the anchor itself only when its target occurs once
    # item 2 is the next item at (0, 1), (1, 2) and (2, 1): both others are drawn, never the anchor
    anchor_row, anchor_col = torch.tensor([0]), torch.tensor([1])
    drawn = {tuple(map(int, index.sample(anchor_row, anchor_col, train.generator))) for _ in range(60)}
    assert drawn == {(1, 2), (2, 1)}


def test_contrastive_term_equals_info_nce_of_anchor_and_same_target_states(tiny_data) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    config = tiny_model_config("duorec", dropout=0.0, contrast="su", lmd_sem=0.3, tau=0.7)
    model = DuoRec(config, tiny_data.num_items)
    trainer = ranking_trainer(model, tiny_data, tiny_train_config(batch_size=64), TINY_EVAL, progress=False)
    users, batch = next(trainer.batches())
    inputs, targets = batch[:, :-1], batch[:, 1:]
    hidden = model.encode(inputs)
    state = torch.random.get_rng_state()
    aux = trainer.terms[0]
    generator_state = aux.generator.get_state()
    value = aux.contrast(users, inputs, targets, hidden)
    # replay the same draws by hand
    aux.generator.set_state(generator_state)
    real = (inputs != 0) & (targets != 0)
    columns = (torch.rand(real.shape, generator=aux.generator) * real).argmax(1)
    rows = trainer.users.new_tensor([int(torch.nonzero(trainer.users == u)) for u in users])
    width = trainer.sequences.shape[1] - 1
    other_rows, other_cols = aux.same_target.sample(rows, columns + width - inputs.shape[1], aux.generator)
    anchors = hidden[torch.arange(len(users)), columns]
    positives = model.encode(trainer.sequences[other_rows, :-1])[torch.arange(len(users)), other_cols]
    torch.random.set_rng_state(state)
    assert torch.equal(targets[torch.arange(len(users)), columns],
                       trainer.sequences[other_rows, 1:][torch.arange(len(users)), other_cols])
    expected = 0.3 * info_nce(anchors, positives, temperature=0.7)
    assert value.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("contrast", ["us_x", "us", "su"])
def test_duorec_trains_and_records_the_contrastive_loss(tiny_data, contrast: str) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = DuoRec(tiny_model_config("duorec", contrast=contrast), tiny_data.num_items)
    result = ranking_trainer(model, tiny_data, tiny_train_config(epochs=2), TINY_EVAL, progress=False).fit()
    losses = [record["contrastive_loss"] for record in result.history]
    assert all(math.isfinite(v) and v > 0 for v in losses)
    assert np.isfinite(result.best_valid["NDCG@10"])


def test_contrast_none_is_plain_sasrec_training(tiny_data) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    model = DuoRec(tiny_model_config("duorec", contrast="none"), tiny_data.num_items)
    result = ranking_trainer(model, tiny_data, tiny_train_config(), TINY_EVAL, progress=False).fit()
    assert "contrastive_loss" not in result.history[0]


@pytest.mark.parametrize(("overrides", "key"), [({"contrast": "both"}, "model.contrast"),
                                                ({"sim": "l2"}, "model.sim"), ({"tau": 0.0}, "model.tau")])
def test_duorec_config_errors_name_the_key(overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        DuoRecConfig(**overrides)

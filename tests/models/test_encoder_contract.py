"""The encoder seam every registered model implements (docs/conventions.md, "The encoder seam").

Parametrised over `MODEL_REGISTRY`, so a newly registered model is held to the same contract.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from helpers import ranking_trainer, tiny_model_config, tiny_train_config
from seqrec.data.splits import SplitData
from seqrec.errors import ConfigError
from seqrec.experiment import model_config_from_dict
from seqrec.models import SASRecConfig, build_model
from seqrec.models.base import MODEL_REGISTRY, SequentialEncoder

N = 30  # items
HISTORIES = [[3, 7, 1, 30, 12, 5, 9, 2, 8, 4, 6, 11, 13], [5], [2, 9], [30, 29, 28, 1, 2], [17, 4, 4, 9]]


def left_padded(histories: list[list[int]], width: int) -> torch.Tensor:
    """The last `width` items of each history, left-padded with 0.  -> [B, width]"""
    out = torch.zeros(len(histories), width, dtype=torch.long)
    for row, h in enumerate(histories):
        tail = h[-width:]
        out[row, width - len(tail):] = torch.tensor(tail)
    return out


def build(name: str, seed: int = 0, **overrides: object) -> SequentialEncoder:
    torch.manual_seed(seed)
    return build_model(tiny_model_config(name, **overrides), N).eval()


@torch.no_grad()
def test_shapes_and_padding_column(model_name: str) -> None:
    model = build(model_name)
    items = left_padded(HISTORIES, model.max_len)
    b, length, d = len(HISTORIES), model.max_len, model.config.hidden
    assert model.encode(items).shape == (b, length, d)
    assert model.item_embeddings().shape == (N + 1, d)
    assert model.user_vector(items).shape == (b, d)
    scores = model.score(items)
    assert scores.shape == (b, N + 1)
    assert torch.isneginf(scores[:, 0]).all()
    assert torch.isfinite(scores[:, 1:]).all()


@torch.no_grad()
def test_score_is_user_vector_times_item_embeddings(model_name: str) -> None:
    model = build(model_name)
    items = left_padded(HISTORIES, model.max_len)
    expected = model.user_vector(items) @ model.item_embeddings().T
    torch.testing.assert_close(model.score(items)[:, 1:], expected[:, 1:], rtol=0, atol=1e-6)


@torch.no_grad()
def test_left_padding_and_trimming_do_not_change_scores(model_name: str) -> None:
    model = build(model_name)
    full = model.score(left_padded(HISTORIES, model.max_len))[:, 1:]
    for row, history in enumerate(HISTORIES):
        length = min(len(history), model.max_len)
        for width in sorted({length, min(length + 1, model.max_len), model.max_len}):
            alone = model.score(left_padded([history], width))[0, 1:]
            torch.testing.assert_close(alone, full[row], rtol=0, atol=1e-5,
                                       msg=f"history {row} at width {width} scores differently")


@torch.no_grad()
def test_padding_does_not_reach_real_positions(model_name: str) -> None:
    model = build(model_name)
    padded = left_padded(HISTORIES, model.max_len)
    hidden = model.encode(padded)
    for row, history in enumerate(HISTORIES):  # trimmed to its own length: the real positions are unchanged
        length = min(len(history), model.max_len)
        trimmed = model.encode(left_padded([history], length))[0]
        torch.testing.assert_close(trimmed, hidden[row, -length:], rtol=0, atol=1e-5)
    scores = model.score(padded)[:, 1:]
    noisy = copy.deepcopy(model)  # whatever the padding vectors hold, real positions do not see them
    with torch.no_grad():
        for module in noisy.modules():
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight[module.padding_idx] = torch.randn(module.embedding_dim) * 10
    real = padded != 0
    torch.testing.assert_close(noisy.encode(padded)[real], hidden[real], rtol=0, atol=1e-5)
    torch.testing.assert_close(noisy.score(padded)[:, 1:], scores, rtol=0, atol=1e-5)


@torch.no_grad()
def test_eval_mode_is_deterministic_and_batch_independent(model_name: str) -> None:
    model = build(model_name, dropout=0.5)
    items = left_padded(HISTORIES, model.max_len)
    first = model.score(items)
    assert torch.equal(first, model.score(items))
    for row in range(len(HISTORIES)):
        torch.testing.assert_close(model.score(items[row : row + 1])[0], first[row], rtol=0, atol=1e-5)
    assert torch.equal(first, build(model_name, dropout=0.5).score(items))  # same seed, same weights
    model.train()  # and dropout really is active outside eval mode
    assert not torch.equal(model.score(items)[:, 1:], first[:, 1:])


def _one_step(model: SequentialEncoder, data: SplitData) -> tuple[float, dict[str, torch.Tensor]]:
    trainer = ranking_trainer(model, data, tiny_train_config(batch_size=64), progress=False)
    users, batch = next(trainer.batches())  # all 60 users in one batch
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    model.train()
    loss = trainer.loss(users, batch)
    trainer.optimizer.zero_grad()
    loss.backward()
    trainer.optimizer.step()
    return loss.item(), before


def _assert_every_parameter_moved(model: SequentialEncoder, before: dict[str, torch.Tensor]) -> None:
    for name, p in model.named_parameters():
        assert p.requires_grad
        assert not torch.equal(p.detach(), before[name]), f"{name} did not change after one optimiser step"
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            row = module.weight[module.padding_idx].detach()
            assert torch.equal(row, torch.zeros_like(row)), f"{name}: the padding row was trained"


def test_one_optimiser_step_moves_every_parameter(model_name: str, tiny_data: SplitData) -> None:
    torch.manual_seed(0)
    model = build_model(tiny_model_config(model_name), tiny_data.num_items)
    loss, before = _one_step(model, tiny_data)
    # an untrained model is close to uniform over the 40 items, so the first loss is near log(40)
    assert abs(loss - torch.log(torch.tensor(40.0)).item()) < 0.5
    _assert_every_parameter_moved(model, before)


def test_recbole_style_sasrec_builds_and_trains(tiny_data: SplitData) -> None:
    config = SASRecConfig(max_len=10, hidden=16, dropout=0.1, norm="post", activation="gelu", inner=256,
                          loss_positions="last")
    torch.manual_seed(0)
    model = build_model(config, tiny_data.num_items)
    layer = model.stack.layers[0]
    assert not layer.norm_first
    assert layer.ffn[0].out_features == 256 and isinstance(layer.ffn[1], nn.GELU)
    assert isinstance(model.stack.final_norm, nn.Identity) and isinstance(model.embed.norm, nn.LayerNorm)
    loss, before = _one_step(model, tiny_data)
    assert abs(loss - torch.log(torch.tensor(40.0)).item()) < 0.5
    _assert_every_parameter_moved(model, before)


@pytest.mark.parametrize(("overrides", "key"), [
    ({"dropout": 1.5}, "model.dropout"),
    ({"dropout": -0.1}, "model.dropout"),
    ({"max_len": 1}, "model.max_len"),
    ({"hidden": 0}, "model.hidden"),
])
def test_shared_config_validation_names_the_key(model_name: str, overrides: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tiny_model_config(model_name, **overrides)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):  # the same check from a config file
        model_config_from_dict({"name": model_name, **overrides})


@pytest.mark.parametrize(("name", "overrides", "key"), [
    ("sasrec", {"hidden": 16, "heads": 3}, "model.heads"),
    ("bert4rec", {"hidden": 10, "heads": 4}, "model.heads"),
    ("sasrec", {"blocks": 0}, "model.blocks"),
    ("sasrec", {"norm": "middle"}, "model.norm"),
    ("sasrec", {"activation": "tanh"}, "model.activation"),
    ("sasrec", {"loss_positions": "first"}, "model.loss_positions"),
    ("bert4rec", {"mask_prob": 1.5}, "model.mask_prob"),
    ("gru4rec", {"layers": 0}, "model.layers"),
])
def test_model_specific_config_validation_names_the_key(name: str, overrides: dict, key: str) -> None:
    assert name in MODEL_REGISTRY
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        model_config_from_dict({"name": name, **overrides})

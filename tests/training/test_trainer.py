"""The Trainer: history records, best-checkpoint restore, early stopping, determinism, batching, validation subset."""

from __future__ import annotations

import copy
import math
from collections import Counter

import numpy as np
import pytest
import torch

from helpers import TINY_EVAL, ranking_trainer, tiny_model_config, tiny_train_config
from seqrec.data.splits import SplitData
from seqrec.errors import ConfigError
from seqrec.evaluation.evaluate import evaluate
from seqrec.models import build_model
from seqrec.training.config import EvalConfig
from seqrec.training.trainer import Trainer, seed_everything

TIMING = ("train_seconds", "elapsed_seconds")


def make_trainer(data: SplitData, model: str = "sasrec", seed: int = 0, **train) -> Trainer:
    seed_everything(seed)
    encoder = build_model(tiny_model_config(model, blocks=1) if model != "gru4rec" else tiny_model_config(model),
                          data.num_items)
    return ranking_trainer(encoder, data, tiny_train_config(seed=seed, **train), TINY_EVAL, progress=False)


def scripted(trainer: Trainer, scores: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace validation with a fixed sequence of NDCG@10 values."""
    values = iter(scores)
    monkeypatch.setattr(trainer, "validate", lambda model: {"NDCG@10": next(values)})


def test_history_has_one_record_per_epoch(tiny_data: SplitData) -> None:
    result = make_trainer(tiny_data, epochs=3).fit()
    assert [r["epoch"] for r in result.history] == [1, 2, 3]
    for record in result.history:
        assert math.isfinite(record["train_loss"]) and 0 < record["train_loss"] < 2 * math.log(40)
        assert 0.0 <= record["valid_NDCG@10"] <= 1.0
        assert {"valid_HR@5", "valid_MRR@10", *TIMING} <= set(record)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_returned_model_is_the_best_validation_checkpoint(tiny_data: SplitData) -> None:
    result = make_trainer(tiny_data, epochs=3).fit()
    scores = [r["valid_NDCG@10"] for r in result.history]
    assert result.best_epoch == int(np.argmax(scores)) + 1
    assert result.best_valid["NDCG@10"] == max(scores)
    again = evaluate(result.model, tiny_data.valid, ks=TINY_EVAL.ks, metrics="accuracy")
    assert again["NDCG@10"] == pytest.approx(max(scores), abs=1e-7)


def test_best_checkpoint_is_restored_when_later_epochs_are_worse(tiny_data: SplitData,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer(tiny_data, epochs=3)
    scripted(trainer, [0.3, 0.5, 0.2], monkeypatch)
    states = []
    trainer.add_callback(lambda record: states.append(copy.deepcopy(trainer.model.state_dict())))
    result = trainer.fit()
    assert result.best_epoch == 2 and result.best_valid == {"NDCG@10": 0.5}
    final = result.model.state_dict()
    assert all(torch.equal(final[k], states[1][k]) for k in final)
    assert not all(torch.equal(states[2][k], states[1][k]) for k in final)  # epoch 3 did change the weights


@pytest.mark.parametrize(("scores", "patience", "epochs_run", "best"), [
    ([0.1, 0.2, 0.15, 0.1, 0.3, 0.4], 2, 4, 2),  # two evaluations without improvement after epoch 2
    ([0.1, 0.2, 0.2, 0.3, 0.1, 0.1], 2, 6, 4),  # a tie is not an improvement; epoch 4 resets the count
    ([0.5, 0.4, 0.3, 0.2, 0.1, 0.0], 1, 2, 1),
    ([0.5, 0.4, 0.3, 0.2, 0.1, 0.0], 0, 6, 1),  # patience 0 never stops early
])
def test_early_stopping_after_patience_bad_evaluations(tiny_data: SplitData, monkeypatch: pytest.MonkeyPatch,
                                                       scores: list[float], patience: int, epochs_run: int,
                                                       best: int) -> None:
    trainer = make_trainer(tiny_data, epochs=6, patience=patience, warmup=0)
    scripted(trainer, scores, monkeypatch)
    result = trainer.fit()
    assert len(result.history) == epochs_run
    assert result.best_epoch == best
    assert [r["valid_NDCG@10"] for r in result.history] == scores[:epochs_run]


def test_by_default_early_stopping_waits_out_twenty_epochs(tiny_data: SplitData,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer(tiny_data, epochs=30, patience=1)  # validation only falls after epoch 1
    scripted(trainer, [0.5 - 0.01 * e for e in range(30)], monkeypatch)
    result = trainer.fit()
    assert trainer.config.warmup == 20
    assert len(result.history) == 21 and result.best_epoch == 1


def test_eval_every_validates_every_nth_and_the_last_epoch(tiny_data: SplitData,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = make_trainer(tiny_data, epochs=5, eval_every=2)
    scripted(trainer, [0.1, 0.2, 0.3], monkeypatch)
    result = trainer.fit()
    assert ["valid_NDCG@10" in r for r in result.history] == [False, True, False, True, True]
    assert result.best_epoch == 5


def test_same_seed_same_history(tiny_data: SplitData) -> None:
    def run(seed: int) -> list[dict[str, float]]:
        history = make_trainer(tiny_data, seed=seed, epochs=2).fit().history
        return [{k: v for k, v in r.items() if k not in TIMING} for r in history]

    first = run(0)
    assert run(0) == first
    assert run(1) != first


@pytest.mark.parametrize("length_buckets", [False, True])
def test_batches_cover_every_user_once_and_are_trimmed(tiny_data: SplitData, length_buckets: bool) -> None:
    trainer = make_trainer(tiny_data, batch_size=8, length_buckets=length_buckets)
    expected = Counter(tuple(tiny_data.train[u][-11:]) for u in range(tiny_data.num_users)
                       if len(tiny_data.train[u]) >= 2)  # max_len + 1 items per training row
    for epoch in range(2):
        batches = [b for _, b in trainer.batches()]
        seen = Counter(tuple(int(i) for i in row if i) for b in batches for row in b)
        assert seen == expected, f"epoch {epoch}"
        for b in batches:
            assert b.shape[0] <= 8
            assert b.shape[1] == max(2, int((b != 0).sum(1).max()))  # trimmed to the longest row
    assert sum(len(b) for b in batches) == len(trainer.lengths)


def test_length_buckets_need_less_padding(tiny_data: SplitData) -> None:
    def cells(length_buckets: bool) -> int:
        trainer = make_trainer(tiny_data, batch_size=8, length_buckets=length_buckets)
        return sum(b.numel() for _ in range(3) for _, b in trainer.batches())

    assert cells(True) < 0.9 * cells(False)


def test_valid_users_subsets_validation(tiny_data: SplitData) -> None:
    full = tiny_data.valid
    trainer = make_trainer(tiny_data, valid_users=20)
    sub = trainer.validate.split
    assert len(sub) == 20
    rows = np.searchsorted(full.users, sub.users)
    assert np.array_equal(full.users[rows], sub.users) and np.all(np.diff(sub.users) > 0)
    assert np.array_equal(sub.targets, full.targets[rows])
    for i, r in enumerate(rows):
        assert np.array_equal(sub.histories[i], full.histories[r])
    assert np.array_equal(make_trainer(tiny_data, valid_users=20).validate.split.users, sub.users)  # fixed by the seed
    assert make_trainer(tiny_data, valid_users=1000).validate.split is full
    record = trainer.fit().history[0]
    assert record["valid_NDCG@10"] == pytest.approx(
        evaluate(trainer.model, sub, ks=TINY_EVAL.ks, metrics="accuracy")["NDCG@10"], abs=1e-7)


def test_monitor_must_be_a_validation_metric(tiny_data: SplitData) -> None:
    encoder = build_model(tiny_model_config("sasrec"), tiny_data.num_items)
    for bad in ("ndcg", "coverage@10", "NDCG@0", "NDCG@x"):
        with pytest.raises(ConfigError, match=r"train\.monitor must be .*HR@k, MRR@k, NDCG@k"):
            ranking_trainer(encoder, tiny_data, tiny_train_config(monitor=bad), EvalConfig(ks=(5, 10)), progress=False)
    ranking_trainer(encoder, tiny_data, tiny_train_config(monitor="HR@5"), EvalConfig(ks=(5, 10)), progress=False)


def test_the_monitor_is_validated_even_outside_eval_ks(tiny_data: SplitData) -> None:
    """eval.ks [1, 3] with the default monitor NDCG@10 works: validation also computes NDCG@10."""
    encoder = build_model(tiny_model_config("sasrec"), tiny_data.num_items)
    trainer = ranking_trainer(encoder, tiny_data, tiny_train_config(epochs=1), EvalConfig(ks=(1, 3)), progress=False)
    record = trainer.fit().history[0]
    assert {"valid_NDCG@1", "valid_NDCG@3", "valid_NDCG@10"} <= set(record)


def test_chunked_loss_follows_the_full_softmax_trajectory(tiny_data: SplitData) -> None:
    def trained(**train: object) -> dict[str, torch.Tensor]:
        seed_everything(0)
        model = build_model(tiny_model_config("sasrec", blocks=1, dropout=0.0), tiny_data.num_items)
        ranking_trainer(model, tiny_data, tiny_train_config(epochs=2, **train), TINY_EVAL, progress=False).fit()
        return model.state_dict()

    full, chunked = trained(loss="full"), trained(loss="chunked", loss_chunk=7)
    for name in full:
        torch.testing.assert_close(chunked[name], full[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("sampler", ["popularity", "uniform"])
def test_sampled_softmax_training_learns(tiny_data: SplitData, sampler: str) -> None:
    trainer = make_trainer(tiny_data, epochs=8, loss="sampled", negatives=16, negative_sampler=sampler)
    before = trainer.validate(trainer.model)["NDCG@10"]
    result = trainer.fit()
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_valid["NDCG@10"] > before + 0.05


def test_bad_loss_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="train.loss"):
        tiny_train_config(loss="fused")
    with pytest.raises(ConfigError, match="loss_chunk"):
        tiny_train_config(loss="chunked", loss_chunk=0)


@pytest.mark.parametrize(("model", "loss"), [("sasrec", "bce"), ("sasrec", "bpr"), ("sasrec", "gbce"),
                                             ("gru4rec", "bpr"), ("bert4rec", "bce")])
def test_negative_sampling_losses_train(tiny_data: SplitData, model: str, loss: str) -> None:
    negatives = {"bce": 4, "bpr": 1, "gbce": 16}[loss]
    trainer = make_trainer(tiny_data, model, epochs=8, loss=loss, negatives=negatives)
    before = trainer.validate(trainer.model)["NDCG@10"]
    result = trainer.fit()
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.best_valid["NDCG@10"] > before + 0.05


def test_gbce_needs_fewer_negatives_than_items(tiny_data: SplitData) -> None:
    with pytest.raises(ConfigError, match="below"):
        make_trainer(tiny_data, loss="gbce", negatives=tiny_data.num_items)

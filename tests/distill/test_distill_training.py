"""Profile distillation inside the trainer: the two phases, parity at alpha = 0, run directories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import seqrec
from helpers import TINY_EVAL, TINY_SYNTHETIC, ranking_trainer, tiny_model_config, tiny_train_config
from seqrec.api import profile_guide
from seqrec.data.splits import SplitData
from seqrec.distill import DistillConfig, write_profile_json
from seqrec.experiment import ExperimentConfig
from seqrec.models.base import build_model
from seqrec.training.trainer import Trainer


def _profiles(data: SplitData, path: Path, share: float = 0.7, dim: int = 8) -> Path:
    rng = np.random.default_rng(0)
    users = [u for u in data.user_map.external if rng.random() < share]
    return write_profile_json(path, {u: rng.normal(size=dim) for u in users}, overwrite=True)


def _trainer(data: SplitData, distill: DistillConfig | None, model: str = "sasrec", epochs: int = 2,
             callbacks: tuple = ()) -> Trainer:
    torch.manual_seed(0)
    encoder = build_model(tiny_model_config(model), data.num_items)
    guide = profile_guide(distill, encoder, data) if distill else None
    return ranking_trainer(encoder, data, tiny_train_config(epochs=epochs), TINY_EVAL, progress=False,
                           terms=[guide] if guide else [], callbacks=callbacks)


@pytest.mark.parametrize("model", ["sasrec", "bert4rec"])
def test_alpha_zero_follows_the_plain_trajectory(tiny_data: SplitData, tmp_path: Path, model: str) -> None:
    plain = _trainer(tiny_data, None, model).fit()
    config = DistillConfig(profiles=[str(_profiles(tiny_data, tmp_path / "p.json"))], alpha=0.0, fine_tune_epoch=9)
    distilled = _trainer(tiny_data, config, model).fit()
    for (name, a), b in zip(plain.model.state_dict().items(), distilled.model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
    assert [h["train_loss"] for h in plain.history] == pytest.approx([h["train_loss"] for h in distilled.history])
    assert "guide_loss" in distilled.history[0]


@pytest.mark.parametrize(("model", "layer"), [("sasrec", 0), ("bert4rec", -1), ("gru4rec", -1)])
def test_phases_switch_at_the_configured_epoch(tiny_data: SplitData, tmp_path: Path, model: str,
                                               layer: int) -> None:
    config = DistillConfig(profiles=[str(_profiles(tiny_data, tmp_path / "p.json"))], alpha=0.8, layer=layer,
                           fine_tune_epoch=3)
    weights: list[torch.Tensor] = []
    trainer = _trainer(tiny_data, config, model, epochs=4)
    trainer.add_callback(lambda _: weights.append(trainer.terms[0].down.weight.detach().clone()))
    result = trainer.fit()
    assert ["guide_loss" in h for h in result.history] == [True, True, False, False]
    assert not torch.equal(weights[0], weights[1])  # the projection learns while distilling
    assert torch.equal(weights[1], weights[2]) and torch.equal(weights[2], weights[3])  # and rests afterwards
    assert not trainer.active  # the guide is off


def test_distillation_lowers_the_reconstruction_error(tiny_data: SplitData, tmp_path: Path) -> None:
    config = DistillConfig(profiles=[str(_profiles(tiny_data, tmp_path / "p.json"))], alpha=0.9,
                           fine_tune_epoch=20, pooling="exponential", loss="cosine")
    history = _trainer(tiny_data, config, epochs=6).fit().history
    assert history[-1]["guide_loss"] < 0.8 * history[0]["guide_loss"]


def test_run_directory_keeps_the_settings_and_serves_without_profiles(tmp_path: Path) -> None:
    data = seqrec.datasets.load("synthetic", synthetic=TINY_SYNTHETIC)
    profiles = _profiles(data, tmp_path / "p.json")
    config = ExperimentConfig.from_dict({
        "data": {"synthetic": TINY_SYNTHETIC},
        "model": {"name": "sasrec", "max_len": 10, "hidden": 16},
        "train": {"epochs": 2, "device": "cpu", "batch_size": 32},
        "eval": {"ks": [5, 10]},
        "distill": {"profiles": str(profiles), "fine_tune_epoch": 2, "balance": True},
    })
    run = seqrec.api.run_experiment(config, tmp_path / "runs", progress=False)
    assert run.metrics["distill"]["profile_dim"] == 8
    assert 0 < run.metrics["distill"]["profiled_train_users"] < run.metrics["distill"]["train_users"]
    profiles.unlink()  # serving never needs the profiles
    loaded = seqrec.load(run.path)
    assert loaded.config.distill.profiles == [str(profiles)] and loaded.config.distill.balance
    items = torch.tensor([[0, 0, 3, 4, 5]])
    torch.testing.assert_close(loaded.recommender.model.score(items), run.recommender.model.score(items))

"""A search over SAE settings: trials are SAE runs scored on validation FVU (or reconstruction NDCG@10), the best
settings retrain to the same FVU, and a study is tied to its base run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import seqrec
from helpers import TINY_SYNTHETIC
from seqrec.errors import ConfigError
from seqrec.experiment import ExperimentConfig
from seqrec.search.sae_search import run_sae_search
from seqrec.steering import SAEConfig, load_sae_run, train_sae

optuna = pytest.importorskip("optuna")

BASE = {
    "name": "base",
    "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
    "model": {"name": "sasrec", "max_len": 10, "hidden": 16, "blocks": 1},
    "train": {"epochs": 2, "batch_size": 32, "patience": 0, "device": "cpu", "seed": 0},
    "eval": {"ks": [5, 10]},
}
FIXED = {"epochs": 3, "max_vectors": 2000, "valid_vectors": 50}
SPACE = {"k": [4, 8], "lr": {"low": 1e-4, "high": 1e-2, "log": True}}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sae-search")
    return seqrec.run_experiment(ExperimentConfig.from_dict(BASE), folder, progress=False).path  # type: ignore


def search(run: Path, out: Path, trials: int = 3, **options: object):
    return run_sae_search(run, SPACE, trials, overrides=FIXED, output_dir=out, progress=False, seed=0,
                          enqueue=[{"k": 4, "lr": 1e-4}, {"k": 8, "lr": 1e-2}], **options)


def test_sae_trials_are_sae_runs_scored_on_validation_fvu(base_run: Path, tmp_path: Path) -> None:
    outcome = search(base_run, tmp_path)
    folder = tmp_path / "sae-popsteer-search"
    trials = outcome.study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 and outcome.study.direction.name == "MINIMIZE"
    for trial in trials:
        sae_run = load_sae_run(folder / trial.user_attrs["run"])
        assert sae_run.config.k == trial.params["k"] and sae_run.config.lr == trial.params["lr"]
        assert trial.value == sae_run.metrics["valid_fvu"] == trial.user_attrs["valid"]["fvu"]
        assert trial.user_attrs["test"]["NDCG@10"] == sae_run.metrics["test_sae_NDCG@10"]
    assert outcome.best.value == min(t.value for t in trials)

    best = yaml.safe_load((folder / "best.yaml").read_text())
    assert best == {"preset": "popsteer", **FIXED, **outcome.best.params}
    assert "# train it with: seqrec sae train " in (folder / "best.yaml").read_text()
    again = train_sae(base_run, SAEConfig(**best), output_dir=tmp_path / "again", progress=False)
    assert again.metrics["valid_fvu"] == pytest.approx(outcome.best.value, abs=1e-6)


def test_reconstruction_ndcg_is_maximised(base_run: Path, tmp_path: Path) -> None:
    outcome = search(base_run, tmp_path, trials=2, metric="NDCG@10")
    assert outcome.study.direction.name == "MAXIMIZE"
    assert [t.value for t in outcome.study.get_trials()] == [t.user_attrs["valid"]["NDCG@10"]
                                                           for t in outcome.study.get_trials()]


def test_sae_search_mistakes(base_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="SAE search metric must be one of fvu, NDCG@10, HR@10"):
        search(base_run, tmp_path, metric="loss")
    with pytest.raises(ConfigError, match="unknown config key hidden; valid keys: "):
        run_sae_search(base_run, {"hidden": [8, 16]}, 1, output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"space: lr = -0.5 is not a valid setting: .*lr > 0"):
        run_sae_search(base_run, {"lr": {"low": -0.5, "high": 0.1}}, 1, output_dir=tmp_path)
    search(base_run, tmp_path, trials=1)
    other = seqrec.run_experiment(ExperimentConfig.from_dict({**BASE, "model": {**BASE["model"], "blocks": 2}}),
                                  tmp_path / "other", progress=False).path
    with pytest.raises(ConfigError, match=r"created for another search \(base_run.model.blocks: 1 there, 2 here\)"):
        search(other, tmp_path, trials=1)

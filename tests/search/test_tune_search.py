"""A search over RecFTT's controller settings: trials are tuned runs, the value is the targets' validation NDCG@10
gain rule of `seqrec sae tune`, and the overall NDCG@10 drop is a constraint the best trial always meets."""

from __future__ import annotations

from pathlib import Path

import pytest

import seqrec
from seqrec.errors import ConfigError
from seqrec.experiment import ExperimentConfig
from seqrec.search.results import feasible
from seqrec.search.tune_search import DROP, run_tune_search, target_score
from seqrec.steering import SAEConfig, train_sae
from seqrec.steering.tuned_run import load_tuned_run
from seqrec.steering.tuning import TuneConfig

optuna = pytest.importorskip("optuna")

BASE = {
    "name": "base",
    "data": {"name": "synthetic", "synthetic": {"num_users": 300, "num_items": 80, "mean_seq_len": 12,
                                                "max_seq_len": 30, "zipf_exponent": 1.2}},
    "model": {"name": "sasrec", "max_len": 20, "hidden": 16, "blocks": 1, "dropout": 0.1, "positions": "right"},
    "train": {"epochs": 8, "batch_size": 64, "lr": 5e-3, "grad_clip": 1.0, "patience": 0, "device": "cpu",
              "seed": 0},
    "eval": {"ks": [10]},
}
SPACE = {"weight": {"low": 0.01, "high": 5.0, "log": True}, "latents": [3, 8]}


@pytest.fixture(scope="module")
def sae_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = seqrec.run_experiment(ExperimentConfig.from_dict(BASE), tmp_path_factory.mktemp("tune"), progress=False)
    sae = SAEConfig(k=4, scale=4, epochs=6, batch_size=128, lr=3e-3, max_vectors=3000, valid_vectors=200)
    return train_sae(base, sae, progress=False).path  # type: ignore[return-value]


def test_tuning_trials_score_the_target_rule(sae_dir: Path, tmp_path: Path) -> None:
    outcome = run_tune_search(sae_dir, SPACE, 2, targets=["Comedy"], suppress=["Drama"], overrides={"epochs": 2},
                              output_dir=tmp_path, progress=False, seed=0)
    assert outcome.folder == tmp_path / "tune-Comedy-minus-Drama-search"
    for trial in outcome.study.get_trials():
        run = load_tuned_run(outcome.folder / trial.user_attrs["run"])
        assert (run.config.weight, run.config.latents) == (trial.params["weight"], trial.params["latents"])
        tuned = run.metrics["valid"]["tuned"]
        assert trial.value == target_score(tuned, run.config) == tuned["Comedy_NDCG@10"] - tuned["Drama_NDCG@10"]
        drop = 1 - tuned["NDCG@10"] / run.metrics["valid"]["base"]["NDCG@10"]
        assert trial.constraints == {DROP: pytest.approx(drop - run.config.max_drop)}
    assert "seqrec sae tune " in (outcome.folder / "best.yaml").read_text()


def test_the_best_trial_keeps_overall_accuracy(sae_dir: Path, tmp_path: Path) -> None:
    """Epochs chosen by the target alone and no drop allowed: a strong controller (planted first) raises the
    target most but loses overall NDCG@10, so it is recorded and never the best."""
    outcome = run_tune_search(sae_dir, SPACE, 2, targets=["Comedy"], output_dir=tmp_path, progress=False,
                              overrides={"epochs": 4, "lr": 0.3, "select": "Comedy_NDCG@10", "max_drop": 0.0},
                              enqueue=[{"weight": 5.0, "latents": 8}, {"weight": 0.1, "latents": 3}])
    strong, mild = outcome.study.get_trials()
    assert strong.user_attrs["overall_drop"] > 0 and not feasible(strong) and strong.user_attrs["feasible"] is False
    assert feasible(mild) and strong.value > mild.value
    assert outcome.best.number == mild.number


def test_tuning_search_mistakes(sae_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one attribute"):
        run_tune_search(sae_dir, SPACE, 1, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown config key targets"):
        run_tune_search(sae_dir, {"targets": ["Comedy", "Drama"]}, 1, targets=["Comedy"], output_dir=tmp_path)
    with pytest.raises(ConfigError, match=r"max_drop = 1.5 is not a valid setting: tune.max_drop must be in \[0, 1\)"):
        run_tune_search(sae_dir, {"max_drop": {"low": 0.0, "high": 1.5}}, 1, targets=["Comedy"], output_dir=tmp_path)
    with pytest.raises(seqrec.SeqrecError, match="unknown item attribute 'Western'"):
        run_tune_search(sae_dir, SPACE, 1, targets=["Western"], output_dir=tmp_path)
    assert TuneConfig(targets=["Comedy"]).select == "target"  # the rule the search's objective follows


def test_auto_tune_tries_every_grid_point_and_chooses_on_validation(sae_dir: Path, tmp_path: Path) -> None:
    from seqrec.search.tune_search import auto_tune

    grid = {"weight": (0.1, 2.0), "latents": (3, 8)}
    outcome = auto_tune(sae_dir, ["Comedy"], grid=grid, overrides={"epochs": 2}, output_dir=tmp_path,
                        progress=False)
    trials = outcome.study.get_trials()
    assert outcome.folder == tmp_path / "tune-Comedy-auto"  # not the folder of a `search tune` study
    assert sorted((t.params["weight"], t.params["latents"]) for t in trials) == [(0.1, 3), (0.1, 8), (2.0, 3),
                                                                                  (2.0, 8)]
    ok = [t for t in trials if feasible(t)]
    assert outcome.best is not None and outcome.best.value == max(t.value for t in ok)
    chosen = load_tuned_run(outcome.folder / outcome.best.user_attrs["run"])
    assert not chosen.config.use_choose  # x varies, so the latents come from the sweep, not `sae choose` files
    assert chosen.metrics["latent_sources"]["Comedy"].startswith("top ")
    again = auto_tune(sae_dir, ["Comedy"], grid=grid, overrides={"epochs": 2}, output_dir=tmp_path, progress=False)
    assert len(again.study.get_trials()) == 4  # a rerun resumes the same grid, nothing is tried twice
    with pytest.raises(ConfigError, match="at least one value"):
        auto_tune(sae_dir, ["Comedy"], grid={"weight": ()}, output_dir=tmp_path)
    with pytest.raises(ConfigError, match="latents: chosen by the grid"):
        auto_tune(sae_dir, ["Comedy"], grid=grid, overrides={"latents": 5}, output_dir=tmp_path)

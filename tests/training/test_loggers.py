"""Experiment loggers: history.jsonl kept live, TensorBoard event files and an MLflow run from a real training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import TINY_SYNTHETIC
from seqrec.errors import ConfigError
from seqrec.training.config import TrainConfig
from seqrec.training.loggers import JsonlLogger, check_loggers, flatten
from seqrec.training.loop import Loop


def test_unknown_or_repeated_loggers_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="train.loggers"):
        TrainConfig(loggers=["wandb"])
    with pytest.raises(ConfigError, match="distinct"):
        TrainConfig(loggers=["mlflow", "mlflow"])


def test_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"seqrec\[track\]"):
        check_loggers(["tensorboard"])


def test_jsonl_history_is_written_as_epochs_end_and_rewritten_on_resume(tmp_path: Path) -> None:
    loop = Loop(3, [JsonlLogger(tmp_path)])
    lines: list[int] = []

    def run_epoch(epoch: int) -> dict:
        file = tmp_path / "history.jsonl"
        lines.append(len(file.read_text().splitlines()))
        return {"epoch": epoch, "train_loss": 1.0 / epoch}

    loop.run(run_epoch)
    assert lines == [0, 1, 2]
    resumed = Loop(4, [JsonlLogger(tmp_path)])
    resumed.load_state_dict({**loop.state_dict(), "history": loop.history[:2], "epoch": 2})
    resumed.run(lambda epoch: {"epoch": epoch, "train_loss": 0.0})
    records = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]


def test_flatten_gives_dotted_keys() -> None:
    assert flatten({"train": {"lr": 0.1, "loggers": ["mlflow"]}, "name": "x"}) == {
        "train.lr": 0.1, "train.loggers": '["mlflow"]', "name": "x"}


@pytest.mark.slow
def test_a_training_run_writes_tensorboard_events_and_an_mlflow_run(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from seqrec.api import run_experiment
    from seqrec.experiment import ExperimentConfig

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = ExperimentConfig.from_dict({
        "name": "tracked", "data": {"name": "synthetic", "synthetic": TINY_SYNTHETIC},
        "model": {"name": "sasrec", "hidden": 16, "blocks": 1, "max_len": 10},
        "train": {"epochs": 2, "batch_size": 32, "loggers": ["tensorboard", "mlflow"], "device": "cpu"},
        "eval": {"ks": [5, 10]},
    })
    run = run_experiment(config, tmp_path / "runs", progress=False)
    assert run.path is not None
    events = list((run.path / "tensorboard").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run.path / "tensorboard"))
    accumulator.Reload()
    assert [e.step for e in accumulator.Scalars("train/loss")] == [1, 2]
    assert "valid/NDCG@10" in accumulator.Tags()["scalars"]

    client = MlflowClient(tracking_uri=(tmp_path / "runs" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("seqrec")
    (mlflow_run,) = client.search_runs([experiment.experiment_id])
    assert mlflow_run.info.status == "FINISHED" and mlflow_run.info.run_name == "tracked"
    assert mlflow_run.data.params["train.epochs"] == "2"
    losses = client.get_metric_history(mlflow_run.info.run_id, "train_loss")
    assert [m.step for m in losses] == [1, 2]
    assert losses[-1].value == pytest.approx(run.history[-1]["train_loss"])
    assert "valid_NDCG_at_10" in mlflow_run.data.metrics

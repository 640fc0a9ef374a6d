"""Experiment loggers as loop callbacks: the run's history.jsonl always; TensorBoard and MLflow on request.

`train.loggers: [tensorboard, mlflow]` adds the optional ones (the `track` extra installs both). TensorBoard
events go to `<run>/tensorboard/`; MLflow logs to `$MLFLOW_TRACKING_URI`, else to a local file store
`mlruns/` beside the run folders (a server or database URI scales better), one MLflow run per seqrec run (its
parameters are the flattened config).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from seqrec.config import flatten as dotted_keys
from seqrec.errors import ConfigError, suggest
from seqrec.files import dumps_json, write_text_atomically
from seqrec.training.loop import Callback, Loop, Record

HISTORY_FILE = "history.jsonl"


def _numbers(record: Record) -> dict[str, float]:
    """The finite numeric values of a record, except its epoch."""
    return {k: float(v) for k, v in record.items()
            if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


class JsonlLogger(Callback):
    """Keeps `<run>/history.jsonl` current: one JSON line per epoch, written as the epoch ends."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / HISTORY_FILE

    def on_fit_start(self, loop: Loop) -> None:  # a resumed loop rewrites the epochs it already has
        write_text_atomically(self.file, "".join(dumps_json(r, str(self.file), None) + "\n" for r in loop.history))

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        with open(self.file, "a", encoding="utf-8") as f:
            f.write(dumps_json(record, str(self.file), None) + "\n")


class TensorBoardLogger(Callback):
    """Every number of each epoch as a scalar (`train/…`, `valid/…`), step = epoch."""

    def __init__(self, folder: Path, params: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder / "tensorboard"))
        self.writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in params.items()))

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        for key, value in _numbers(record).items():
            group, _, name = key.partition("_") if key.startswith(("train_", "valid_")) else ("", "", key)
            self.writer.add_scalar(f"{group}/{name}" if group else key, value, global_step=record["epoch"])
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowLogger(Callback):
    """One MLflow run: the config as parameters, every epoch's numbers as metrics (step = epoch)."""

    def __init__(self, folder: Path, params: Mapping[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:  # the local file store, which MLflow 3 keeps only on request
            uri = (folder.resolve().parent / "mlruns").as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        found = self.client.get_experiment_by_name("seqrec")
        experiment = found.experiment_id if found else self.client.create_experiment("seqrec")
        self.run_id = self.client.create_run(experiment, run_name=folder.name,
                                             tags={"seqrec.run_dir": str(folder.resolve())}).info.run_id
        for key, value in params.items():
            self.client.log_param(self.run_id, key, str(value)[:500])
        self.status = "KILLED"

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        for key, value in _numbers(record).items():  # MLflow names allow no "@"
            self.client.log_metric(self.run_id, key.replace("@", "_at_"), value, step=int(record["epoch"]))

    def on_fit_end(self, loop: Loop) -> None:
        self.status = "FINISHED"

    def close(self) -> None:
        self.client.set_terminated(self.run_id, status=self.status)


LoggerFactory = Callable[[Path, Mapping[str, Any]], Callback]
LOGGERS: dict[str, tuple[str, LoggerFactory]] = {  # name -> (module it needs, factory)
    "tensorboard": ("tensorboard", TensorBoardLogger),
    "mlflow": ("mlflow", MLflowLogger),
}


def check_loggers(names: list[str]) -> None:
    """Known names whose packages are installed, or a `ConfigError` with the fix."""
    import importlib.util

    for name in names:
        if name not in LOGGERS:
            raise ConfigError(f"train.loggers: unknown logger {name!r}; use {suggest(list(LOGGERS))}")
        module = LOGGERS[name][0]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"train.loggers: {name} needs the {module} package; pip install 'seqrec[track]'")


def build_loggers(names: list[str], folder: Path, config: Mapping[str, Any]) -> list[Callback]:
    """The history.jsonl logger and the requested ones, for the run in `folder`; config: the run's nested config."""
    check_loggers(names)
    params = flatten(config)
    return [JsonlLogger(folder), *(LOGGERS[name][1](folder, params) for name in names)]


def flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    """{"train": {"lr": 0.001}} -> {"train.lr": 0.001}; lists as JSON (logger parameters are scalars)."""
    return {k: json.dumps(v) if isinstance(v, list | tuple) else v for k, v in dotted_keys(config).items()}

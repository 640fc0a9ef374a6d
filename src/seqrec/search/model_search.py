"""Trials of a model search: the experiment config with the trial's values, trained as a run in the study folder,
scored on a validation metric (never a test metric) and pruned from its per-epoch validation."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrec.config import to_dict
from seqrec.data.fingerprint import data_fingerprint, short
from seqrec.data.registry import load as load_data
from seqrec.data.splits import SplitData
from seqrec.distill.config import DistillConfig
from seqrec.errors import ConfigError, DataError
from seqrec.evaluation.metrics import ACCURACY
from seqrec.experiment import ExperimentConfig
from seqrec.files import host_name
from seqrec.retrieval.config import RetrievalConfig
from seqrec.search.backend import optuna_module
from seqrec.search.space import SearchSpace, known_keys, with_values
from seqrec.search.study import StudySpec
from seqrec.search.trials import PruneOnValidation, train_trial, trial_name, write_pruned_record

if TYPE_CHECKING:
    from optuna.trial import Trial

MAXIMIZED = (*ACCURACY, "coverage", "lt_coverage", "deep_lt_coverage")
MINIMIZED = ("gini", "arp")
LOCAL_KEYS = ("name", "data.data_dir", "data.path", "data.items.path", "train.device", "train.threads",
              "train.loggers", "train.checkpoint_every", "train.dist_timeout")  # may differ between machines
FINGERPRINT = "data_fingerprint"  # study attribute: the data the trials train on (when the space keeps it fixed)


def experiment_keys(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Every key a model search may vary, with its value in `raw` (distillation and retrieval keys included)."""
    full = ExperimentConfig.from_dict(dict(raw)).to_dict()
    full.setdefault("distill", to_dict(DistillConfig()))
    full.setdefault("retrieval", to_dict(RetrievalConfig()))
    return known_keys(full)


def metric_direction(metric: str) -> str:
    """`maximize` for accuracy and coverage metrics, `minimize` for Gini and ARP."""
    name = metric.partition("@")[0]
    if name in MAXIMIZED:
        return "maximize"
    if name in MINIMIZED:
        return "minimize"
    raise ConfigError(f"metric {metric!r} is not a ranking metric; use NAME@k with NAME one of "
                      f"{', '.join((*MAXIMIZED, *MINIMIZED))} (e.g. NDCG@10){_metric_hint(metric)}")


def _metric_hint(metric: str) -> str:
    """What a mistyped metric probably meant: without its split prefix, in the right case."""
    split, _, bare = metric.partition("_") if metric.lower().startswith(("valid_", "test_")) else ("", "", metric)
    name, at, k = bare.partition("@")
    known = next((m for m in (*MAXIMIZED, *MINIMIZED) if m.lower() == name.lower()), None)
    why = "; a search is scored on validation only (test metrics never steer it)" if split.lower() == "test" else ""
    return f"{why}; did you mean {known}{at}{k}?" if known else why


def check_metric(metric: str, config: ExperimentConfig) -> bool:
    """Check that validation reports `metric`; whether it is also measured every epoch (so trials can be pruned)."""
    metric_direction(metric)
    name, _, k = metric.partition("@")
    if not k.isdigit() or int(k) not in config.eval.ks:
        raise ConfigError(f"metric {metric!r} needs a cut-off among eval.ks ({list(config.eval.ks)}); add it with "
                          f"--set eval.ks=[...] or pick another metric")
    return name in ACCURACY


def model_spec(raw: Mapping[str, Any], space: SearchSpace, metric: str) -> StudySpec:
    """What a model study searches: every setting but the searched and machine-specific ones."""
    full = ExperimentConfig.from_dict(dict(raw)).to_dict()
    identity = {k: v for k, v in known_keys(full, ()).items() if k not in LOCAL_KEYS and k not in space.keys}
    return StudySpec("model", identity, space.spec(), metric, metric_direction(metric))


class ModelTrials:
    """`run(trial, values)`: train the base config with the trial's values; the validation metric is the value."""

    def __init__(self, raw: Mapping[str, Any], folder: Path, metric: str, prune: bool, progress: bool = False,
                 fixed_data: bool = True) -> None:
        self.raw, self.folder, self.metric, self.prune, self.progress = dict(raw), folder, metric, prune, progress
        self.fixed_data = fixed_data  # no data key is searched: every trial must see the same data
        self._data: tuple[str, SplitData, str] | None = None  # data settings, data, fingerprint

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_data": None}  # other processes read the data themselves

    def data(self, config: ExperimentConfig) -> tuple[SplitData, str]:
        """The data of `config` and its fingerprint: read once per process while the data settings stay the same."""
        key = repr(to_dict(config.data))
        if self._data is None or self._data[0] != key:
            data = load_data(config.data)
            self._data = (key, data, data_fingerprint(data))
        return self._data[1], self._data[2]

    def run(self, trial: Trial, values: dict[str, Any]) -> float:
        raw = with_values(self.raw, values)
        raw["name"] = trial_name(trial.number)
        trial.set_user_attr("process", process_name())
        config = ExperimentConfig.from_dict(raw)
        data, fingerprint = self.data(config)
        if self.fixed_data:
            check_fingerprint(trial, fingerprint)
        pruning = PruneOnValidation(trial, f"valid_{self.metric}")
        try:
            run = train_trial(config, self.folder, data, [pruning] if self.prune else [], self.progress)
        except optuna_module().TrialPruned:
            write_pruned_record(self.folder, trial, pruning, config.train.epochs)
            trial.set_user_attr("epochs", pruning.epochs)
            raise
        m = run.metrics
        attrs = {"run": os.path.relpath(run.path, self.folder) if run.path else "", "epochs": m["epochs_run"],
                 "best_epoch": m["best_epoch"], "seconds": m["train_seconds"], "valid": m["valid"], "test": m["test"]}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return float(m["valid"][self.metric])


def process_name() -> str:
    """Which process ran a trial: host:pid."""
    return f"{host_name()}:{os.getpid()}"


def check_fingerprint(trial: Trial, fingerprint: str) -> None:
    """Record the data of the study's first trial; refuse other data in later trials (e.g. another machine's)."""
    study = trial.study
    recorded = study.user_attrs.get(FINGERPRINT)
    if recorded is None:
        study.set_user_attr(FINGERPRINT, fingerprint)
    elif recorded != fingerprint:
        raise DataError(f"the data read here (fingerprint {short(fingerprint)}) differs from the data the "
                        f"study's trials were trained on ({short(recorded)}); every process of a study must read "
                        "the same data: check the data files and data settings on this machine")

"""One trial of a model search: a normal training run in the study's folder, pruned from its per-epoch validation.

A trial keeps no checkpoints: an interrupted or pruned trial leaves no run folder (a pruned one leaves a small
JSON record in `pruned/`), and the study redoes an interrupted trial rather than resuming it.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seqrec.data.splits import SplitData
from seqrec.experiment import ExperimentConfig
from seqrec.files import dumps_json, host_name, write_text_atomically
from seqrec.run_folders import run_status
from seqrec.runs import Run, clean_leftovers
from seqrec.search.backend import optuna_module
from seqrec.training.checkpoint import Checkpoint
from seqrec.training.loggers import build_loggers
from seqrec.training.loop import Callback, Loop, Record
from seqrec.training_runs import finish_run_dir, guarded, start_run_dir, train

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial, Trial

log = logging.getLogger(__name__)
PRUNED = "pruned"  # the study folder's subfolder of pruned-trial records


def trial_name(number: int) -> str:
    """The run name of trial `number`: trial-0007."""
    return f"trial-{number:04d}"


class PruneOnValidation(Callback):
    """Report `key` (e.g. valid_NDCG@10) of every validated epoch to the trial; stop the trial when the pruner says
    so (`optuna.TrialPruned`, raised before the run is written)."""

    def __init__(self, trial: Trial, key: str) -> None:
        self.trial, self.key = trial, key
        self.values: dict[int, float] = {}
        self.epochs = 0

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        self.epochs = loop.epoch
        value = record.get(self.key)
        if value is None:
            return
        self.values[loop.epoch] = float(value)
        self.trial.report(float(value), loop.epoch)
        if self.trial.should_prune():
            raise optuna_module().TrialPruned(f"{self.key} {value:.4f} at epoch {loop.epoch}")


def train_trial(config: ExperimentConfig, folder: Path, data: SplitData, callbacks: Sequence[Callback] = (),
                progress: bool = False) -> Run:
    """Train `config` on `data` into a new run folder under `folder`, without checkpoints; any failure or
    interruption removes the folder, so only finished trials leave runs."""
    config.train.checkpoint_every = 0
    run_dir = start_run_dir(config, folder)
    checkpoint = Checkpoint(run_dir, 0)
    with guarded(run_dir, fresh=True):
        clean_leftovers(run_dir)
        loggers = build_loggers(config.train.loggers, run_dir, config.to_dict())
        run = train(config.model, data, config.train, config.eval, data_config=config.data, progress=progress,
                    distill=config.distill, retrieval=config.retrieval, checkpoint=checkpoint,
                    callbacks=[*callbacks, *loggers])
        run.config.name = config.name
        finish_run_dir(run, run_dir, checkpoint)
    return run


def remove_unfinished(folder: Path, trials: Sequence[FrozenTrial]) -> list[Path]:
    """Delete the half-written run folders of failed trials (a process killed while training one); a trial is
    never resumed, and the folder of a trial that failed holds no finished run."""
    removed = []
    for trial in trials:
        path = folder / trial_name(trial.number)
        if trial.state.name == "FAIL" and path.is_dir() and run_status(path) != "finished":
            shutil.rmtree(path, ignore_errors=True)
            log.warning("removed %s, left by trial %d when its process was stopped", path, trial.number)
            removed.append(path)
    return removed


def write_pruned_record(folder: Path, trial: Trial, pruning: PruneOnValidation, planned_epochs: int) -> Path:
    """`pruned/trial-NNNN.json`: what a pruned trial tried and how far it got (it leaves no run)."""
    record: dict[str, Any] = {"trial": trial.number, "params": trial.params, "epochs_run": pruning.epochs,
                              "epochs_planned": planned_epochs, "monitor": pruning.key,
                              "values": {str(epoch): value for epoch, value in pruning.values.items()},
                              "process": f"{host_name()}:{os.getpid()}"}
    file = folder / PRUNED / f"{trial_name(trial.number)}.json"
    file.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(file, dumps_json(record, str(file)) + "\n")
    return file

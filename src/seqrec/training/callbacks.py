"""The loop's callbacks: model selection and early stopping, time budget, checkpoints, progress, plain functions."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from seqrec.training.checkpoint import Checkpoint
from seqrec.training.loop import Callback, Loop, Record

Score = Callable[[Record], Any]  # a record's score (a float, or a tuple compared in order); None = not scored


class EarlyStopping(Callback):
    """Keep the best epoch's weights by a monitored value; stop after `patience` epochs without improvement.

    monitor: a record key or a function of the record (records without it are not scored). mode: "max" or "min".
    patience 0 never stops; no stop before epoch `warmup` + 1 (an early dip does not end training). `restart()`
    starts the selection afresh (a new training phase). At the end the best weights are loaded back.
    """

    key = "early_stopping"

    def __init__(self, module: torch.nn.Module | None, monitor: str | Score, mode: Literal["max", "min"] = "max",
                 patience: int = 0, warmup: int = 0, snapshot: Callable[[], Any] | None = None,
                 restore: Callable[[Any], None] | None = None) -> None:
        """`snapshot`/`restore` replace copying `module.state_dict()` (e.g. to keep only a LoRA adapter)."""
        if module is None and (snapshot is None or restore is None):
            raise ValueError("EarlyStopping needs a module or both snapshot and restore")
        self.snapshot = snapshot or (lambda: copy.deepcopy(module.state_dict()))  # type: ignore[union-attr]
        self.restore = restore or (lambda state: module.load_state_dict(state))  # type: ignore[union-attr]
        self.score: Score = (lambda r: r.get(monitor)) if isinstance(monitor, str) else monitor
        self.mode = mode
        self.patience, self.warmup = patience, warmup
        self.restart()
        self.best_epoch, self.best_record = 0, {}
        self.best_state: Any = None
        self.checked = 0  # the last epoch that was scored

    def restart(self) -> None:
        self.best_score: Any = -math.inf if self.mode == "max" else math.inf
        self.stale = 0

    def start_from(self, score: Any, record: Record) -> None:
        """Count the current weights as epoch 0 with `score` (training must beat them to replace them)."""
        self.best_score, self.best_record, self.best_epoch = score, record, 0
        self.best_state = self.snapshot()

    def improves(self, score: Any) -> bool:
        return score > self.best_score if self.mode == "max" else score < self.best_score

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        score = self.score(record)
        if score is not None:
            if self.improves(score):
                self.best_score, self.best_epoch, self.best_record, self.stale = score, loop.epoch, record, 0
                self.best_state = self.snapshot()
            else:
                self.stale += loop.epoch - self.checked
            self.checked = loop.epoch
        patience_over = bool(self.patience) and self.stale >= self.patience and loop.epoch > self.warmup
        if patience_over and loop.epoch < loop.epochs:
            loop.stop = True

    def on_fit_end(self, loop: Loop) -> None:
        if self.best_state is not None:
            self.restore(self.best_state)

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best_epoch": self.best_epoch, "best_record": self.best_record,
                "best_state": self.best_state, "stale": self.stale, "checked": self.checked}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best_epoch = state["best_score"], state["best_epoch"]
        self.best_record, self.best_state = dict(state["best_record"]), state["best_state"]
        self.stale, self.checked = state["stale"], state["checked"]


class TimeBudget(Callback):
    """Stop once `seconds` of training have passed (0 = no limit); `agree` makes processes stop together."""

    def __init__(self, seconds: float, agree: Callable[[bool], bool] = bool) -> None:
        self.seconds, self.agree = seconds, agree

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        over = bool(self.seconds) and loop.elapsed >= self.seconds
        if self.agree(over) and loop.epoch < loop.epochs:  # every process calls `agree` every epoch
            loop.stop = True


class Checkpointing(Callback):
    """Save `state()` every `checkpoint.every` epochs and when training stops (after selection and stopping)."""

    def __init__(self, checkpoint: Checkpoint, state: Callable[[], dict[str, Any]]) -> None:
        self.checkpoint, self.state = checkpoint, state

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        if self.checkpoint.due(loop.epoch, loop.finished):
            self.checkpoint.save(self.state(), loop.epoch, loop.epochs)


class EpochFunctions(Callback):
    """Plain functions called with each epoch's record (e.g. a test that interrupts training)."""

    def __init__(self, functions: list[Callable[[Record], None]]) -> None:
        self.functions = functions

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        for function in self.functions:
            function(record)


class ProgressBar(Callback):
    """A Rich bar over epochs with a status line (one printed line per epoch when not on a terminal).

    `progress` is open between the start and the end of training, for inner bars (e.g. batches).
    """

    def __init__(self, label: str, status: Callable[[Record], str], enabled: bool = True, every: int = 1) -> None:
        """`every`: print a line every that many epochs (or steps) when not on a terminal, and at the end."""
        self.label, self.status, self.enabled, self.every = label, status, enabled, every
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def on_fit_start(self, loop: Loop) -> None:
        if not self.enabled:
            return
        self.progress = progress_bar()
        self.progress.start()
        self.task = self.progress.add_task(self.label, total=loop.epochs, completed=loop.epoch, status="")

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        if self.progress is None or self.task is None:
            return
        status = self.status(record)
        self.progress.update(self.task, advance=1, status=status)
        if not self.progress.console.is_terminal and (loop.epoch % self.every == 0 or loop.finished):
            self.progress.console.print(f"{self.label} {loop.epoch}/{loop.epochs}: {status} "
                                        f"[{record['elapsed_seconds']:.0f} s]")

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def progress_bar() -> Progress:
    """The bar every long loop in seqrec shows: label, bar, count, elapsed, ETA, status."""
    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    TextColumn("{task.fields[status]}"), transient=False)

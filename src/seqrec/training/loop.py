"""The one epoch loop every early-stopped training in seqrec runs in; everything else is a callback.

`Loop.run(run_epoch)` calls `run_epoch(epoch) -> record` until `epochs` or until a callback sets `stop`;
callbacks see each record in order (selection and stopping first, then checkpoints, loggers and progress).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

Record = dict[str, Any]  # one epoch's numbers: {"epoch": 3, "train_loss": 0.71, "valid_NDCG@10": 0.12, ...}


class Callback:
    """Hooks of `Loop.run`, each optional. A callback ends training by setting `loop.stop = True`.

    `key` names its state in a checkpoint (empty: nothing to save).
    """

    key: str = ""

    def on_fit_start(self, loop: Loop) -> None:
        """Before the first epoch (also when a resumed loop starts again)."""

    def on_epoch_end(self, loop: Loop, record: Record) -> None:
        """After each epoch; `record` is already in `loop.history`."""

    def on_fit_end(self, loop: Loop) -> None:
        """After the last epoch, when training ended normally."""

    def close(self) -> None:
        """Always called last, also after an error or an interruption (release bars, files)."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from `state_dict()`'s output."""


class Loop:
    """Epochs, history, elapsed seconds and the stop flag; the callbacks do the rest."""

    def __init__(self, epochs: int, callbacks: Sequence[Callback] = ()) -> None:
        self.epochs = epochs
        self.callbacks = list(callbacks)
        self.epoch = 0  # epochs finished
        self.history: list[Record] = []
        self.elapsed = 0.0  # seconds so far (a resumed loop continues the count)
        self.stop = False

    @property
    def finished(self) -> bool:
        """No epoch follows the current one."""
        return self.stop or self.epoch >= self.epochs

    def run(self, run_epoch: Callable[[int], Record]) -> None:
        """Run the remaining epochs; `elapsed_seconds` is added to every record."""
        clock = time.perf_counter() - self.elapsed
        try:
            for callback in self.callbacks:
                callback.on_fit_start(self)
            while not self.finished:
                record = run_epoch(self.epoch + 1)
                self.epoch = self.epoch + 1
                self.elapsed = record["elapsed_seconds"] = time.perf_counter() - clock
                self.history.append(record)
                for callback in self.callbacks:
                    callback.on_epoch_end(self, record)
            for callback in self.callbacks:
                callback.on_fit_end(self)
        finally:
            for callback in self.callbacks:
                callback.close()

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "history": self.history, "elapsed": self.elapsed, "stopped": self.stop,
                "callbacks": {c.key: c.state_dict() for c in self.callbacks if c.key}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch, self.history = state["epoch"], list(state["history"])
        self.elapsed, self.stop = state["elapsed"], state["stopped"]
        for callback in self.callbacks:
            if callback.key:
                callback.load_state_dict(state["callbacks"][callback.key])

"""Small helpers shared by SIREN inference and training: a rich progress bar with ETA and a temporary eval mode."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

Advance = Callable[..., None]  # advance(n=1, status="")


@contextlib.contextmanager
def progress_bar(description: str, total: int, enabled: bool = True) -> Iterator[Advance]:
    """Yield `advance(n=1, status="")`; a no-op when disabled (rich allows one live bar at a time, so inner loops
    such as validation during training run with `enabled=False`)."""
    if not enabled:
        yield lambda n=1, status="": None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(description, total=total, status="")
        yield lambda n=1, status="": bar.update(task, advance=n, status=status)


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Switch dropout off for the block and restore the previous train/eval mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)

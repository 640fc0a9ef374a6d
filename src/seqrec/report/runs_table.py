"""One line per run under a folder: what it is, whether it finished, and its headline numbers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from seqrec.errors import RunError
from seqrec.report.run_folder import RunFolder, find_run_folders, read_run_folder


@dataclass(frozen=True)
class RunSummary:
    """A run's headline: `valid` is its monitored validation metric, `test_*` the test metrics at 10."""

    path: Path
    name: str
    kind: str
    model: str
    dataset: str
    status: str  # "finished" or "unfinished"
    monitor: str
    valid: float | None
    test_ndcg10: float | None
    test_hr10: float | None
    date: dt.datetime


def list_runs(root: str | Path) -> list[RunSummary]:
    """Every run at or below `root`, in path order; a missing `root` is a `RunError`."""
    root = Path(root)
    if not root.is_dir():
        problem = "is not a folder" if root.exists() else "not found"
        raise RunError(f"folder {problem}: {root}; pass the folder that holds the run directories (default runs)")
    return [summarize(read_run_folder(path)) for path in find_run_folders(root)]


def summarize(run: RunFolder) -> RunSummary:
    """The headline of one run folder."""
    return RunSummary(path=run.path, name=run.name, kind=run.kind, model=run.model, dataset=run.dataset,
                      status="finished" if run.finished else "unfinished", monitor=run.monitor,
                      valid=_number(run.metrics, "valid", run.monitor),
                      test_ndcg10=_number(run.metrics, "test", "NDCG@10"),
                      test_hr10=_number(run.metrics, "test", "HR@10"), date=run.modified)


def _number(metrics: dict, split: str, key: str) -> float | None:
    section = metrics.get(split)
    value = section.get(key) if isinstance(section, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

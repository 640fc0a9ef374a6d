"""Runs side by side: every metric, the settings that differ, and learning curves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrec.config import flatten
from seqrec.errors import RunError
from seqrec.report.output import write_new_bytes
from seqrec.report.plots import has_curve, learning_curve_png
from seqrec.report.run_folder import RunFolder, read_run_folder

TRAIN_LOSS = "train_loss"
NOT_METRICS = ("protocol",)  # metrics.json sections shown elsewhere
MISSING = object()  # a key one run has and another lacks


@dataclass
class Comparison:
    """Runs as columns: `metrics[key][label]`, `config_diff[key][label]`, `protocols[label]`, PNG `curves`."""

    runs: dict[str, RunFolder]  # label -> run, in the order given
    metrics: dict[str, dict[str, float | None]]
    config_diff: dict[str, dict[str, Any]]
    protocols: dict[str, dict[str, Any]]
    curves: dict[str, bytes] = field(default_factory=dict)  # history key (train_loss, valid_NDCG@10) -> PNG

    @property
    def labels(self) -> list[str]:
        return list(self.runs)

    def write_curves(self, folder: str | Path, overwrite: bool = False) -> list[Path]:
        """Save each learning curve as `<folder>/<key>.png` (existing files only with `overwrite`)."""
        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise RunError(f"{folder} is a file, not a folder; choose another --out")
        folder.mkdir(parents=True, exist_ok=True)
        return [write_new_bytes(folder / f"{curve_file_stem(key)}.png", png, overwrite)
                for key, png in self.curves.items()]


def compare_runs(paths: Sequence[str | Path], curves: bool = True) -> Comparison:
    """Read the run folders in `paths` and line them up; `curves=False` skips drawing the PNGs."""
    if not paths:
        raise RunError("name at least one run directory to compare")
    runs = dict(zip(unique_labels([Path(p) for p in paths]), (read_run_folder(p) for p in paths), strict=True))
    flat_configs = {label: flatten(run.config) for label, run in runs.items()}
    comparison = Comparison(
        runs=runs,
        metrics=metrics_table({label: run.metrics for label, run in runs.items()}),
        config_diff=differing(flat_configs),
        protocols={label: run.protocol for label, run in runs.items()},
    )
    if curves:
        comparison.curves = learning_curves({label: run.history for label, run in runs.items()},
                                            [run.monitor for run in runs.values()])
    return comparison


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Folder names; runs that share a folder name get as much of their path as tells them apart."""
    resolved = [p.resolve() for p in paths]
    labels = [p.name or str(p) for p in resolved]
    for depth in range(2, max(len(p.parts) for p in resolved) + 1):
        clashing = {label for label in labels if labels.count(label) > 1}
        if not clashing:
            return labels
        labels = ["/".join(p.parts[-depth:]) if label in clashing else label
                  for p, label in zip(resolved, labels, strict=True)]
    return [f"{label} ({n})" if labels.count(label) > 1 else label for n, label in enumerate(labels, start=1)]



def metrics_table(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Every numeric value of every run's metrics.json (dotted keys, e.g. `test.NDCG@10`); None where absent."""
    flat = {label: {k: v for k, v in flatten(m).items() if is_number(v) and k.split(".")[0] not in NOT_METRICS}
            for label, m in metrics.items()}
    keys = _ordered(k for values in flat.values() for k in values)
    return {key: {label: values.get(key) for label, values in flat.items()} for key in keys}


def differing(configs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """The dotted keys whose value is not the same in every run (MISSING where a run lacks the key)."""
    keys = _ordered(k for config in configs.values() for k in config)
    out = {}
    for key in keys:
        values = {label: config.get(key, MISSING) for label, config in configs.items()}
        if len({repr(v) for v in values.values()}) > 1:
            out[key] = values
    return out


def learning_curves(histories: Mapping[str, Sequence[dict[str, Any]]], monitors: Iterable[str]) -> dict[str, bytes]:
    """Train loss and each monitored validation metric per epoch, one line per run; curves nobody has are left out."""
    keys = _ordered([TRAIN_LOSS, *(f"valid_{m}" for m in monitors)])
    return {key: learning_curve_png(histories, key) for key in keys if has_curve(histories, key)}


def curve_file_stem(key: str) -> str:
    """A file name for a history key: `valid_NDCG@10` -> `valid_NDCG_at_10`."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in key.replace("@", "_at_"))


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ordered(keys: Iterable[str]) -> list[str]:
    """Unique keys in first-seen order."""
    return list(dict.fromkeys(keys))

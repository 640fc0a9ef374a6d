"""Read any run folder (trained, SAE, tuned, LLM stage; finished or not) into one plain record for reports."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrec.config import read_yaml
from seqrec.errors import ConfigError, RunError
from seqrec.runs import CONFIG, METRICS, read_records, run_status

SAE_CONFIG, TUNE_CONFIG = "sae.yaml", "tune.yaml"  # derived runs keep their settings here instead of config.yaml
RUN_MARKERS = (CONFIG, SAE_CONFIG, TUNE_CONFIG)
PARENT_KEYS = {SAE_CONFIG: "base_run", TUNE_CONFIG: "sae_run"}
DEFAULT_MONITOR = "NDCG@10"
SEARCH_DEPTH = 4  # derived runs sit inside their parent run (runs/base/sae-popsteer/tuned-comedy)


@dataclass
class RunFolder:
    """What a report needs from one run folder: its settings, metrics and per-epoch history, as stored."""

    path: Path
    kind: str
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    finished: bool = True
    model: str = ""
    dataset: str = ""

    @property
    def name(self) -> str:
        return str(self.config.get("name") or self.path.name)

    @property
    def monitor(self) -> str:
        """The validation metric that chose the best epoch (`train.monitor`)."""
        train = self.config.get("train")
        return str(train.get("monitor") or DEFAULT_MONITOR) if isinstance(train, dict) else DEFAULT_MONITOR

    @property
    def protocol(self) -> dict[str, Any]:
        """The evaluation protocol the run recorded in metrics.json, else what its config says."""
        recorded = self.metrics.get("protocol")
        if isinstance(recorded, dict):
            return recorded
        settings = self.config.get("eval")
        if not isinstance(settings, dict):
            return {}
        model = self.config.get("model")
        window = {"max_len": model["max_len"]} if isinstance(model, dict) and "max_len" in model else {}
        return {"seen_items_masked": settings.get("mask_seen", True), "ks": settings.get("ks"), **window}

    @property
    def modified(self) -> dt.datetime:
        """When the run last changed: metrics.json for a finished run, else its newest top-level file."""
        files = [self.path / METRICS] if self.finished else [p for p in self.path.iterdir() if p.is_file()]
        stamp = max((p.stat().st_mtime for p in files if p.exists()), default=self.path.stat().st_mtime)
        return dt.datetime.fromtimestamp(stamp, tz=dt.UTC)


def is_run_folder(path: Path) -> bool:
    """Whether `path` holds a run's settings (config.yaml, or sae.yaml / tune.yaml of a derived run)."""
    return path.is_dir() and any((path / marker).is_file() for marker in RUN_MARKERS)


def read_run_folder(path: str | Path) -> RunFolder:
    """One run folder; a missing folder or one that is not a run is a `RunError` saying what to pass instead."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    marker = next((m for m in RUN_MARKERS if (path / m).is_file()), None)
    if marker is None:
        raise RunError(f"{path} is not a seqrec run (no {', '.join(RUN_MARKERS)}); pass a run directory such as "
                       "runs/sasrec-ml-1m")
    config = _read_settings(path / marker)
    metrics, history = read_records(path)
    finished = (path / METRICS).is_file() if marker != CONFIG else run_status(path) == "finished"
    model, dataset = _model_and_dataset(path, marker, config)
    return RunFolder(path, _kind(marker, config, metrics), config, metrics, history, finished, model, dataset)


def find_run_folders(root: str | Path, depth: int = SEARCH_DEPTH) -> Iterator[Path]:
    """Run folders at or below `root` (hidden and temporary folders skipped), in name order."""
    root = Path(root)
    if is_run_folder(root):
        yield root
    if depth <= 0:
        return
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return
    for child in children:
        yield from find_run_folders(child, depth - 1)


def _read_settings(file: Path) -> dict[str, Any]:
    try:
        data = read_yaml(file)
    except ConfigError as exc:
        raise RunError(f"{exc}; restore the file or train the run again") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunError(f"{file} cannot be read ({exc})") from None
    if not isinstance(data, dict):
        raise RunError(f"{file} is damaged (expected a YAML mapping); restore it or train the run again")
    return data


def _kind(marker: str, config: dict[str, Any], metrics: dict[str, Any]) -> str:
    """The recorded kind, else the one the folder's files imply."""
    recorded = config.get("kind") or metrics.get("kind")
    if recorded:
        return str(recorded)
    if marker == SAE_CONFIG:
        return "sae"
    if marker == TUNE_CONFIG:
        return "tuned"
    if config.get("stage"):
        return f"llm-{config['stage']}"
    for section, kind in (("retrieval", "retrieval"), ("distill", "distilled")):
        if isinstance(config.get(section), dict):
            return kind
    return "base"


def _model_and_dataset(path: Path, marker: str, config: dict[str, Any], hops: int = 3) -> tuple[str, str]:
    """Model and dataset names; a derived run takes them from the run it was derived from."""
    if marker in PARENT_KEYS and hops > 0:
        parent = config.get(PARENT_KEYS[marker])
        if isinstance(parent, str):
            folder = Path(os.path.normpath(path / parent))
            found = next((m for m in RUN_MARKERS if (folder / m).is_file() and folder != path), None)
            if found is not None:
                try:
                    return _model_and_dataset(folder, found, _read_settings(folder / found), hops - 1)
                except RunError:
                    return "", ""
        return "", ""
    model, data = config.get("model"), config.get("data")
    model_name = str(model.get("name", "sasrec")) if isinstance(model, dict) else str(model or "")
    dataset = str(data.get("name") or data.get("path") or "") if isinstance(data, dict) else str(data or "")
    return model_name, dataset

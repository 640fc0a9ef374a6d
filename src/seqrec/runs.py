"""Run directories: written to a temporary directory and renamed, so a crash never leaves half a run."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqrec.config import read_yaml, write_yaml
from seqrec.data.catalog import ItemCatalog
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Sequences
from seqrec.errors import ConfigError, RunError
from seqrec.experiment import ExperimentConfig
from seqrec.models.base import SequentialEncoder, build_model
from seqrec.recommender import Recommender
from seqrec.retrieval.augmented import RetrievalAugmented

CONFIG, WEIGHTS, METRICS, HISTORY = "config.yaml", "model.safetensors", "metrics.json", "history.jsonl"
ID_MAPS, HISTORIES, CATALOG = "id_maps.json", "histories.npz", "catalog.json"
REQUIRED = (CONFIG, WEIGHTS, ID_MAPS, HISTORIES)


@dataclass
class Run:
    """A trained model with its config, id maps, histories, catalog, metrics and training history."""

    config: ExperimentConfig
    recommender: Recommender
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    path: Path | None = None

    @property
    def model(self) -> SequentialEncoder:
        return self.recommender.model


def unique_run_dir(parent: str | Path, name: str) -> Path:
    """`parent/name`, or `parent/name-2`, `-3`, … if taken: an existing run is never overwritten."""
    parent = Path(parent)
    candidate, n = parent / name, 2
    while candidate.exists():
        candidate, n = parent / f"{name}-{n}", n + 1
    return candidate


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Let `write` fill a temporary sibling directory, then rename it to `path` (which must not exist)."""
    if path.exists():
        raise RunError(f"{path} already exists; choose another name (runs are never overwritten)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        write(tmp)
        os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def save_run(run: Run, path: str | Path) -> Path:
    """Write `run` to a new directory `path`."""
    rec = run.recommender

    def write(tmp: Path) -> None:
        write_yaml(run.config.to_dict(), tmp / CONFIG)
        save_file(cpu_state(rec.model), str(tmp / WEIGHTS), metadata={"model": run.config.model.name})
        (tmp / METRICS).write_text(json.dumps(run.metrics, indent=2))
        (tmp / HISTORY).write_text("".join(json.dumps(r) + "\n" for r in run.history))
        (tmp / ID_MAPS).write_text(json.dumps({"users": rec.user_map.to_dict(), "items": rec.item_map.to_dict()}))
        np.savez_compressed(tmp / HISTORIES, offsets=rec.histories.offsets, items=rec.histories.items)
        (tmp / CATALOG).write_text(json.dumps(rec.catalog.to_dict()))
        if isinstance(rec.model, RetrievalAugmented):
            rec.model.save_extras(tmp)

    run.path = write_atomically(Path(path), write)
    return run.path


def load_run(path: str | Path, device: str = "cpu", rebuild_index: bool = False) -> Run:
    """Restore a run directory written by `save_run`; clear errors for missing, foreign or damaged runs.

    `rebuild_index` re-indexes a retrieval run's stored knowledge base when its index file is damaged.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    missing = [f for f in REQUIRED if not (path / f).exists()]
    if missing:
        raise RunError(f"{path} is not a complete seqrec run (missing {', '.join(missing)})")
    try:
        config = ExperimentConfig.from_dict(read_yaml(path / CONFIG))
    except ConfigError as exc:
        raise RunError(f"{path / CONFIG}: {exc}") from None
    maps = json.loads((path / ID_MAPS).read_text())
    user_map, item_map = IdMap.from_dict(maps["users"]), IdMap.from_dict(maps["items"])
    model = build_model(config.model, len(item_map))
    if config.retrieval.enabled:
        model = RetrievalAugmented(model, config.retrieval)
    _load_weights(model, path / WEIGHTS, config.model.name)
    model.to(device).eval()
    if isinstance(model, RetrievalAugmented):
        model.load_extras(path, rebuild_index=rebuild_index)
    arrays = np.load(path / HISTORIES)
    histories = Sequences(arrays["offsets"], arrays["items"])
    catalog = (ItemCatalog.from_dict(json.loads((path / CATALOG).read_text())) if (path / CATALOG).exists()
               else ItemCatalog.empty(len(item_map)))
    metrics = json.loads((path / METRICS).read_text()) if (path / METRICS).exists() else {}
    history = [json.loads(line) for line in (path / HISTORY).read_text().splitlines()] \
        if (path / HISTORY).exists() else []
    return Run(config, Recommender(model, user_map, item_map, histories, catalog), metrics, history, path)


def _load_weights(model: SequentialEncoder, file: Path, name: str) -> None:
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise RunError(f"{file} is damaged or truncated ({exc}); retrain or restore the file") from None
    expected = model.state_dict()
    wrong = sorted(set(expected) ^ set(state))
    shapes = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if wrong or shapes:
        key = (wrong or shapes)[0]
        raise RunError(f"{file} does not match a {name} model with this config (first mismatch: {key}); "
                       "the run directory was written by another model or config")
    model.load_state_dict(state)


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's weights as contiguous CPU tensors, ready for safetensors."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_derived_run(path: Path, parent: Path, parent_key: str, meta: dict[str, Any], files: tuple[str, str],
                     module: torch.nn.Module, metrics: dict, history: list[dict]) -> Path:
    """Write a run derived from a saved parent run (SAE on a base run, tuned run on an SAE run), atomically.

    `meta` goes to files[0] (YAML) with the parent's path relative to `path` under `parent_key`; the module's
    weights go to files[1]; metrics and history beside them.
    """
    relative = os.path.relpath(Path(parent).resolve(), path.resolve())  # e.g. ".." for runs/x/sae-popsteer

    def write(tmp: Path) -> None:
        write_yaml({parent_key: relative, **meta}, tmp / files[0])
        save_file(cpu_state(module), str(tmp / files[1]))
        write_records(tmp, metrics, history)

    return write_atomically(path, write)


def write_records(folder: Path, metrics: dict, history: list[dict]) -> None:
    """metrics.json and history.jsonl of a derived run (SAE, tuned)."""
    (folder / METRICS).write_text(json.dumps(metrics, indent=2))
    (folder / HISTORY).write_text("".join(json.dumps(r) + "\n" for r in history))


def read_records(folder: Path) -> tuple[dict, list[dict]]:
    """metrics.json and history.jsonl of a derived run; empty when absent."""
    metrics = json.loads((folder / METRICS).read_text()) if (folder / METRICS).exists() else {}
    history = [json.loads(line) for line in (folder / HISTORY).read_text().splitlines()] \
        if (folder / HISTORY).exists() else []
    return metrics, history

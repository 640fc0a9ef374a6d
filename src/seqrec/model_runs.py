"""Trained-model runs, the `base` kind: config.yaml, model.safetensors, id_maps.json, histories.npz, catalog.json.

Every kind of trained sequential model (plain models incl. DuoRec, distilled, retrieval-augmented) is saved in
these files; a kind that adds to them (see `seqrec.run_kinds`) wraps the model and writes its extras. A training run
in progress holds config.yaml and its checkpoint (see `seqrec.training.checkpoint`); it becomes a finished run in
place.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from seqrec.config import read_yaml
from seqrec.data.catalog import ItemCatalog
from seqrec.data.config import FRAME_FORMAT, DataConfig
from seqrec.data.fingerprint import data_fingerprint, short
from seqrec.data.idmap import IdMap
from seqrec.data.interactions import Sequences
from seqrec.data.splits import SplitData
from seqrec.errors import ConfigError, DataError, RunError, SeqrecError
from seqrec.experiment import ExperimentConfig
from seqrec.files import read_json
from seqrec.models.base import SequentialEncoder, build_model
from seqrec.recommender import Recommender
from seqrec.run_folders import (
    CONFIG,
    atomic,
    check_run_name,
    cpu_state,
    damaged,
    read_records,
    recorded_fingerprint,
    run_status,
    write_atomically,
)
from seqrec.run_kinds import find_kind, is_kind_of, register_kind, write_run, yaml_mapping
from seqrec.training.checkpoint import checkpoint_info

WEIGHTS, ID_MAPS, HISTORIES, CATALOG = "model.safetensors", "id_maps.json", "histories.npz", "catalog.json"
REQUIRED = (CONFIG, WEIGHTS, ID_MAPS, HISTORIES)
Wrap = Callable[[SequentialEncoder, ExperimentConfig], SequentialEncoder]  # a kind's model around the plain one


@dataclass
class Run:
    """A trained model with its config, id maps, histories, catalog, metrics and training history."""

    config: ExperimentConfig
    recommender: Recommender
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    path: Path | None = None

    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def model(self) -> SequentialEncoder:
        return self.recommender.model

    @property
    def model_run(self) -> Run:
        """The trained-model run underneath: this one (its data source, fingerprint and protocol)."""
        return self

    @property
    def steering(self) -> dict[str, Any]:
        """The per-request steering this run offers: none (a trained model is served as it is)."""
        return {}

    def save(self, path: str | Path) -> Path:
        """Write this run to the new folder `path` (never an existing one), e.g. a run trained in Python, so that
        `seqrec evaluate PATH` and every later stage can read it; returns the folder."""
        path = Path(path)
        check_run_name(path.name)
        name, self.config.name = self.config.name, path.name  # a run's name is its folder's
        try:
            self.path = write_atomically(path, lambda tmp: write_run(self, tmp))
        except BaseException:
            self.config.name = name
            raise
        return self.path


class BaseKind:
    """Plain trained models (SASRec, BERT4Rec, GRU4Rec, DuoRec, ...) and the files every trained-model kind shares."""

    name = "base"
    settings_file = CONFIG
    extends: str | None = None
    label = ""
    recommends = True

    def recognise(self, path: Path) -> bool:
        return (path / WEIGHTS).is_file() or isinstance(yaml_mapping(path / CONFIG).get("model"), dict)

    def save(self, run: Run, folder: Path) -> dict[str, Any]:
        """Weights, id maps, histories and catalog, each replaced in one step; the config is the run's settings."""
        rec = run.recommender
        save = atomic(folder)
        save(WEIGHTS, lambda tmp: save_file(cpu_state(rec.model), tmp, metadata={"model": run.config.model.name}))
        save(ID_MAPS, lambda tmp: Path(tmp).write_text(json.dumps({"users": rec.user_map.to_dict(),
                                                                   "items": rec.item_map.to_dict()})))
        save(HISTORIES, lambda tmp: _save_npz(tmp, offsets=rec.histories.offsets, items=rec.histories.items))
        save(CATALOG, lambda tmp: Path(tmp).write_text(json.dumps(rec.catalog.to_dict())))
        return run.config.to_dict()

    def load(self, path: Path, device: str = "cpu", wrap: Wrap | None = None, **options: Any) -> Run:
        """The run at `path`; `wrap` builds the saved model around the plain one (for kinds that extend this one)."""
        missing = [f for f in REQUIRED if not (path / f).exists()]
        if missing and run_status(path) == "in progress":
            raise RunError(resume_hint(path))
        if missing:
            raise RunError(f"{path} is not a complete seqrec run (missing {', '.join(missing)})")
        config = read_run_config(path)
        user_map, item_map = _read_id_maps(path / ID_MAPS)
        catalog = _read_catalog(path / CATALOG, len(item_map))
        model = build_model(config.model, len(item_map), catalog)
        if wrap is not None:
            model = wrap(model, config)
        _load_weights(model, path / WEIGHTS, config.model.name)
        model.to(device).eval()
        histories = _read_histories(path / HISTORIES, len(user_map), len(item_map))
        metrics, history = read_records(path)
        recommender = Recommender(model, user_map, item_map, histories, catalog, mask_seen=config.eval.mask_seen)
        return Run(config, recommender, metrics, history, path)


def _save_npz(tmp: str, **arrays: np.ndarray) -> None:
    with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez_compressed(f, **arrays)


def load_model_run(path: str | Path, device: str = "cpu", **options: Any) -> Run:
    """Restore a run of any trained-model kind; a run of another kind (an SAE, an LLM stage) is a `RunError`."""
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    kind = find_kind(path)
    if not is_kind_of(kind.name, BaseKind.name):
        raise RunError(f"{path} is a {kind.name} run, not a trained model run; point at the run of the model itself")
    return kind.load(path, device=device, **options)


def run_data(run: Run, data_dir: str | None = None, data: SplitData | None = None) -> SplitData:
    """The dataset and split `run` was trained on: `data` when given, else re-read from the run's `data` section
    (with `data_dir` as the data root). Either is checked against the run's data fingerprint (`check_run_data`)."""
    if data is not None:
        check_run_data(run, data, "the dataset passed")
        return data
    from seqrec.data.registry import load as load_data

    source = run.config.data
    if source.format == FRAME_FORMAT:
        raise DataError(f"{_where(run)}: this run's data was built in memory ({source.name!r}), so it cannot be "
                        "read again; pass the dataset (data=...) from Python, or save it to a file and train a run "
                        "on that file")
    if data_dir:
        source = dataclasses.replace(source, data_dir=data_dir)
    data = load_data(source)
    check_run_data(run, data, describe_source(source))
    return data


def check_run_data(run: Run, data: SplitData, what: str) -> None:
    """Refuse data that is not what `run` was trained on: another fingerprint than the run recorded, or, for runs
    written before fingerprints, other item ids. `what` names the data in the message."""
    recorded = recorded_fingerprint(run.metrics)
    if recorded is None:
        if data.item_map != run.recommender.item_map:
            raise RunError(f"{_where(run)}: {what} no longer has the item ids this run was trained on")
        return
    now = data_fingerprint(data)
    if now != recorded:
        raise DataError(f"{_where(run)} was trained on other data than {what} holds now (data fingerprint "
                        f"{short(recorded)} at training, {short(now)} now): the data changed since training (a "
                        "file was edited or replaced, or is read differently); restore it, or train a new run on "
                        "the data as it is")


def describe_source(source: DataConfig) -> str:
    """How messages name a run's data: its file, or its dataset name and data root."""
    if source.path:
        return f"the file {source.path}"
    if source.name == "synthetic":
        return "the synthetic dataset"
    from seqrec.data.registry import data_root

    return f"the dataset {source.name!r} (data root {data_root(source.data_dir)})"


def _where(run: Run) -> str:
    return os.path.normpath(run.path) if run.path is not None else "this run"  # an SAE's base: sae-x/..


def resume_hint(path: Path) -> str:
    """How to continue the in-progress run at `path`, and from which epoch."""
    info = checkpoint_info(path)
    if info is None:
        return (f"{path} is a training run that has not finished and has no checkpoint yet (still starting, or "
                "stopped before its first checkpoint); wait for it, or delete it and start again")
    return (f"{path} is a training run that has not finished (its last checkpoint is epoch {info['epoch']} of "
            f"{info['epochs']}); continue it with `seqrec train --resume {path}`")



def read_run_config(path: Path) -> ExperimentConfig:
    """The experiment config of a run directory; a damaged one is a `RunError` naming the file."""
    try:
        return ExperimentConfig.from_dict(read_yaml(path / CONFIG))
    except ConfigError as exc:
        raise RunError(f"{path / CONFIG}: {exc}") from None


def _read_id_maps(file: Path) -> tuple[IdMap, IdMap]:
    maps = read_json(file, "restore it from a backup or train the run again")
    try:
        return IdMap.from_dict(maps["users"]), IdMap.from_dict(maps["items"])
    except (KeyError, TypeError, ValueError, SeqrecError) as exc:
        raise damaged(file, f"expected users and items maps: {exc}") from None


def _read_histories(file: Path, num_users: int, num_items: int) -> Sequences:
    try:
        with np.load(file) as arrays:
            offsets, items = arrays["offsets"], arrays["items"]
    except Exception as exc:  # noqa: BLE001 - a damaged zip raises BadZipFile, EOFError, OSError, ValueError, ...
        raise damaged(file, f"{type(exc).__name__}: {str(exc)[:80]}") from None
    ok = (offsets.ndim == 1 and items.ndim == 1 and len(offsets) == num_users + 1 and offsets[0] == 0
          and offsets[-1] == len(items) and bool(np.all(np.diff(offsets) >= 0))
          and (len(items) == 0 or 1 <= items.min() and items.max() <= num_items))
    if not ok or not np.issubdtype(offsets.dtype, np.integer) or not np.issubdtype(items.dtype, np.integer):
        raise damaged(file, f"histories do not fit {num_users} users and {num_items} items")
    return Sequences(offsets.astype(np.int64), items.astype(np.int64))


def _read_catalog(file: Path, num_items: int) -> ItemCatalog:
    if not file.exists():
        return ItemCatalog.empty(num_items)
    try:
        catalog = ItemCatalog.from_dict(read_json(file, "restore it from a backup or delete it (titles are lost)"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise damaged(file, f"{type(exc).__name__}: {exc}") from None
    sizes = [len(catalog.titles or [None] * (num_items + 1))] + [len(v) for v in catalog.attributes.values()]
    if catalog.num_items != num_items or any(n != num_items + 1 for n in sizes):
        raise damaged(file, f"it describes {catalog.num_items} items, the run has {num_items}")
    return catalog


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


register_kind(BaseKind())

"""Run directories: names that are names, race-free unique folders, atomic writes, clear errors for damaged runs.

A finished run holds config.yaml, model.safetensors, id_maps.json, histories.npz, catalog.json, history.jsonl and,
written last, metrics.json. A training run in progress holds config.yaml and its checkpoint (see
`seqrec.training.checkpoint`); it becomes a finished run in place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
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
from seqrec.errors import ConfigError, RunError, SeqrecError
from seqrec.experiment import ExperimentConfig
from seqrec.files import (
    TMP_MARK,
    dumps_json,
    host_name,
    normal_permissions,
    read_json,
    read_json_lines,
    temp_sibling,
    write_file_atomically,
    write_text_atomically,
)
from seqrec.models.base import SequentialEncoder, build_model
from seqrec.recommender import Recommender
from seqrec.retrieval.augmented import RetrievalAugmented
from seqrec.training.checkpoint import checkpoint_info

log = logging.getLogger(__name__)

CONFIG, WEIGHTS, METRICS, HISTORY = "config.yaml", "model.safetensors", "metrics.json", "history.jsonl"
ID_MAPS, HISTORIES, CATALOG = "id_maps.json", "histories.npz", "catalog.json"
REQUIRED = (CONFIG, WEIGHTS, ID_MAPS, HISTORIES)
CLAIM_MARK = ".seqrec-claim-"  # inside a folder claimed for a run that is not written yet


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


# ---------------------------------------------------------------- names and folders


def check_output_dir(parent: str | Path) -> Path:
    """Make sure runs can be written under `parent` (created if missing) before any long work starts."""
    parent = Path(parent)
    if parent.is_symlink() and not parent.exists():
        raise RunError(f"output folder {parent} is a broken symbolic link (to {os.readlink(parent)}); "
                       "fix the link or choose another --output-dir")
    if parent.exists() and not parent.is_dir():
        raise RunError(f"output folder {parent} is a file, not a folder; choose another --output-dir")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = temp_sibling(parent / "write-check")
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise RunError(f"cannot write runs into {parent} ({exc.strerror or exc}); choose another --output-dir "
                       "or fix its permissions") from None
    return parent


def unique_run_dir(parent: str | Path, name: str) -> Path:
    """Claim `parent/name`, or `parent/name-2`, `-3`, … if taken: the folder is created holding only this
    process's claim mark, so two processes never get the same name and an existing run is never overwritten."""
    parent = check_output_dir(parent)
    check_run_name(name)
    clean_leftovers(parent)
    candidate, n = parent / name, 2
    while True:
        try:
            candidate.mkdir()
        except FileExistsError:
            candidate, n = parent / f"{name}-{n}", n + 1
            continue
        except FileNotFoundError:  # another process removed the (empty) parent it had made meanwhile
            parent.mkdir(parents=True, exist_ok=True)
            continue
        except OSError as exc:
            raise RunError(f"cannot create the run folder {candidate} ({exc.strerror or exc})") from None
        (candidate / claim_mark()).touch()
        return candidate


def claim_mark() -> str:
    """The file that marks a folder as claimed by this process (and lets a dead process's claim be freed)."""
    return f"{CLAIM_MARK}{host_name()}-{os.getpid()}"


def is_claimed(path: Path) -> bool:
    """Whether `path` is an empty folder that this process claimed with `unique_run_dir`."""
    return path.is_dir() and not path.is_symlink() and [p.name for p in path.iterdir()] == [claim_mark()]


@contextlib.contextmanager
def claimed_run_dir(parent: str | Path, name: str) -> Iterator[Path]:
    """`unique_run_dir` for work that fills the folder later: freed again when the work fails or writes nothing."""
    path = unique_run_dir(parent, name)
    try:
        yield path
    finally:
        if is_claimed(path):
            release_claim(path)
            with contextlib.suppress(OSError):
                path.rmdir()


def release_claim(path: Path) -> None:
    """Turn a claimed folder into an ordinary one (its owner is about to fill it)."""
    (path / claim_mark()).unlink(missing_ok=True)


def check_run_name(name: str) -> str:
    """A run name is one folder name: not empty, no path separator, not `.`/`..`, not hidden, printable, and at
    most 120 bytes (file names hold 255; the rest is room for `-N` and temporary-name suffixes)."""
    problem = ("is empty" if not name else "contains a path separator" if re.search(r"[/\\]", name)
               else "is '.' or '..'" if name in (".", "..") else "starts with '.' (hidden)" if name.startswith(".")
               else "contains control characters" if any(ord(c) < 32 for c in name)
               else "is longer than 120 bytes" if len(name.encode("utf-8", "surrogateescape")) > 120 else "")
    if problem:
        raise ConfigError(f"run name {name!r} {problem}; a name is a single folder name such as sasrec-beauty "
                          "(choose the parent folder with --output-dir)")
    return name


def clean_leftovers(parent: Path) -> None:
    """Delete what processes of this machine left when they were killed: hidden temporary folders and files,
    and folders they claimed but never filled. Entries of live processes (which may vanish meanwhile) are kept."""
    temporary, claim = f"{TMP_MARK}{host_name()}-", f"{CLAIM_MARK}{host_name()}-"
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return
    for entry in entries:
        with contextlib.suppress(OSError):  # another process renamed or removed its own entry meanwhile
            if entry.name.startswith(".") and temporary in entry.name:
                if not process_alive(_pid_after(entry.name, temporary)):
                    shutil.rmtree(entry.path) if entry.is_dir(follow_symlinks=False) else os.remove(entry.path)
                    log.warning("removed %s, left by an interrupted process", entry.path)
            elif entry.is_dir(follow_symlinks=False):
                inside = os.listdir(entry.path)
                if len(inside) == 1 and inside[0].startswith(claim) and not process_alive(
                        _pid_after(inside[0], claim)):
                    os.remove(os.path.join(entry.path, inside[0]))
                    os.rmdir(entry.path)
                    log.warning("freed %s, claimed by an interrupted process and never written", entry.path)


def _pid_after(name: str, prefix: str) -> int:
    rest = name.rsplit(prefix, 1)[-1].split("-", 1)[0]
    return int(rest) if rest.isdigit() else -1


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (unknown ids count as alive: not ours to judge)."""
    if pid <= 0:
        return True  # not ours to judge
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_atomically(path: Path, write: Callable[[Path], None]) -> Path:
    """Let `write` fill a temporary sibling directory, then rename it to `path`.

    `path` must not exist, or be the folder `unique_run_dir` claimed for this process; a crash leaves no
    half-written run, and a name taken meanwhile by another process is an error, never an overwrite.
    """
    path = Path(path)
    claimed = is_claimed(path)
    if (path.exists() or path.is_symlink()) and not claimed:
        raise RunError(f"{path} already exists; choose another name (runs are never overwritten)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path)
    tmp.mkdir()
    ours = claimed
    try:
        write(tmp)
        normal_permissions(tmp)
        if not claimed:
            try:
                path.mkdir()
            except FileExistsError:
                raise RunError(f"{path} was created by another process meanwhile; runs are never "
                               "overwritten, so save under another name") from None
            ours = True
        release_claim(path)
        os.rename(tmp, path)  # onto our own empty folder
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if ours:  # free the name again
            release_claim(path)
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    return path


# ---------------------------------------------------------------- writing


def save_run(run: Run, path: str | Path) -> Path:
    """Write `run` to a new directory `path` (or the folder `unique_run_dir` claimed)."""
    run.path = write_atomically(Path(path), lambda tmp: write_run_files(run, tmp))
    return run.path


def write_run_files(run: Run, folder: Path) -> None:
    """Every file of a finished run, each replaced in one step, metrics.json last (it marks the run finished)."""
    rec = run.recommender
    save = _atomic(folder)
    save(WEIGHTS, lambda tmp: save_file(cpu_state(rec.model), tmp, metadata={"model": run.config.model.name}))
    save(ID_MAPS, lambda tmp: Path(tmp).write_text(json.dumps({"users": rec.user_map.to_dict(),
                                                               "items": rec.item_map.to_dict()})))
    save(HISTORIES, lambda tmp: _save_npz(tmp, offsets=rec.histories.offsets, items=rec.histories.items))
    save(CATALOG, lambda tmp: Path(tmp).write_text(json.dumps(rec.catalog.to_dict())))
    if isinstance(rec.model, RetrievalAugmented):
        rec.model.save_extras(folder)
    save(CONFIG, lambda tmp: write_yaml(run.config.to_dict(), tmp))
    write_records(folder, run.metrics, run.history)


def _atomic(folder: Path) -> Callable[[str, Callable[[str], None]], None]:
    return lambda name, write: write_file_atomically(folder / name, write)


def _save_npz(tmp: str, **arrays: np.ndarray) -> None:
    with open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
        np.savez_compressed(f, **arrays)


def write_records(folder: Path, metrics: dict, history: list[dict]) -> None:
    """history.jsonl, then metrics.json (refusing NaN, which is not JSON), each atomically."""
    write_text_atomically(folder / HISTORY, "".join(dumps_json(r, str(folder / HISTORY), None) + "\n"
                                                    for r in history))
    write_text_atomically(folder / METRICS, dumps_json(metrics, str(folder / METRICS)))


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
        _atomic(tmp)(files[1], lambda name: save_file(cpu_state(module), name))
        write_records(tmp, metrics, history)

    return write_atomically(path, write)


# ---------------------------------------------------------------- reading


def run_status(path: Path) -> str:
    """"finished", "in progress" (a training run still writing or interrupted) or "missing"."""
    if (path / METRICS).is_file() and (path / CONFIG).is_file():
        return "finished"
    if (path / CONFIG).is_file():
        return "in progress"
    return "missing"


def resume_hint(path: Path) -> str:
    """How to continue the in-progress run at `path`, and from which epoch."""
    info = checkpoint_info(path)
    if info is None:
        return (f"{path} is a training run that has not finished and has no checkpoint yet (still starting, or "
                "stopped before its first checkpoint); wait for it, or delete it and start again")
    return (f"{path} is a training run that has not finished (its last checkpoint is epoch {info['epoch']} of "
            f"{info['epochs']}); continue it with `seqrec train --resume {path}`")


def load_run(path: str | Path, device: str = "cpu", rebuild_index: bool = False) -> Run:
    """Restore a run directory written by `save_run`; clear errors for missing, unfinished, foreign or damaged runs.

    `rebuild_index` re-indexes a retrieval run's stored knowledge base when its index file is damaged.
    """
    path = Path(path)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    missing = [f for f in REQUIRED if not (path / f).exists()]
    if missing and run_status(path) == "in progress":
        raise RunError(resume_hint(path))
    if missing:
        raise RunError(f"{path} is not a complete seqrec run (missing {', '.join(missing)})")
    config = read_run_config(path)
    user_map, item_map = _read_id_maps(path / ID_MAPS)
    model = build_model(config.model, len(item_map))
    if config.retrieval.enabled:
        model = RetrievalAugmented(model, config.retrieval)
    _load_weights(model, path / WEIGHTS, config.model.name)
    model.to(device).eval()
    if isinstance(model, RetrievalAugmented):
        model.load_extras(path, rebuild_index=rebuild_index)
    histories = _read_histories(path / HISTORIES, len(user_map), len(item_map))
    catalog = _read_catalog(path / CATALOG, len(item_map))
    metrics, history = read_records(path)
    recommender = Recommender(model, user_map, item_map, histories, catalog, mask_seen=config.eval.mask_seen)
    return Run(config, recommender, metrics, history, path)


def read_run_config(path: Path) -> ExperimentConfig:
    """The experiment config of a run directory; a damaged one is a `RunError` naming the file."""
    try:
        return ExperimentConfig.from_dict(read_yaml(path / CONFIG))
    except ConfigError as exc:
        raise RunError(f"{path / CONFIG}: {exc}") from None


def _damaged(file: Path, detail: str) -> RunError:
    return RunError(f"{file} is damaged ({detail}); restore it from a backup or train the run again")


def _read_id_maps(file: Path) -> tuple[IdMap, IdMap]:
    maps = read_json(file, "restore it from a backup or train the run again")
    try:
        return IdMap.from_dict(maps["users"]), IdMap.from_dict(maps["items"])
    except (KeyError, TypeError, ValueError, SeqrecError) as exc:
        raise _damaged(file, f"expected users and items maps: {exc}") from None


def _read_histories(file: Path, num_users: int, num_items: int) -> Sequences:
    try:
        with np.load(file) as arrays:
            offsets, items = arrays["offsets"], arrays["items"]
    except Exception as exc:  # noqa: BLE001 - a damaged zip raises BadZipFile, EOFError, OSError, ValueError, ...
        raise _damaged(file, f"{type(exc).__name__}: {str(exc)[:80]}") from None
    ok = (offsets.ndim == 1 and items.ndim == 1 and len(offsets) == num_users + 1 and offsets[0] == 0
          and offsets[-1] == len(items) and bool(np.all(np.diff(offsets) >= 0))
          and (len(items) == 0 or 1 <= items.min() and items.max() <= num_items))
    if not ok or not np.issubdtype(offsets.dtype, np.integer) or not np.issubdtype(items.dtype, np.integer):
        raise _damaged(file, f"histories do not fit {num_users} users and {num_items} items")
    return Sequences(offsets.astype(np.int64), items.astype(np.int64))


def _read_catalog(file: Path, num_items: int) -> ItemCatalog:
    if not file.exists():
        return ItemCatalog.empty(num_items)
    try:
        catalog = ItemCatalog.from_dict(read_json(file, "restore it from a backup or delete it (titles are lost)"))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _damaged(file, f"{type(exc).__name__}: {exc}") from None
    sizes = [len(catalog.titles or [None] * (num_items + 1))] + [len(v) for v in catalog.attributes.values()]
    if catalog.num_items != num_items or any(n != num_items + 1 for n in sizes):
        raise _damaged(file, f"it describes {catalog.num_items} items, the run has {num_items}")
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


def read_records(folder: Path) -> tuple[dict, list[dict]]:
    """metrics.json and history.jsonl of a run; empty when absent, a `RunError` naming the file when damaged."""
    fix = "restore it from a backup or run this stage again"
    metrics = read_json(folder / METRICS, fix) if (folder / METRICS).exists() else {}
    history = read_json_lines(folder / HISTORY, fix) if (folder / HISTORY).exists() else []
    if not isinstance(metrics, dict):
        raise _damaged(folder / METRICS, "expected a JSON object")
    if not all(isinstance(r, dict) for r in history):
        raise _damaged(folder / HISTORY, "expected one JSON object per line")
    return metrics, history

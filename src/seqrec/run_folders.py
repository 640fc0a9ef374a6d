"""Run folders of every kind: names that are names, race-free claimed folders, atomic writes, metrics and history.

Each kind of run (see `seqrec.run_kinds`) writes its own files; this module gives them a folder that is never
half-written or shared, and reads and writes the records every run has: history.jsonl and metrics.json.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from seqrec.errors import ConfigError, RunError
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

log = logging.getLogger(__name__)

CONFIG, METRICS, HISTORY = "config.yaml", "metrics.json", "history.jsonl"
CLAIM_MARK = ".seqrec-claim-"  # inside a folder claimed for a run that is not written yet
DATA_FINGERPRINT = "data_fingerprint"  # key of metrics.json's `protocol`: the hash of the data a run trained on


# ---------------------------------------------------------------- names and folders


def check_output_dir(parent: str | Path) -> Path:
    """Make sure runs can be written under `parent` (created if missing) before any long work starts."""
    parent = Path(parent)
    if parent.is_symlink() and not parent.exists():
        raise RunError(f"output folder {parent} is a broken symbolic link (to {os.readlink(parent)}); "
                       "fix the link or choose another --out")
    if parent.exists() and not parent.is_dir():
        raise RunError(f"output folder {parent} is a file, not a folder; choose another --out")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = temp_sibling(parent / "write-check")
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise RunError(f"cannot write runs into {parent} ({exc.strerror or exc}); choose another --out "
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
                          "(choose the parent folder with --out)")
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


# ---------------------------------------------------------------- files every run has


def atomic(folder: Path) -> Callable[[str, Callable[[str], None]], None]:
    """`save(name, write)`: let `write` fill a temporary file that then replaces `folder / name` in one step."""
    return lambda name, write: write_file_atomically(folder / name, write)


def write_records(folder: Path, metrics: dict, history: list[dict]) -> None:
    """history.jsonl, then metrics.json (refusing NaN, which is not JSON), each atomically."""
    write_text_atomically(folder / HISTORY, "".join(dumps_json(r, str(folder / HISTORY), None) + "\n"
                                                    for r in history))
    write_text_atomically(folder / METRICS, dumps_json(metrics, str(folder / METRICS)))


def cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A module's weights as contiguous CPU tensors, ready for safetensors."""
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def damaged(file: Path, detail: str) -> RunError:
    """The error for a run file that exists but cannot be used."""
    return RunError(f"{file} is damaged ({detail}); restore it from a backup or train the run again")


def read_records(folder: Path) -> tuple[dict, list[dict]]:
    """metrics.json and history.jsonl of a run; empty when absent, a `RunError` naming the file when damaged."""
    fix = "restore it from a backup or run this stage again"
    metrics = read_json(folder / METRICS, fix) if (folder / METRICS).exists() else {}
    history = read_json_lines(folder / HISTORY, fix) if (folder / HISTORY).exists() else []
    if not isinstance(metrics, dict):
        raise damaged(folder / METRICS, "expected a JSON object")
    if not all(isinstance(r, dict) for r in history):
        raise damaged(folder / HISTORY, "expected one JSON object per line")
    return metrics, history


def recorded_fingerprint(metrics: dict) -> str | None:
    """The data fingerprint a run's metrics record in their protocol; None for runs written before it existed."""
    protocol = metrics.get("protocol")
    value = protocol.get(DATA_FINGERPRINT) if isinstance(protocol, dict) else None
    return value if isinstance(value, str) and value else None


def run_status(path: Path) -> str:
    """"finished", "in progress" (a training run still writing or interrupted) or "missing"."""
    if (path / METRICS).is_file() and (path / CONFIG).is_file():
        return "finished"
    if (path / CONFIG).is_file():
        return "in progress"
    return "missing"

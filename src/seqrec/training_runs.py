"""A training run directory from start to finish: claimed and given its config before any data is read,
checkpointed while training, finished in place (metrics.json last), kept for `--resume` when interrupted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import yaml
from safetensors.torch import save_file

from seqrec.data.fingerprint import short
from seqrec.errors import DataError, Interrupted, NonFiniteError, RunError
from seqrec.experiment import ExperimentConfig
from seqrec.files import current_umask, host_name, write_text_atomically
from seqrec.run_kinds import with_kind
from seqrec.runs import (
    CONFIG,
    Run,
    check_run_name,
    clean_leftovers,
    cpu_state,
    process_alive,
    read_run_config,
    release_claim,
    resume_hint,
    run_status,
    unique_run_dir,
    write_run_files,
)
from seqrec.training.checkpoint import CHECKPOINT_INFO, Checkpoint, checkpoint_info

LOCK = ".seqrec-lock"  # inside a run folder while a process trains it: "<host> <pid>"
_created: dict[Path, list[Path]] = {}  # run folder -> the parent folders this process made for it, innermost first


def start_run_dir(config: ExperimentConfig, output_dir: str | Path) -> Path:
    """Claim a new run folder under `output_dir` and write the config into it (fails in the first second)."""
    check_run_name(config.run_name)
    made = _make_parents(Path(output_dir))
    target = unique_run_dir(output_dir, config.run_name)
    _created[target] = made
    config.name = target.name
    write_text_atomically(target / CONFIG, yaml.safe_dump(with_kind(config.kind, config.to_dict()), sort_keys=False))
    release_claim(target)  # from now on config.yaml marks it as a run in progress
    return target


def _make_parents(folder: Path) -> list[Path]:
    """Create the missing folders down to `folder`; the ones this process created, innermost first."""
    made = []
    for parent in reversed([folder, *folder.parents]):
        try:
            parent.mkdir()
            made.append(parent)
        except FileExistsError:
            continue
        except OSError:
            break  # check_output_dir reports it
    return made[::-1]


def resumable_config(path: str | Path) -> ExperimentConfig:
    """The config of an unfinished training run with a checkpoint at `path`; clear errors for anything else."""
    path = Path(path)
    status = run_status(path) if path.is_dir() else "missing"
    if status == "missing":
        raise RunError(f"{path} is not a training run to resume (no {CONFIG}); start one with `seqrec train CONFIG`")
    if status == "finished":
        raise RunError(f"{path} has already finished (metrics.json is written); nothing to resume")
    if checkpoint_info(path) is None:
        raise RunError(f"{path} has no training checkpoint ({CHECKPOINT_INFO}), so there is nothing to resume: it "
                       "is not a seqrec training run, or it stopped before its first checkpoint; start a new run with "
                       "`seqrec train CONFIG`")
    return read_run_config(path)


def check_resumed_data(run_dir: Path, fingerprint: str) -> None:
    """Refuse to resume `run_dir` on other data than its checkpoint was trained on (checkpoints written before
    fingerprints were recorded are resumed unchecked)."""
    recorded = (checkpoint_info(run_dir) or {}).get("data_fingerprint")
    if isinstance(recorded, str) and recorded != fingerprint:
        raise DataError(f"{run_dir} started training on other data than its data source holds now (data "
                        f"fingerprint {short(recorded)} in its checkpoint, {short(fingerprint)} now): the data "
                        "changed since the run started; restore it to resume, or start a new run")


@contextlib.contextmanager
def training_lock(run_dir: Path | None) -> Iterator[None]:
    """Hold the run folder's lock while training it, so two processes never train the same run (a lock left by a
    process of this machine that no longer runs is taken over)."""
    if run_dir is None:
        yield
        return
    mine = f"{host_name()} {os.getpid()}"
    file = run_dir / LOCK
    while True:
        try:
            fd = os.open(file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            break
        except FileExistsError:
            host, _, pid = file.read_text().partition(" ") if file.exists() else ("", "", "")
            if host == host_name() and pid.strip().isdigit() and not process_alive(int(pid)):
                file.unlink(missing_ok=True)  # stale: its process is gone
                continue
            raise RunError(f"{run_dir} is being trained by process {pid.strip() or '?'} on {host or '?'}; wait "
                           f"for it to finish, or delete {file} if no such process is running") from None
    os.write(fd, mine.encode())
    os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if file.read_text() == mine:
                file.unlink()


@contextlib.contextmanager
def guarded(run_dir: Path | None, fresh: bool) -> Iterator[None]:
    """Turn an interruption into a message that says how to continue; drop a fresh run folder that holds
    nothing worth keeping (no checkpoint yet, or training that diverged). A finished run is never dropped."""
    try:
        yield
    except KeyboardInterrupt:
        if run_dir is None:
            raise
        if run_status(run_dir) == "finished":
            raise Interrupted(f"interrupted after the run was written to {run_dir}") from None
        if fresh and checkpoint_info(run_dir) is None:
            discard(run_dir)
            raise Interrupted("interrupted before the first checkpoint; no run directory was written") from None
        raise Interrupted(f"interrupted; {resume_hint(run_dir)}") from None
    except BaseException as exc:
        if run_dir is not None and fresh and run_status(run_dir) != "finished" and (
                checkpoint_info(run_dir) is None or isinstance(exc, NonFiniteError)):
            discard(run_dir)
        raise


def discard(run_dir: Path) -> None:
    """Remove a fresh run folder, and the parent folders this process made for it when they are left empty."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in _created.pop(run_dir, []):
        with contextlib.suppress(OSError):
            parent.rmdir()


def finish_run_dir(run: Run, run_dir: Path, checkpoint: Checkpoint) -> Path:
    """Write the finished run's files into its folder, then drop the checkpoint.

    A failing write (a full disk) keeps the trained weights and says where: the checkpoint when there is one,
    else a rescue file beside the run folder or in the temporary folder.
    """
    clean_leftovers(run_dir)  # e.g. a checkpoint write cut short by SIGKILL
    try:
        write_run_files(run, run_dir)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if checkpoint.every and checkpoint.file.exists():
            raise RunError(f"could not write the finished run into {run_dir} ({reason}); the trained model is kept "
                           f"in {checkpoint.file}: make room, then `seqrec train --resume {run_dir}` writes the run "
                           "without training again") from None
        rescued = rescue_weights(run, run_dir)
        kept = f"the trained weights are kept in {rescued}" if rescued else "the weights could not be saved anywhere"
        raise RunError(f"could not write the finished run into {run_dir} ({reason}); {kept}") from None
    checkpoint.remove()
    run.path = run_dir
    return run_dir


def rescue_weights(run: Run, run_dir: Path) -> Path | None:
    """Save the best weights wherever there is room: beside the run folder (which is not kept), else in the
    temporary folder."""
    for folder in (run_dir.parent, Path(tempfile.gettempdir())):
        target = folder / f"rescued-{run_dir.name}-{os.getpid()}.safetensors"
        try:
            save_file(cpu_state(run.model), str(target))
            os.chmod(target, 0o666 & ~current_umask())  # safetensors creates it as 0600
            return target
        except OSError:
            target.unlink(missing_ok=True)
    return None

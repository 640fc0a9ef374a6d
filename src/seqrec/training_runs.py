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

from safetensors.torch import save_file

from seqrec.config import write_yaml
from seqrec.errors import Interrupted, NonFiniteError, RunError
from seqrec.experiment import ExperimentConfig
from seqrec.runs import (
    CONFIG,
    Run,
    check_run_name,
    cpu_state,
    read_run_config,
    release_claim,
    resume_hint,
    run_status,
    unique_run_dir,
    write_run_files,
)
from seqrec.training.checkpoint import Checkpoint, checkpoint_info

_created: dict[Path, list[Path]] = {}  # run folder -> the parent folders made for it, innermost first


def start_run_dir(config: ExperimentConfig, output_dir: str | Path) -> Path:
    """Claim a new run folder under `output_dir` and write the config into it (fails in the first second)."""
    check_run_name(config.run_name)
    missing = [p for p in (Path(output_dir), *Path(output_dir).parents) if not p.exists()]
    target = unique_run_dir(output_dir, config.run_name)
    _created[target] = missing
    config.name = target.name
    write_yaml(config.to_dict(), target / CONFIG)
    release_claim(target)  # from now on config.yaml marks it as a run in progress
    return target


def resumable_config(path: str | Path) -> ExperimentConfig:
    """The config of an unfinished training run at `path`; clear errors for anything else."""
    path = Path(path)
    status = run_status(path) if path.is_dir() else "missing"
    if status == "missing":
        raise RunError(f"{path} is not a training run to resume (no {CONFIG}); start one with `seqrec train CONFIG`")
    if status == "finished":
        raise RunError(f"{path} has already finished (metrics.json is written); nothing to resume")
    return read_run_config(path)


@contextlib.contextmanager
def guarded(run_dir: Path | None, fresh: bool) -> Iterator[None]:
    """Turn an interruption into a message that says how to continue; drop a fresh run folder that holds
    nothing worth keeping (no checkpoint yet, or training that diverged)."""
    try:
        yield
    except KeyboardInterrupt:
        if run_dir is None:
            raise
        if fresh and checkpoint_info(run_dir) is None:
            discard(run_dir)
            raise Interrupted("interrupted before the first checkpoint; no run directory was written") from None
        raise Interrupted(f"interrupted; {resume_hint(run_dir)}") from None
    except BaseException as exc:
        worthless = run_dir is not None and (checkpoint_info(run_dir) is None or isinstance(exc, NonFiniteError))
        if fresh and worthless:
            discard(run_dir)  # type: ignore[arg-type]
        raise


def discard(run_dir: Path) -> None:
    """Remove a fresh run folder, and the parent folders that were made for it when they are left empty."""
    shutil.rmtree(run_dir, ignore_errors=True)
    for parent in _created.pop(run_dir, []):
        with contextlib.suppress(OSError):
            parent.rmdir()


def finish_run_dir(run: Run, run_dir: Path, checkpoint: Checkpoint) -> Path:
    """Write the finished run's files into its folder, then drop the checkpoint.

    A failing write (a full disk) keeps the trained weights and says where: the checkpoint when there is one,
    else a rescue file beside the run folder or in the temporary folder.
    """
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
            return target
        except OSError:
            target.unlink(missing_ok=True)
    return None

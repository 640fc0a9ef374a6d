"""LLM stage run directories: config.yaml (with `stage`), metrics.json, history.jsonl and the stage's own files,
written atomically like every run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrec.config import read_yaml, write_yaml
from seqrec.errors import RunError
from seqrec.runs import CONFIG, read_records, write_atomically, write_records

STAGES = ("sketch", "grpo", "align", "evaluate")
MODEL_DIR, ADAPTER_DIR = "model", "adapter"


@dataclass
class StageRun:
    path: Path
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stage(self) -> str:
        return str(self.config["stage"])


def save_stage(out: Path, stage: str, config: dict[str, Any], metrics: dict[str, Any],
               history: list[dict[str, Any]] | None = None, files: Callable[[Path], None] | None = None) -> Path:
    """Write a new run directory `out` (never overwrites) for `stage`."""
    def write(tmp: Path) -> None:
        write_yaml({"stage": stage, **config}, tmp / CONFIG)
        write_records(tmp, metrics, history or [])
        if files is not None:
            files(tmp)

    return write_atomically(Path(out), write)


def read_stage(path: str | Path, *stages: str) -> StageRun:
    """A stage run directory; `stages` restricts which kinds are accepted."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise RunError(f"{path} is not a run directory ({CONFIG} missing)")
    config = read_yaml(path / CONFIG)
    stage = config.get("stage")
    if stage not in STAGES or (stages and stage not in stages):
        wanted = " or ".join(stages or STAGES)
        raise RunError(f"{path} is a {stage or 'sequential-model'} run, not an LLM {wanted} run")
    metrics, history = read_records(path)
    return StageRun(path, config, metrics, history)


def is_stage_run(path: str | Path) -> bool:
    path = Path(path)
    return (path / CONFIG).is_file() and read_yaml(path / CONFIG).get("stage") in STAGES

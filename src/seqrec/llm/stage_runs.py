"""LLM stage run directories: config.yaml (with `stage`), metrics.json, history.jsonl and the stage's own files,
written atomically like every run; one run kind per stage (`llm-sketch`, `llm-grpo`, `llm-align`, `llm-evaluate`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqrec.config import read_yaml
from seqrec.errors import RunError
from seqrec.run_folders import CONFIG, read_records, write_atomically
from seqrec.run_kinds import KIND_KEY, register_kind, write_run, yaml_mapping

STAGES = ("sketch", "grpo", "align", "evaluate")
MODEL_DIR, ADAPTER_DIR = "model", "adapter"


@dataclass
class StageRun:
    path: Path | None
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stage(self) -> str:
        return str(self.config["stage"])

    @property
    def kind(self) -> str:
        return f"llm-{self.stage}"


def save_stage(out: Path, stage: str, config: dict[str, Any], metrics: dict[str, Any],
               history: list[dict[str, Any]] | None = None, files: Callable[[Path], None] | None = None) -> Path:
    """Write a new run directory `out` (never overwrites) for `stage`; `files` writes the stage's own files."""
    run = StageRun(None, {"stage": stage, **config}, metrics, history or [])

    def write(tmp: Path) -> None:
        if files is not None:
            files(tmp)
        write_run(run, tmp)

    run.path = write_atomically(Path(out), write)
    return run.path


def read_stage(path: str | Path, *stages: str) -> StageRun:
    """A stage run directory; `stages` restricts which kinds are accepted."""
    path = Path(path)
    if not (path / CONFIG).is_file():
        raise RunError(f"{path} is not a run directory ({CONFIG} missing)")
    config = {k: v for k, v in read_yaml(path / CONFIG).items() if k != KIND_KEY}
    stage = config.get("stage")
    if stage not in STAGES or (stages and stage not in stages):
        wanted = " or ".join(stages or STAGES)
        raise RunError(f"{path} is a {stage or 'sequential-model'} run, not an LLM {wanted} run")
    metrics, history = read_records(path)
    return StageRun(path, config, metrics, history)


def is_stage_run(path: str | Path) -> bool:
    path = Path(path)
    return (path / CONFIG).is_file() and read_yaml(path / CONFIG).get("stage") in STAGES


class StageKind:
    """The runs of one LLM stage: config.yaml with its `stage`, and the files the stage writes itself."""

    settings_file = CONFIG
    extends: str | None = None
    label = ""

    def __init__(self, stage: str) -> None:
        self.stage, self.name = stage, f"llm-{stage}"

    def recognise(self, path: Path) -> bool:
        return yaml_mapping(path / CONFIG).get("stage") == self.stage

    def save(self, run: StageRun, folder: Path) -> dict[str, Any]:
        return {"stage": run.stage, **run.config}

    def load(self, path: Path, device: str = "cpu", **options: Any) -> StageRun:
        return read_stage(path, self.stage)


for _stage in STAGES:
    register_kind(StageKind(_stage))

"""Distilled runs: trained with the profile loss, saved and loaded as plain model runs (the profile head is
training-only and never saved)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqrec.run_folders import CONFIG
from seqrec.run_kinds import RUN_KINDS, register_kind, yaml_mapping


class DistilledKind:
    """A model run whose config.yaml has a `distill` section."""

    name = "distilled"
    settings_file = CONFIG
    extends: str | None = "base"
    label = ""
    recommends = True

    def recognise(self, path: Path) -> bool:
        sections = yaml_mapping(path / CONFIG)
        return "distill" in sections and "retrieval" not in sections  # distilled and augmented: a retrieval run

    def save(self, run: Any, folder: Path) -> dict[str, Any]:
        return RUN_KINDS["base"].save(run, folder)

    def load(self, path: Path, device: str = "cpu", **options: Any) -> Any:
        return RUN_KINDS["base"].load(path, device=device, **options)


register_kind(DistilledKind())

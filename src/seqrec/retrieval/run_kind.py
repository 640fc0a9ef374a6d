"""Retrieval-augmented runs: the model files of the base encoder wrapped with its retriever, plus the knowledge
base (`RetrievalAugmented.save_extras`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from seqrec.models.base import SequentialEncoder
from seqrec.retrieval.augmented import RetrievalAugmented
from seqrec.run_folders import CONFIG
from seqrec.run_kinds import RUN_KINDS, register_kind, yaml_mapping


class RetrievalKind:
    """A model run whose config.yaml has a `retrieval` section."""

    name = "retrieval"
    settings_file = CONFIG
    extends: str | None = "base"
    label = "ftragrec"
    recommends = True

    def recognise(self, path: Path) -> bool:
        return "retrieval" in yaml_mapping(path / CONFIG)

    def save(self, run: Any, folder: Path) -> dict[str, Any]:
        settings = RUN_KINDS["base"].save(run, folder)
        run.model.save_extras(folder)
        return settings

    def load(self, path: Path, device: str = "cpu", rebuild_index: bool = False, **options: Any) -> Any:
        """`rebuild_index` re-indexes the stored knowledge base when its index file is damaged."""
        run = RUN_KINDS["base"].load(path, device=device, wrap=augment, **options)
        run.model.load_extras(path, rebuild_index=rebuild_index)
        return run


def augment(model: SequentialEncoder, config: Any) -> RetrievalAugmented:
    """The saved model: `model` wrapped with the retriever that `config.retrieval` describes."""
    return RetrievalAugmented(model, config.retrieval)


register_kind(RetrievalKind())

"""Build a retrieval-augmented model from a saved base run, refusing runs that do not fit."""

from __future__ import annotations

from pathlib import Path

from seqrec.data.fingerprint import data_fingerprint, short
from seqrec.data.splits import SplitData
from seqrec.errors import DataError, RunError
from seqrec.models.base import ModelConfig
from seqrec.retrieval.augmented import RetrievalAugmented
from seqrec.retrieval.config import RetrievalConfig
from seqrec.run_folders import recorded_fingerprint
from seqrec.run_kinds import is_kind_of, load_any

BASE_MODELS = ("duorec", "sasrec")


def from_base_run(config: RetrievalConfig, model: ModelConfig, data: SplitData) -> RetrievalAugmented:
    """The base run's trained encoder wrapped with a fresh retriever.

    `model` is the experiment's model section: its name and hidden size must be the base run's.
    """
    path = Path(config.base_run)
    base = load_any(path)
    where = f"retrieval.base_run={path}"
    if not is_kind_of(base.kind, "base"):
        raise RunError(f"{where} is a {base.kind} run; retrieval augments the run of a trained model")
    base_model = base.config.model
    if base_model.name not in BASE_MODELS:
        raise RunError(f"{where} is a {base_model.name} run; retrieval augments {' or '.join(BASE_MODELS)} runs")
    if (model.name, model.hidden) != (base_model.name, base_model.hidden):
        raise RunError(f"{where} is a {base_model.name} run with hidden {base_model.hidden}, but the model section "
                       f"says {model.name} with hidden {model.hidden}; point base_run at a matching run or fix "
                       "the model section")
    if base.recommender.item_map != data.item_map:
        raise RunError(f"{where} was trained on {base.config.data.name!r} with other item ids than the dataset "
                       f"{data.name!r}; train the base run on the same data")
    recorded, now = recorded_fingerprint(base.metrics), data_fingerprint(data)
    if recorded is not None and recorded != now:
        raise DataError(f"{where} was trained on other data than the dataset {data.name!r} holds now (data "
                        f"fingerprint {short(recorded)} at training, {short(now)} now: the file, filters or split "
                        "changed); fine-tune on the data the base run was trained on, or train a new base run")
    return RetrievalAugmented(base.model, config)

"""An experiment = data + model + training + evaluation settings, as saved in every run directory."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from seqrec.config import from_dict, to_dict
from seqrec.data.config import DataConfig
from seqrec.distill.config import DistillConfig
from seqrec.errors import ConfigError, suggest
from seqrec.models.base import MODEL_REGISTRY, ModelConfig
from seqrec.models.sasrec import SASRecConfig
from seqrec.retrieval.config import RetrievalConfig
from seqrec.run_kinds import RUN_KINDS
from seqrec.training.config import EvalConfig, TrainConfig

SECTIONS = ("name", "data", "model", "train", "eval", "distill", "retrieval")
RECORDED = ("kind",)  # written into a run's config.yaml; read back, it is ignored (it follows from the sections)


@dataclass
class ExperimentConfig:
    """Everything needed to reproduce a run. `model.name` selects the model config class."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=SASRecConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    retrieval: RetrievalConfig = field(default_factory=RetrievalConfig)
    name: str = ""  # run name; default "<model>-<data>"

    @property
    def kind(self) -> str:
        """The kind of run this experiment trains (see `seqrec.run_kinds`)."""
        return "retrieval" if self.retrieval.enabled else "distilled" if self.distill.enabled else "base"

    @property
    def run_name(self) -> str:
        """`name`, or `<label>-<data>`, where the label is the run kind's (default: the model's name)."""
        kind = RUN_KINDS.get(self.kind)
        return self.name or f"{kind.label if kind and kind.label else self.model.name}-{self.data.name}"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        unknown = set(data) - set(SECTIONS) - set(RECORDED)
        if unknown:
            raise ConfigError(f"unknown config section {sorted(unknown)[0]!r}; valid sections: {suggest(SECTIONS)}")
        return cls(
            data=from_dict(DataConfig, data.get("data"), "data."),
            model=model_config_from_dict(data.get("model") or {}),
            train=from_dict(TrainConfig, data.get("train"), "train."),
            eval=from_dict(EvalConfig, data.get("eval"), "eval."),
            distill=from_dict(DistillConfig, data.get("distill"), "distill."),
            retrieval=from_dict(RetrievalConfig, data.get("retrieval"), "retrieval."),
            name=str(data.get("name") or ""),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.run_name, "data": to_dict(self.data), "model": to_dict(self.model),
                "train": to_dict(self.train), "eval": to_dict(self.eval),
                **({"distill": to_dict(self.distill)} if self.distill.enabled else {}),
                **({"retrieval": to_dict(self.retrieval)} if self.retrieval.enabled else {})}


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """Pick the config class from `name` (default sasrec) and validate the rest of the keys against it."""
    if not isinstance(data, dict):
        raise ConfigError(f"model must be a mapping, got {type(data).__name__}")
    data = dict(data)
    name = data.pop("name", "sasrec")
    if name not in MODEL_REGISTRY:
        raise ConfigError(f"unknown model {name!r}; valid models: {suggest(MODEL_REGISTRY)}")
    config_cls, _ = MODEL_REGISTRY[name]
    return from_dict(config_cls, data, "model.")

"""The encoder seam every model implements, and the model registry."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from seqrec.config import check_finite
from seqrec.errors import ConfigError
from seqrec.models.losses import Encode, ItemLoss, LossSum, next_item_loss

if TYPE_CHECKING:
    from seqrec.data.catalog import ItemCatalog
    from seqrec.models.terms import LossTerm

Objective = Literal["next_item", "cloze"]


@dataclass
class ModelConfig:
    """Fields every model config shares; each model subclasses this with its own knobs."""

    name: ClassVar[str] = ""
    objective: ClassVar[Objective] = "next_item"
    max_len: int = 50
    hidden: int = 64
    dropout: float = 0.2
    item_features: list[str] = field(default_factory=list)  # catalogue attributes embedded beside the item id
    feature_combine: Literal["sum", "concat"] = "sum"  # id + features, or a projection of both side by side

    def __post_init__(self) -> None:
        check_finite(self, "model")
        self.item_features = list(self.item_features)
        if len(set(self.item_features)) < len(self.item_features) or not all(
                isinstance(n, str) and n for n in self.item_features):
            raise ConfigError(f"model.item_features must be distinct attribute names, got {self.item_features}")
        if self.feature_combine not in ("sum", "concat"):
            raise ConfigError(f"model.feature_combine must be sum or concat, got {self.feature_combine!r}")
        if self.max_len < 2:
            raise ConfigError(f"model.max_len must be >= 2, got {self.max_len}")
        if self.hidden < 1:
            raise ConfigError(f"model.hidden must be >= 1, got {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class TrainingSet:
    """The trainer's training tensor, for objectives that look beyond the batch (same-target views, retrieval)."""

    users: torch.Tensor  # [U'] internal user ids, one row each
    sequences: torch.Tensor  # [U', W] left-padded training sequences on the device (W = max_len + 1)
    lengths: np.ndarray  # [U'] full training lengths (before truncation to W)
    generator: torch.Generator  # the trainer's seeded generator (CPU)

    def __post_init__(self) -> None:
        self._row_of_user = torch.full((int(self.users.max()) + 1,), -1, dtype=torch.long, device=self.users.device)
        self._row_of_user[self.users] = torch.arange(len(self.users), device=self.users.device)

    def rows_of(self, users: torch.Tensor) -> torch.Tensor:
        """Rows of the training tensor holding `users`.  users [B] -> rows [B]"""
        return self._row_of_user[users]


class SequentialEncoder(nn.Module):
    """Base class: `encode`, `item_embeddings`, `user_vector`; scores are `user_vector @ item_embeddings.T`."""

    config: ModelConfig
    causal: ClassVar[bool] = False  # True when position t's hidden state sees only items up to t

    def __init__(self, config: ModelConfig, num_items: int, catalog: ItemCatalog | None = None) -> None:
        super().__init__()
        self.config = config
        self.num_items = num_items
        if catalog is not None and catalog.num_items != num_items:
            raise ConfigError(f"the item catalogue has {catalog.num_items} items, the model {num_items}")

    @property
    def max_len(self) -> int:
        return self.config.max_len

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, items: torch.Tensor) -> torch.Tensor:
        """Hidden state per position.  items [B, L] (left-padded, 0 = pad) -> [B, L, D]"""
        raise NotImplementedError

    def item_embeddings(self) -> torch.Tensor:
        """Output item vectors, row 0 = padding.  -> [N+1, D]"""
        raise NotImplementedError

    def encode_layers(self, items: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states of every block (0-based), then `encode`'s output last, from one forward pass.

        Layer -1 is always the tensor that scores items; models without blocks return only that.
        items [B, L] -> list of [B, L, D]
        """
        return [self.encode(items)]

    def user_vector(self, items: torch.Tensor) -> torch.Tensor:
        """Representation that scores the next item.  items [B, L] -> [B, D]"""
        return self.encode(items)[:, -1]

    @property
    def training_width(self) -> int:
        """Columns of a training row: max_len inputs, plus the next item for next-item objectives."""
        return self.max_len + (1 if self.config.objective == "next_item" else 0)

    def recommendation_loss(self, batch: torch.Tensor, item_loss: ItemLoss, generator: torch.Generator,
                            encode: Encode) -> tuple[LossSum, torch.Tensor | None]:
        """The model's own objective (next item at every real position here); `encode` runs the encoder.

        batch [B, W] training rows -> (summed loss and its positions, the targets [B, L] of each input position)
        """
        return next_item_loss(self, batch, item_loss=item_loss, encode=encode), batch[:, 1:]

    def loss_terms(self, train: TrainingSet) -> list[LossTerm]:
        """The model's extra training terms (e.g. DuoRec's contrastive loss); none for a plain model."""
        return []

    def parameter_groups(self, lr: float) -> list[dict]:
        """Optimiser parameter groups: every trainable parameter at `lr` (wrappers may use several rates)."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def score(self, items: torch.Tensor) -> torch.Tensor:
        """Scores of every item; padding gets -inf.  items [B, L] -> [B, N+1]"""
        scores = self.user_vector(items) @ self.item_embeddings().T
        scores[:, 0] = float("-inf")
        return scores


MODEL_REGISTRY: dict[str, tuple[type[ModelConfig], type[SequentialEncoder]]] = {}


def register(config_cls: type[ModelConfig], model_cls: type[SequentialEncoder]) -> None:
    MODEL_REGISTRY[config_cls.name] = (config_cls, model_cls)


def build_model(config: ModelConfig, num_items: int, catalog: ItemCatalog | None = None) -> SequentialEncoder:
    """The registered model of `config`; `catalog` supplies the attributes of `model.item_features`."""
    _, model_cls = MODEL_REGISTRY[config.name]
    return model_cls(config, num_items, catalog if config.item_features else None)

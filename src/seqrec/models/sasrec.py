"""SASRec: causal self-attention over the item sequence, tied item embeddings, loss at every position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from seqrec.data.catalog import ItemCatalog
from seqrec.errors import ConfigError
from seqrec.models.base import ModelConfig, Objective, SequentialEncoder, register
from seqrec.models.blocks import SequenceEmbedding, TransformerStack, attention_mask, init_weights
from seqrec.models.features import item_feature_embedding
from seqrec.models.losses import Encode, ItemLoss, LossSum, next_item_loss


@dataclass
class SASRecConfig(ModelConfig):
    """SASRec+ defaults (pre-LN, full-softmax CE at every position, dropout 0.1, positions counted from the oldest
    item): the settings of the measured ml-1m-sas row (docs/benchmarks.md). RecBole style: norm=post,
    activation=gelu, inner=256, loss_positions=last."""

    name: ClassVar[str] = "sasrec"
    objective: ClassVar[Objective] = "next_item"
    max_len: int = 200
    dropout: float = 0.1
    blocks: int = 2
    heads: int = 1
    inner: int = 0  # feed-forward width; 0 = hidden
    norm: Literal["pre", "post"] = "pre"
    activation: Literal["relu", "gelu"] = "relu"
    loss_positions: Literal["all", "last"] = "all"
    positions: Literal["left", "right"] = "left"  # count positions from the oldest or from the newest item

    def __post_init__(self) -> None:
        super().__post_init__()
        check_transformer(self)
        if self.loss_positions not in ("all", "last"):
            raise ConfigError(f"model.loss_positions must be 'all' or 'last', got {self.loss_positions!r}")


def check_transformer(cfg: SASRecConfig) -> None:
    """Validation shared by the transformer configs."""
    if cfg.blocks < 1 or cfg.heads < 1:
        raise ConfigError("model.blocks and model.heads must be >= 1")
    if cfg.hidden % cfg.heads:
        raise ConfigError(f"model.hidden ({cfg.hidden}) must be divisible by model.heads ({cfg.heads})")
    if cfg.norm not in ("pre", "post"):
        raise ConfigError(f"model.norm must be 'pre' or 'post', got {cfg.norm!r}")
    if cfg.positions not in ("left", "right"):
        raise ConfigError(f"model.positions must be 'left' or 'right', got {cfg.positions!r}")
    if cfg.activation not in ("relu", "gelu"):
        raise ConfigError(f"model.activation must be 'relu' or 'gelu', got {cfg.activation!r}")


class SASRec(SequentialEncoder):
    """Self-attentive sequential recommendation (Kang & McAuley, 2018) with SDPA attention."""

    config: SASRecConfig

    causal: ClassVar[bool] = True
    extra_tokens: ClassVar[int] = 0

    def __init__(self, config: SASRecConfig, num_items: int, catalog: ItemCatalog | None = None) -> None:
        super().__init__(config, num_items, catalog)
        c = config
        features = item_feature_embedding(c.item_features, catalog, c.hidden, c.feature_combine)
        self.embed = SequenceEmbedding(num_items, c.max_len, c.hidden, c.dropout,
                                       input_norm=c.norm == "post", extra_tokens=self.extra_tokens,
                                       positions=c.positions, features=features)
        self.stack = TransformerStack(c.blocks, c.hidden, c.heads, c.inner or c.hidden, c.dropout,
                                      c.norm, c.activation)
        init_weights(self)

    def encode(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        return self.stack(self.embed(items), attention_mask(items, causal=self.causal))

    def encode_layers(self, items: torch.Tensor) -> list[torch.Tensor]:  # blocks + 1 x [B, L, D]
        return self.stack.all_layers(self.embed(items), attention_mask(items, causal=self.causal))

    def item_embeddings(self) -> torch.Tensor:  # [N+1, D]
        return self.embed.table()[: self.num_items + 1]

    def recommendation_loss(self, batch: torch.Tensor, item_loss: ItemLoss, generator: torch.Generator,
                            encode: Encode) -> tuple[LossSum, torch.Tensor | None]:
        """Next item at every real position, or at the last one only (`loss_positions: last`)."""
        last_only = self.config.loss_positions == "last"
        return next_item_loss(self, batch, last_only=last_only, item_loss=item_loss, encode=encode), batch[:, 1:]


register(SASRecConfig, SASRec)

"""BERT4Rec: bidirectional self-attention trained with cloze masking; scores from an appended mask token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from seqrec.data.catalog import ItemCatalog
from seqrec.errors import ConfigError
from seqrec.models.base import Objective, register
from seqrec.models.losses import Encode, ItemLoss, LossSum, cloze_loss
from seqrec.models.sasrec import SASRec, SASRecConfig


@dataclass
class BERT4RecConfig(SASRecConfig):
    """BERT4Rec defaults: post-LN, GELU, 2 heads, FFN 4×hidden, 20% of items masked."""

    name: ClassVar[str] = "bert4rec"
    objective: ClassVar[Objective] = "cloze"
    dropout: float = 0.2
    heads: int = 2
    norm: Literal["pre", "post"] = "post"
    positions: Literal["left", "right"] = "right"
    activation: Literal["relu", "gelu"] = "gelu"
    mask_prob: float = 0.2
    mask_last: float = 0.0  # probability of also masking a row's last item (the position recommendations use)

    def __post_init__(self) -> None:
        if self.inner == 0:
            self.inner = 4 * self.hidden
        super().__post_init__()
        if not 0.0 < self.mask_prob < 1.0:
            raise ConfigError(f"model.mask_prob must be in (0, 1), got {self.mask_prob}")
        if not 0.0 <= self.mask_last <= 1.0:
            raise ConfigError(f"model.mask_last must be in [0, 1], got {self.mask_last}")


class BERT4Rec(SASRec):
    """Cloze-trained bidirectional encoder (Sun et al., 2019). The mask token id is N+1."""

    causal: ClassVar[bool] = False
    extra_tokens: ClassVar[int] = 1

    def __init__(self, config: BERT4RecConfig, num_items: int, catalog: ItemCatalog | None = None) -> None:
        super().__init__(config, num_items, catalog)
        self.head = nn.Sequential(nn.Linear(config.hidden, config.hidden), nn.GELU(), nn.LayerNorm(config.hidden))

    config: BERT4RecConfig

    @property
    def mask_token(self) -> int:
        return self.num_items + 1

    def recommendation_loss(self, batch: torch.Tensor, item_loss: ItemLoss, generator: torch.Generator,
                            encode: Encode) -> tuple[LossSum, torch.Tensor | None]:
        """Cloze: predict randomly masked items from both sides (no next-item targets)."""
        c = self.config
        return cloze_loss(self, batch, c.mask_prob, generator, item_loss=item_loss, encode=encode,
                          mask_last=c.mask_last), None

    def encode(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        return self.head(super().encode(items))

    def encode_layers(self, items: torch.Tensor) -> list[torch.Tensor]:  # blocks + 1 x [B, L, D]
        *blocks, last = super().encode_layers(items)
        return [*blocks, self.head(last)]

    def user_vector(self, items: torch.Tensor) -> torch.Tensor:
        """Append the mask token after the history (dropping the oldest slot).  [B, L] -> [B, D]

        A batch trimmed below max_len first gets one more padding column, so only a history that fills all
        max_len slots loses its oldest item (trimming stays exact).
        """
        if items.shape[1] < self.max_len:
            items = torch.cat([torch.zeros_like(items[:, :1]), items], dim=1)
        mask = torch.full_like(items[:, :1], self.mask_token)
        return self.encode(torch.cat([items[:, 1:], mask], dim=1))[:, -1]


register(BERT4RecConfig, BERT4Rec)

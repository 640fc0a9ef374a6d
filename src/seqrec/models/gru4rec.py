"""GRU4Rec: a GRU over the item sequence with tied item embeddings, loss at every position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqrec.data.catalog import ItemCatalog
from seqrec.errors import ConfigError
from seqrec.models.base import ModelConfig, Objective, SequentialEncoder, register
from seqrec.models.blocks import init_weights
from seqrec.models.features import item_feature_embedding

EMBEDDING_STD = 0.3


@dataclass
class GRU4RecConfig(ModelConfig):
    """GRU4Rec with full-softmax CE (Hidasi et al.; the CE variant used by RecBole and Klenitskiy et al.)."""

    name: ClassVar[str] = "gru4rec"
    objective: ClassVar[Objective] = "next_item"
    layers: int = 1
    gru_hidden: int = 0  # GRU state size; 0 = hidden

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.layers < 1:
            raise ConfigError(f"model.layers must be >= 1, got {self.layers}")


class GRU4Rec(SequentialEncoder):
    """GRU over real positions only: left padding is packed away, so padding never changes a user's state."""

    causal: ClassVar[bool] = True

    def __init__(self, config: GRU4RecConfig, num_items: int, catalog: ItemCatalog | None = None) -> None:
        super().__init__(config, num_items, catalog)
        state = config.gru_hidden or config.hidden
        self.items = nn.Embedding(num_items + 1, config.hidden, padding_idx=0)
        self.features = item_feature_embedding(config.item_features, catalog, config.hidden,
                                               config.feature_combine, std=EMBEDDING_STD)
        self.dropout = nn.Dropout(config.dropout)
        self.gru = nn.GRU(config.hidden, state, num_layers=config.layers, batch_first=True)
        self.project = nn.Linear(state, config.hidden)
        init_weights(self)
        # Wider item vectors than the transformers' 0.02: with tied output and no input scaling, a GRU fed
        # 0.02-scale inputs sits at popularity level for many epochs (measured on synthetic data).
        nn.init.normal_(self.items.weight, std=EMBEDDING_STD)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def encode(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        b, length = items.shape
        lengths = (items != 0).sum(1).clamp(min=1)  # [B]
        cols = torch.arange(length, device=items.device)
        shift = (cols[None, :] + (length - lengths)[:, None]) % length  # left-padded -> right-padded
        right = items.gather(1, shift)
        packed = pack_padded_sequence(self.dropout(self.input_vectors(right)), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        out, _ = self.gru(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=length)  # [B, L, S]
        back = (cols[None, :] - (length - lengths)[:, None]) % length  # right-padded -> left-padded
        out = out.gather(1, back[..., None].expand(-1, -1, out.shape[-1]))
        return self.project(self.dropout(out)) * (items != 0).unsqueeze(-1)

    def input_vectors(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        """The GRU's inputs: each item's vector (with side features when the model has them)."""
        return self.items(items) if self.features is None else F.embedding(items, self.item_embeddings())

    def item_embeddings(self) -> torch.Tensor:  # [N+1, D]
        return self.items.weight if self.features is None else self.features(self.items.weight)


register(GRU4RecConfig, GRU4Rec)

"""Shared building blocks: item + position embedding and a transformer layer on SDPA."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.models.features import ItemFeatureEmbedding


class SequenceEmbedding(nn.Module):
    """Item embedding (row 0 = padding) + learned positions, scaled, with dropout and padding zeroed."""

    def __init__(self, num_items: int, max_len: int, hidden: int, dropout: float, input_norm: bool,
                 extra_tokens: int = 0, positions: Literal["left", "right"] = "right",
                 features: ItemFeatureEmbedding | None = None) -> None:
        super().__init__()
        self.left_aligned = positions == "left"
        self.items = nn.Embedding(num_items + 1 + extra_tokens, hidden, padding_idx=0)
        self.features = features
        self.positions = nn.Embedding(max_len, hidden)
        self.norm = nn.LayerNorm(hidden) if input_norm else nn.Identity()  # post-LN models normalise inputs
        self.dropout = nn.Dropout(dropout)
        self.scale = 1.0 if input_norm else hidden**0.5  # pre-LN (SASRec) scales item vectors instead
        self.input_override: torch.Tensor | None = None  # [T, D] read instead of table() (item-side steering)

    def table(self) -> torch.Tensor:
        """Every token's vector: the id embedding, with side features when the model has them.  -> [T, D]"""
        return self.items.weight if self.features is None else self.features(self.items.weight)

    def forward(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        if self.left_aligned:  # position = how many items precede this one (0 = oldest in the window)
            pos = ((items != 0).cumsum(1) - 1).clamp(min=0)  # [B, L]
        else:  # right-aligned: the last slot is always the last position
            length = items.shape[1]
            pos = torch.arange(self.positions.num_embeddings - length, self.positions.num_embeddings,
                               device=items.device)
        if self.input_override is not None:
            vectors = F.embedding(items, self.input_override)
        else:
            vectors = self.items(items) if self.features is None else F.embedding(items, self.table())
        x = vectors * self.scale + self.positions(pos)
        x = self.dropout(self.norm(x))
        return x * (items != 0).unsqueeze(-1)


class TransformerLayer(nn.Module):
    """Self-attention + feed-forward; pre-LN (SASRec+) or post-LN (RecBole/BERT style)."""

    def __init__(self, hidden: int, heads: int, inner: int, dropout: float,
                 norm: Literal["pre", "post"] = "pre", activation: Literal["relu", "gelu"] = "gelu") -> None:
        super().__init__()
        self.heads = heads
        self.norm_first = norm == "pre"
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.ffn = nn.Sequential(nn.Linear(hidden, inner), nn.GELU() if activation == "gelu" else nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(inner, hidden))
        self.norm1 = nn.LayerNorm(hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def attention(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B, L, D], mask [B, 1, L, L]
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, length, d))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.dropout(self.attention(self.norm1(x), mask))
            return x + self.dropout(self.ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout(self.attention(x, mask)))
        return self.norm2(x + self.dropout(self.ffn(x)))


def attention_mask(items: torch.Tensor, causal: bool) -> torch.Tensor:
    """Boolean mask (True = attend) over real keys, causal if asked.  items [B, L] -> [B, 1, L, L]

    Every query row keeps at least its own position, so left padding never produces an all-masked row.
    """
    length = items.shape[1]
    keys = (items != 0)[:, None, None, :]  # [B, 1, 1, L]
    eye = torch.eye(length, dtype=torch.bool, device=items.device)
    if causal:
        keys = keys & torch.ones(length, length, dtype=torch.bool, device=items.device).tril()
    return keys | eye


class TransformerStack(nn.Module):
    """A stack of transformer layers with a final LayerNorm for pre-LN."""

    def __init__(self, blocks: int, hidden: int, heads: int, inner: int, dropout: float,
                 norm: Literal["pre", "post"], activation: Literal["relu", "gelu"]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(hidden, heads, inner, dropout, norm, activation) for _ in range(blocks))
        self.final_norm = nn.LayerNorm(hidden) if norm == "pre" else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # [B, L, D]
        for layer in self.layers:
            x = layer(x, mask)
        return self.final_norm(x)

    def all_layers(self, x: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Output of every layer, then the stack's output (after the final norm).  -> blocks + 1 x [B, L, D]"""
        outputs = []
        for layer in self.layers:
            x = layer(x, mask)
            outputs.append(x)
        return [*outputs, self.final_norm(x)]


def init_weights(module: nn.Module, std: float = 0.02) -> None:
    """Truncated-normal init for linear and embedding weights, zero biases, unit LayerNorm."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)
        if isinstance(m, nn.Embedding) and m.padding_idx is not None:
            with torch.no_grad():
                m.weight[m.padding_idx].zero_()
        if isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

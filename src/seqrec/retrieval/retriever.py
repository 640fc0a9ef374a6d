"""Trainable retriever: maps the encoder's hidden state to a query for the knowledge base."""

from __future__ import annotations

import torch
from torch import nn

from seqrec.errors import ConfigError
from seqrec.models.blocks import init_weights


class _ResidualBlock(nn.Module):
    """x <- LayerNorm(x + Dropout(W2 GELU(W1 x)))."""

    def __init__(self, hidden: int, inner: int, dropout: float) -> None:
        super().__init__()
        self.ffn = nn.Sequential(nn.Linear(hidden, inner), nn.GELU(), nn.Linear(inner, hidden))
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [..., D] -> [..., D]
        return self.norm(x + self.dropout(self.ffn(x)))


class Retriever(nn.Module):
    """Stack of residual feed-forward blocks (Contriever-like): x <- LayerNorm(x + Dropout(W2·GELU(W1·x)))."""

    def __init__(self, hidden: int, layers: int = 1, inner: int = 256, dropout: float = 0.1) -> None:
        super().__init__()
        if layers < 1:
            raise ConfigError(f"retrieval.retriever_layers must be >= 1, got {layers}")
        self.blocks = nn.ModuleList(_ResidualBlock(hidden, inner, dropout) for _ in range(layers))
        init_weights(self)

    def forward(self, h: torch.Tensor) -> torch.Tensor:  # [..., D] -> [..., D]
        for block in self.blocks:
            h = block(h)
        return h

"""Pool a sequence's hidden states into one vector, over its real (non-padding) positions only."""

from __future__ import annotations

import torch
from torch import nn

from seqrec.distill.config import Pooling


class SequencePooling(nn.Module):
    """mean | exponential recency weights (gamma) | learnable attention | last position.

    Weights are renormalised over real positions, so padding never changes the result (the original code
    averaged over the whole padded window).  hidden [B, L, D], real [B, L] bool (left-padded) -> [B, D]
    """

    def __init__(self, scheme: Pooling, hidden: int, gamma: float = 0.1) -> None:
        super().__init__()
        self.scheme = scheme
        self.gamma = gamma
        self.score = nn.Linear(hidden, 1) if scheme == "attention" else None

    def forward(self, hidden: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        if self.scheme == "last":
            return hidden[:, -1]  # left padding: the newest item sits in the last slot
        logits = self.logits(hidden, real)  # [B, L]
        weights = torch.softmax(logits.masked_fill(~real, float("-inf")), dim=1)
        weights = torch.nan_to_num(weights)  # an all-padding row pools to zero
        return torch.einsum("bl,bld->bd", weights.to(hidden.dtype), hidden)

    def logits(self, hidden: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Unnormalised log-weights per position.  -> [B, L]"""
        if self.scheme == "mean":
            return torch.zeros(real.shape, device=hidden.device)
        if self.scheme == "exponential":
            t = torch.arange(real.shape[1], device=hidden.device, dtype=torch.float32)
            return (self.gamma * t).expand(real.shape)
        return self.score(hidden).squeeze(-1).float()  # type: ignore[misc]

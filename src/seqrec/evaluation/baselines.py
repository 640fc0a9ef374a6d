"""Reference scorers that need no training."""

from __future__ import annotations

import numpy as np
import torch


class MostPopular:
    """Scores every item by its training popularity (the same list for every user before masking)."""

    def __init__(self, counts: np.ndarray, max_len: int = 1) -> None:
        self.counts = torch.as_tensor(counts, dtype=torch.float32)  # [N+1]
        self.max_len = max_len
        self.device = torch.device("cpu")

    def score(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, N+1]
        scores = self.counts.to(items.device).expand(items.shape[0], -1).clone()
        scores[:, 0] = float("-inf")
        return scores

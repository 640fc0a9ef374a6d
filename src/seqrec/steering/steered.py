"""A frozen encoder whose user vector passes through an SAE, optionally steered: a recommender like any other."""

from __future__ import annotations

from typing import Literal

import torch

from seqrec.errors import SeqrecError
from seqrec.models.base import SequentialEncoder
from seqrec.steering.sae import Intervention, TopKSAE

ScoringMode = Literal["recon", "delta"]


class SteeredEncoder(SequentialEncoder):
    """Wraps `base` at the encoder seam; hidden states and item embeddings are the base model's.

    recon: u = x̂ (the SAE reconstruction of the steered code). delta: u = x + (z̃ − z)·W_dec, which keeps the
    SAE's reconstruction error out of the scores and equals the base user vector when nothing is steered.
    """

    def __init__(self, base: SequentialEncoder, sae: TopKSAE, mode: ScoringMode = "recon",
                 intervention: Intervention | None = None) -> None:
        super().__init__(base.config, base.num_items)
        if mode not in ("recon", "delta"):
            raise SeqrecError(f"scoring mode must be 'recon' or 'delta'; got {mode!r}")
        if sae.dim != base.config.hidden:
            raise SeqrecError(f"the SAE reads {sae.dim}-dim vectors but the encoder produces {base.config.hidden}")
        self.base, self.sae, self.mode, self.intervention = base, sae, mode, intervention
        self.causal = base.causal

    def encode(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        return self.base.encode(items)

    def item_embeddings(self) -> torch.Tensor:  # [N+1, D]
        return self.base.item_embeddings()

    def user_vector(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, D]
        return self.steer(self.base.user_vector(items))

    def steer(self, x: torch.Tensor) -> torch.Tensor:
        """Base user vectors -> the vectors that score items.  [B, D] -> [B, D]"""
        steered = self.sae(x.float(), self.intervention)
        if self.mode == "recon":
            return steered.x_hat
        plain = self.sae(x.float()).z if self.intervention is not None else steered.z  # [B, H]
        return x + (steered.z - plain) @ self.sae.W_dec

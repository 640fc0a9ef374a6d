"""Loss terms: extra training objectives beside a model's recommendation loss, all combined the same way.

A term sees the recommendation loss's own forward pass (`Step`) and returns a `LossSum` (a sum and the number of
things it sums over). The trainer all-reduces every term's sum and count in one call and adds
`weight · sum · world / global count` for each active term, so N processes match one process exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from seqrec.models.losses import LossSum


@dataclass
class Step:
    """One training batch and the tensors of the recommendation loss's forward pass.

    users [B] internal ids; batch [B, W] the training rows; inputs [B, L] what the encoder read; targets [B, L]
    the next item of each input position (next-item objectives; None for cloze); hidden [B, L, D] the output that
    scores items; layers: every block's output then `hidden` (only when an active term asked for a layer).
    """

    users: torch.Tensor
    batch: torch.Tensor
    inputs: torch.Tensor
    targets: torch.Tensor | None
    hidden: torch.Tensor
    layers: list[torch.Tensor] | None = None

    def layer(self, index: int) -> torch.Tensor:
        """Hidden states of block `index` (-1 = `hidden`).  -> [B, L, D]"""
        if index == -1 or self.layers is None:
            return self.hidden
        return self.layers[index]


class LossTerm(nn.Module):
    """A named training term. Subclasses implement `forward(step) -> LossSum` and may override the hooks.

    weight: the term's coefficient. convex: the weight is taken from the recommendation loss,
    `(1 - w)·L_rec + w·L_term` (profile distillation); otherwise `L_rec + w·L_term`.
    first_epoch / last_epoch (1-based, inclusive; None = no end): the epochs the term is active in.
    layer: the block whose hidden states the term reads (None = only the output), so the trainer runs
    `encode_layers` only when needed. Names are unique within a training (they key the history and checkpoints).
    """

    name: str = "term"
    weight: float = 1.0
    convex: bool = False
    first_epoch: int = 1
    last_epoch: int | None = None
    layer: int | None = None
    likely_cause: str = ""  # said when training diverges with this term on (e.g. "huge profile values")

    def forward(self, step: Step) -> LossSum:
        raise NotImplementedError

    def active(self, epoch: int) -> bool:
        return self.first_epoch <= epoch and (self.last_epoch is None or epoch <= self.last_epoch)

    def combine(self, scaled: torch.Tensor, means: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The term's part of the loss: `weight · scaled`, where `scaled` = sum · world / global count.

        means: every term's global mean this batch (detached, with "recommendation"), for terms whose
        coefficient depends on the others (e.g. a balance factor).
        """
        return self.weight * scaled

    def logged(self, mean: torch.Tensor) -> torch.Tensor:
        """The value recorded in the history for this batch (default: the global mean)."""
        return mean

    def end_epoch(self, epoch: int) -> dict[str, float]:
        """Called after each training epoch, before validation; returns values to record in the history."""
        return {}

    def end_training(self) -> None:
        """Called once the best epoch's weights are restored."""

    def checkpoint_state(self) -> dict:
        """What a resumed run needs besides the parameters (e.g. a knowledge base encoded at an earlier epoch)."""
        return {"parameters": self.state_dict()}

    def restore_checkpoint_state(self, state: dict) -> None:
        self.load_state_dict(state["parameters"])


def mean_term(value: torch.Tensor) -> LossSum:
    """A term that is already a mean over its batch (e.g. InfoNCE): sum = the mean, count = 1 per process."""
    return LossSum(value, torch.ones((), dtype=torch.long, device=value.device))

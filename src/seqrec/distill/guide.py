"""The profile head: pool one layer's hidden states and reconstruct the user's (projected) profile embedding."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from seqrec.distill.config import DistillConfig
from seqrec.distill.pooling import SequencePooling
from seqrec.distill.store import ProfileTable
from seqrec.errors import ConfigError
from seqrec.models.base import SequentialEncoder
from seqrec.models.losses import LossSum
from seqrec.models.terms import LossTerm, Step


class ProfileGuide(LossTerm):
    """Per-user reconstruction error between pooled hidden states and the user's profile(s), a loss term.

    Active in epochs 1 .. fine_tune_epoch-1 as `(1-alpha)·L_rec + alpha·beta·L_guide`. Only users with a profile
    count; the trainer divides by their global number. The module holds the trainable projection and attention
    weights; the recommender itself never needs it at serving time.
    """

    name = "guide_loss"
    convex = True
    likely_cause = "non-finite or huge values in the profile file (distill.profiles)"

    def __init__(self, config: DistillConfig, model: SequentialEncoder, table: ProfileTable) -> None:
        super().__init__()
        self.weight, self.last_epoch = config.alpha, config.fine_tune_epoch - 1
        with torch.random.fork_rng(devices=[]):  # leave the model's random stream (dropout, masks) untouched
            self._build(config, model, table)

    def _build(self, config: DistillConfig, model: SequentialEncoder, table: ProfileTable) -> None:
        self.config = config
        hidden, dim = model.config.hidden, table.dim
        self.layer = checked_layer(model, config.layer)
        self.register_buffer("profiles", torch.from_numpy(table.vectors), persistent=False)  # [U, K, P]
        self.register_buffer("present", torch.from_numpy(table.present), persistent=False)  # [U, K]
        if config.projection == "none" and dim != hidden:
            raise ConfigError(f"distill.projection none needs profiles of the model's size ({hidden}); the files "
                              f"have {dim}: use projection down or up")
        self.down = nn.Linear(dim, hidden) if config.projection == "down" else None  # profile -> hidden
        self.up = nn.Linear(hidden, dim) if config.projection == "up" else None  # hidden -> profile
        target = hidden if config.projection == "down" else dim
        self.profile_score = nn.Linear(target, 1) if config.profile_pooling == "attention" else None
        self.pool = SequencePooling(config.pooling, hidden, config.gamma)

    def forward(self, step: Step) -> LossSum:
        """Summed per-user error and the number of users with a profile, from the chosen layer."""
        return LossSum(*self.error(step.layer(self.layer), step.inputs != 0, step.users))

    def error(self, hidden: torch.Tensor, real: torch.Tensor, users: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed per-user error and the number of users with a profile.

        hidden [B, L, D] of the chosen layer, real [B, L] bool, users [B] internal ids -> ([], [])
        """
        present = self.present[users]  # [B, K]
        has = present.any(dim=1)  # [B]
        pooled = self.pool(hidden, real)[has]  # [b, D]
        if self.up is not None:
            pooled = self.up(pooled)  # [b, P]
        target = self.target(self.profiles[users[has]], present[has])  # [b, D or P]
        if self.config.loss == "cosine":
            error = 1.0 - F.cosine_similarity(pooled.float(), target.float(), dim=-1)
        else:  # mse (rmse takes the root of the global mean in `combine`)
            error = (pooled.float() - target.float()).pow(2).mean(dim=-1)
        return error.sum(), has.sum()

    def combine(self, scaled: torch.Tensor, means: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """`alpha·beta·L_guide` (the trainer adds `(1-alpha)·L_rec`); beta = L_rec / L_guide with `balance`.

        For rmse, d sqrt(m) = dm / (2 sqrt(m)): the same gradient as the root of the global mean.
        """
        guide, value = scaled, self.logged(means[self.name])
        if self.config.loss == "rmse":
            guide = guide / (2 * value.clamp(min=1e-8))
        beta = means["recommendation"] / (value + 1e-8) if self.config.balance else 1.0
        # a batch without profiled users has guide = 0 (an empty sum) and keeps (1 - alpha)·L_rec, as the original
        return self.config.alpha * beta * guide

    def logged(self, mean: torch.Tensor) -> torch.Tensor:
        """The guide's value: MSE, RMSE or cosine distance."""
        return mean.clamp(min=0).sqrt() if self.config.loss == "rmse" else mean

    def target(self, profiles: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """Project each of the K profiles and combine the present ones.  [b, K, P], [b, K] -> [b, T]"""
        if self.down is not None:
            profiles = self.down(profiles)  # trainable, as in the original
        if self.profile_score is not None:
            logits = self.profile_score(profiles).squeeze(-1).masked_fill(~present, float("-inf"))  # [b, K]
            weights = torch.softmax(logits, dim=1)
        else:
            weights = present.float() / present.sum(dim=1, keepdim=True).clamp(min=1)
        return torch.einsum("bk,bkt->bt", weights.to(profiles.dtype), profiles)


def checked_layer(model: SequentialEncoder, layer: int) -> int:
    """`layer` as a valid index into `model.encode_layers`, or a `ConfigError` listing the valid ones."""
    training = model.training
    with torch.no_grad():
        count = len(model.eval().encode_layers(torch.ones(1, 2, dtype=torch.long, device=model.device)))
    model.train(training)
    if not -count <= layer < count:
        valid = f"-1 (the output) or 0..{count - 2} (blocks)" if count > 1 else "-1 (the output)"
        raise ConfigError(f"distill.layer {layer} does not exist in {model.config.name}; use {valid}")
    return layer

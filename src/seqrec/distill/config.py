"""Settings of profile distillation: which profiles, which hidden states, how they are compared and when."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from seqrec.config import check_finite
from seqrec.errors import ConfigError

Pooling = Literal["mean", "exponential", "attention", "last"]


@dataclass
class DistillConfig:
    """Auxiliary profile-reconstruction loss (off while `profiles` is empty).

    Epochs 1 .. fine_tune_epoch-1 train `(1-alpha)·L_rec + alpha·beta·L_guide`; from `fine_tune_epoch` on, `L_rec`
    only. `beta` = L_rec / L_guide per batch (detached) when `balance` is on, else 1. Layer -1 is the encoder
    output that scores items; k >= 0 is the output of transformer block k (0-based).
    """

    profiles: list[str] = field(default_factory=list)  # profile embedding JSON files ({user_id: [floats]}), K >= 1
    dim: int = 0  # expected profile dimension; 0 = take it from the files
    layer: int = -1
    pooling: Pooling = "mean"  # over real (non-padding) positions
    gamma: float = 0.1  # exponential pooling: weight of position t ∝ exp(gamma·t), newest largest
    projection: Literal["down", "up", "none"] = "down"  # profile -> hidden, hidden -> profile, or none (dims equal)
    loss: Literal["mse", "rmse", "cosine"] = "mse"
    alpha: float = 0.5
    balance: bool = False  # beta = L_rec / L_guide per batch
    fine_tune_epoch: int = 10  # first epoch (1-based) trained on the recommendation loss only
    profile_pooling: Literal["mean", "attention"] = "mean"  # several profiles per user

    @property
    def enabled(self) -> bool:
        return bool(self.profiles)

    def __post_init__(self) -> None:
        check_finite(self, "distill")
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"distill.alpha must be in [0, 1], got {self.alpha}")
        if self.fine_tune_epoch < 1:
            raise ConfigError(f"distill.fine_tune_epoch must be >= 1 (1 = no distillation), got {self.fine_tune_epoch}")
        if self.dim < 0:
            raise ConfigError(f"distill.dim must be >= 0, got {self.dim}")
        choices = {"pooling": ("mean", "exponential", "attention", "last"), "projection": ("down", "up", "none"),
                   "loss": ("mse", "rmse", "cosine"), "profile_pooling": ("mean", "attention")}
        for key, valid in choices.items():
            if getattr(self, key) not in valid:
                raise ConfigError(f"distill.{key} must be one of {', '.join(valid)}; got {getattr(self, key)!r}")

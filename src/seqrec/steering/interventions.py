"""Edits of SAE latents: one `Intervention` protocol, the plain edits (scale, add, set) and a registry by name.

An intervention names its latents, the stage it acts at and how much it adds to them:

    pre:  pre[:, S] += change(pre[:, S])   before ReLU and top-k, so it can change which latents win
    post: z̃_S = z_S + change(z_S)          on the top-k code; the user vector moves by change · W_dec[S]

`latents` is [S] (the same latents for every row) or [B, S] (one set per row, as in the latent sweep).
`SteeredEncoder` applies any list of them; PopSteer's shift and RecFTT's controller are interventions too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

import torch

from seqrec.errors import ConfigError
from seqrec.steering.sae import SparseCode

Stage = Literal["pre", "post"]
STAGES = ("pre", "post")


class Intervention(Protocol):
    """Which latents (`latents`), where (`stage`), and what is added to them (`change`)."""

    stage: Stage
    latents: torch.Tensor  # [S] or [B, S] latent ids

    def change(self, acts: torch.Tensor) -> torch.Tensor:
        """What to add to the chosen latents.  acts [B, S] (their current values) -> [B, S] or [S]"""
        ...


def as_latents(latents: Any) -> torch.Tensor:
    """Latent ids as a long tensor ([S] or [B, S]); negative ids are an error."""
    index = torch.as_tensor(latents, dtype=torch.long)
    if index.ndim not in (1, 2) or (index.numel() and int(index.min()) < 0):
        raise ConfigError(f"latents must be ids >= 0, one list or one list per row; got {latents}")
    return index


def check_intervention(edit: Intervention, num_latents: int) -> None:
    """Refuse an unknown stage or latent ids outside [0, num_latents)."""
    if edit.stage not in STAGES:
        raise ConfigError(f"{type(edit).__name__}.stage must be 'pre' or 'post'; got {edit.stage!r}")
    if edit.latents.numel() and int(edit.latents.max()) >= num_latents:
        raise ConfigError(f"{type(edit).__name__}: latent ids must be below the SAE's {num_latents} latents; got "
                          f"{int(edit.latents.max())}")


def row_latents(edit: Intervention, rows: int, device: torch.device) -> torch.Tensor:
    """The edit's latents for each of `rows` rows.  -> [B, S]"""
    latents = edit.latents.to(device)
    if latents.ndim == 1:
        return latents.expand(rows, -1)
    if len(latents) != rows:
        raise ConfigError(f"{type(edit).__name__} has latents for {len(latents)} rows, the batch has {rows}")
    return latents


def edit_pre_activations(pre: torch.Tensor, edits: list[Intervention]) -> torch.Tensor:
    """Apply pre-stage edits in order.  pre [B, H] -> [B, H]"""
    for edit in edits:
        latents = row_latents(edit, len(pre), pre.device)  # [B, S]
        pre = pre.scatter_add(1, latents, edit.change(pre.gather(1, latents)).expand(latents.shape))
    return pre


def decoder_change(edit: Intervention, code: SparseCode, W_dec: torch.Tensor) -> torch.Tensor:
    """How a post-stage edit moves the user vector: change(z_S) · W_dec[S].  code [B, k], W_dec [H, D] -> [B, D]"""
    latents = row_latents(edit, len(code.values), code.values.device)  # [B, S]
    change = edit.change(code.dense(len(W_dec)).gather(1, latents)).expand(latents.shape)  # [B, S]
    if edit.latents.ndim == 1:
        return change @ W_dec[edit.latents.to(W_dec.device)]
    return (change[:, :, None] * W_dec[latents]).sum(1)


@dataclass
class ScaleLatents:
    """Multiply the chosen latents by `factor` (0 ablates them)."""

    latents: torch.Tensor
    factor: float
    stage: Stage = "post"

    def __post_init__(self) -> None:
        self.latents = as_latents(self.latents)

    @classmethod
    def one_per_row(cls, latents: torch.Tensor, factor: float) -> ScaleLatents:
        """Row b scales only latent latents[b] (the latent sweep's edit).  latents [B]"""
        return cls(latents[:, None], factor)

    def change(self, acts: torch.Tensor) -> torch.Tensor:  # [B, S] -> [B, S]
        return (self.factor - 1.0) * acts


@dataclass
class AddToLatents:
    """Add `value` to the chosen latents."""

    latents: torch.Tensor
    value: float
    stage: Stage = "post"

    def __post_init__(self) -> None:
        self.latents = as_latents(self.latents)

    def change(self, acts: torch.Tensor) -> torch.Tensor:  # [B, S] -> [B, S]
        return torch.full_like(acts, self.value)


@dataclass
class SetLatents:
    """Set the chosen latents to `value` (after top-k a latent set here counts even if it was not active)."""

    latents: torch.Tensor
    value: float
    stage: Stage = "post"

    def __post_init__(self) -> None:
        self.latents = as_latents(self.latents)

    def change(self, acts: torch.Tensor) -> torch.Tensor:  # [B, S] -> [B, S]
        return self.value - acts


INTERVENTIONS: dict[str, type] = {}


def register_intervention(name: str, cls: type) -> type:
    """Make `cls` available as `name` (to `build_intervention` and configs)."""
    INTERVENTIONS[name] = cls
    return cls


def intervention_class(name: str) -> type:
    if name not in INTERVENTIONS:
        raise ConfigError(f"unknown intervention {name!r}; available: {', '.join(sorted(INTERVENTIONS))}")
    return INTERVENTIONS[name]


def build_intervention(name: str, **params: Any) -> Intervention:
    """An intervention by registered name, e.g. build_intervention("scale", latents=[3, 7], factor=0.0)."""
    cls = intervention_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise ConfigError(f"intervention {name!r}: {exc}") from None


register_intervention("scale", ScaleLatents)
register_intervention("add", AddToLatents)
register_intervention("set", SetLatents)

"""DuoRec: SASRec with contrastive regularisation between dropout views and same-target sequences.

Qiu et al., "Contrastive Learning for Representation Degeneration Problem in Sequential Recommendation" (WSDM
2022). The recommendation loss is SASRec's full-softmax CE; one position per training sequence is also an anchor
of an InfoNCE term whose positive is a second dropout view of it (unsupervised), another training prefix with the
same next item (supervised), or both (`us_x`, the paper's choice: the dropout view against the same-target view).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from seqrec.errors import ConfigError
from seqrec.models.base import TrainingSet, register
from seqrec.models.losses import LossSum, info_nce
from seqrec.models.sasrec import SASRec, SASRecConfig
from seqrec.models.terms import LossTerm, Step, mean_term

Contrast = Literal["us_x", "us", "su", "none"]


@dataclass
class DuoRecConfig(SASRecConfig):
    """SASRec + InfoNCE. contrast: `us_x` dropout view vs same-target view (weight lmd_sem), `us` main vs
    dropout view (weight lmd), `su` main vs same-target view (weight lmd_sem), `none` = plain SASRec."""

    name: ClassVar[str] = "duorec"
    dropout: float = 0.2  # DuoRec keeps its own measured settings (not SASRec+'s)
    positions: Literal["left", "right"] = "right"
    contrast: Contrast = "us_x"
    lmd: float = 0.1
    lmd_sem: float = 0.1
    tau: float = 1.0
    sim: Literal["dot", "cos"] = "dot"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.contrast not in ("us_x", "us", "su", "none"):
            raise ConfigError(f"model.contrast must be us_x, us, su or none, got {self.contrast!r}")
        if self.sim not in ("dot", "cos"):
            raise ConfigError(f"model.sim must be dot or cos, got {self.sim!r}")
        if self.tau <= 0 or min(self.lmd, self.lmd_sem) < 0:
            raise ConfigError("model.tau must be > 0 and model.lmd, model.lmd_sem >= 0")


class DuoRec(SASRec):
    """SASRec's encoder; training adds `ContrastiveLoss`."""

    config: DuoRecConfig

    def loss_terms(self, train: TrainingSet) -> list[LossTerm]:
        return [] if self.config.contrast == "none" else [ContrastiveLoss(self, train)]


class SameTargetIndex:
    """Every training position (row, input column) grouped by its next item, to draw same-target positives."""

    def __init__(self, sequences: torch.Tensor) -> None:  # [U, W] left-padded
        inputs, targets = sequences[:, :-1], sequences[:, 1:]
        real = ((inputs != 0) & (targets != 0)).flatten()  # [U*(W-1)]
        flat = torch.nonzero(real).squeeze(1)  # real positions, row-major
        order = torch.argsort(targets.flatten()[flat], stable=True)
        self.positions = flat[order]  # [P] flat positions sorted by target
        sorted_targets = targets.flatten()[self.positions]
        items = torch.arange(int(sequences.max()) + 2, device=sequences.device)
        self.start = torch.searchsorted(sorted_targets, items)  # [N+2] first sorted slot of each item
        self.rank = torch.full_like(real, -1, dtype=torch.long)  # flat position -> slot in the sorted order
        self.rank[self.positions] = torch.arange(len(self.positions), device=sequences.device)
        self.width = inputs.shape[1]

    def sample(self, rows: torch.Tensor, columns: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """Another position with the same next item as each (row, column), itself if it is the only one.

        rows, columns [B] (columns of the input part) -> (rows [B], columns [B])
        """
        slot = self.rank[rows * self.width + columns]  # [B]
        target = torch.searchsorted(self.start, slot, right=True) - 1  # [B] the item whose range holds the slot
        first, count = self.start[target], self.start[target + 1] - self.start[target]  # count >= 1
        draw = (torch.rand(len(slot), generator=generator).to(slot.device) * (count - 1)).long()  # [0, count-1)
        pick = first + draw
        pick = torch.where(pick >= slot, pick + 1, pick)  # skip the anchor itself
        pick = torch.where(count > 1, pick, slot)
        chosen = self.positions[pick]
        return chosen // self.width, chosen % self.width


class ContrastiveLoss(LossTerm):
    """InfoNCE on one random real position per training sequence, weighted as the config says (a batch mean)."""

    name = "contrastive_loss"

    def __init__(self, model: DuoRec, train: TrainingSet) -> None:
        super().__init__()
        self.model = model
        self.train_set = train
        self.generator = train.generator
        self.same_target = SameTargetIndex(train.sequences) if model.config.contrast != "us" else None

    def forward(self, step: Step) -> LossSum:
        return mean_term(self.contrast(step.users, step.inputs, step.targets, step.hidden))

    def contrast(self, users: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                 hidden: torch.Tensor) -> torch.Tensor:
        """The weighted InfoNCE.  users [B], inputs/targets [B, L], hidden [B, L, D] -> scalar"""
        cfg = self.model.config
        real = (inputs != 0) & (targets != 0)  # [B, L]
        draw = torch.rand(real.shape, generator=self.generator).to(real.device)
        columns = (draw * real).argmax(dim=1)  # [B] one uniformly drawn real position per row
        anchors = torch.arange(len(inputs), device=inputs.device)
        main = hidden[anchors, columns]  # [B, D]
        if cfg.contrast == "us":
            return cfg.lmd * info_nce(main, self._dropout_view(inputs, columns), cfg.tau, cfg.sim)
        positive = self._same_target_view(users, inputs, columns)
        anchor = self._dropout_view(inputs, columns) if cfg.contrast == "us_x" else main
        return cfg.lmd_sem * info_nce(anchor, positive, cfg.tau, cfg.sim)

    def _dropout_view(self, inputs: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:  # -> [B, D]
        return self.model.encode(inputs)[torch.arange(len(inputs), device=inputs.device), columns]

    def _same_target_view(self, users: torch.Tensor, inputs: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        """Hidden states of same-target positions of (mostly) other sequences.  -> [B, D]"""
        assert self.same_target is not None
        width = self.same_target.width
        rows = self.train_set.rows_of(users)
        other_rows, other_cols = self.same_target.sample(rows, columns + width - inputs.shape[1], self.generator)
        seqs = self.train_set.sequences[other_rows, :-1]  # [B, W-1]
        first = int((seqs != 0).int().argmax(dim=1).min())  # columns before it are padding in every row
        seqs = seqs[:, first:]
        out = self.model.encode(seqs)
        return out[torch.arange(len(seqs), device=seqs.device), other_cols - first]


register(DuoRecConfig, DuoRec)

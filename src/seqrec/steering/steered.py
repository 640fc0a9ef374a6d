"""A frozen encoder whose user vector passes through an SAE and any interventions: a recommender like any other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import nn

from seqrec.errors import SeqrecError
from seqrec.models.base import SequentialEncoder
from seqrec.steering.interventions import Intervention, check_intervention, decoder_change, edit_pre_activations
from seqrec.steering.sae import SparseCode, TopKSAE

ScoringMode = Literal["recon", "delta"]
Interventions = Intervention | Sequence[Intervention] | None


def as_list(interventions: Interventions) -> list[Intervention]:
    if interventions is None:
        return []
    return list(interventions) if isinstance(interventions, list | tuple) else [interventions]


class SteeredEncoder(SequentialEncoder):
    """Wraps `base` at the encoder seam; hidden states and item embeddings are the base model's.

    recon: u = x̂ (the SAE reconstruction of the steered code). delta: u = x + (z̃ − z)·W_dec, which keeps the
    SAE's reconstruction error out of the scores and equals the base user vector when nothing is steered.
    Pre-stage interventions run in order inside the SAE; post-stage ones all read the resulting top-k code and
    their changes add up. The SAE is never differentiated; trainable (nn.Module) interventions are.
    """

    def __init__(self, base: SequentialEncoder, sae: TopKSAE, mode: ScoringMode = "recon",
                 interventions: Interventions = None) -> None:
        super().__init__(base.config, base.num_items)
        if mode not in ("recon", "delta"):
            raise SeqrecError(f"scoring mode must be 'recon' or 'delta'; got {mode!r}")
        if sae.dim != base.config.hidden:
            raise SeqrecError(f"the SAE reads {sae.dim}-dim vectors but the encoder produces {base.config.hidden}")
        self.base, self.sae, self.mode = base, sae, mode
        self.interventions = self.checked(interventions)
        self.trainable = nn.ModuleList([e for e in self.interventions if isinstance(e, nn.Module)])  # [] if none
        self.causal = base.causal

    def checked(self, interventions: Interventions) -> list[Intervention]:
        edits = as_list(interventions)
        for edit in edits:
            check_intervention(edit, self.sae.latents)
        return edits

    def encode(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, L, D]
        return self.base.encode(items)

    def item_embeddings(self) -> torch.Tensor:  # [N+1, D]
        return self.base.item_embeddings()

    def user_vector(self, items: torch.Tensor) -> torch.Tensor:  # [B, L] -> [B, D]
        return self.steer(self.base.user_vector(items))

    def steer(self, x: torch.Tensor, code: SparseCode | None = None,
              interventions: Interventions = None) -> torch.Tensor:
        """Base user vectors -> the vectors that score items.  x [B, D] -> [B, D]

        `code`: the SAE's top-k code of x, when already computed, is not computed again. `interventions`: the
        edits for this call instead of the encoder's own ([] for none).
        """
        edits = self.interventions if interventions is None else self.checked(interventions)
        pre = [e for e in edits if e.stage == "pre"]
        post = [e for e in edits if e.stage == "post"]
        if self.mode == "delta" and not edits:
            return x
        with torch.no_grad():
            if code is None and not (pre and self.mode == "recon"):
                code = self.sae(x.float())  # the unsteered code
            steered = self.sae(x.float(), lambda acts: edit_pre_activations(acts, pre)) if pre else code
            if self.mode == "recon":
                u = self.sae.decode_sparse(steered.values, steered.index) + self.sae.b_dec
            elif pre:
                u = x + (steered.dense(self.sae.latents) - code.dense(self.sae.latents)) @ self.sae.W_dec
            else:
                u = x
        for edit in post:
            u = u + decoder_change(edit, steered, self.sae.W_dec.detach())
        return u
